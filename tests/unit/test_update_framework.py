"""A framework that re-subscribes gets what it missed at once (issue 13): the master
tells the agents running its tasks (update_framework), which resend their unacknowledged
updates instead of waiting out a back-off that may have grown to minutes."""

from __future__ import annotations

from mesos_zmq.protocol import UpdateFramework
from tests.unit.test_master_core import AGENT, Harness, launch, of_type


def test_a_resubscribed_framework_s_agents_are_told_to_resend() -> None:
    h = Harness()
    agent_id, fid, _ = launch(h)
    assert of_type(h.sent, UpdateFramework) == []  # a first subscription: nothing to do
    h.subscribe(peer=b"fw-again", framework_id=fid, now=1.0)
    sent = [(peer, m) for peer, m, _ in h.sent if isinstance(m, UpdateFramework)]
    assert sent == [(AGENT, UpdateFramework(framework_id=fid))]
    assert agent_id in h.core.state.agents
