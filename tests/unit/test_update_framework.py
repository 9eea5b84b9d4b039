"""A framework that re-subscribes gets what it missed at once (issue 13): the master
tells the agents running its tasks (update_framework), which resend their unacknowledged
updates instead of waiting out a back-off that may have grown to minutes."""

from __future__ import annotations

from itertools import pairwise

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


def test_the_masters_own_updates_are_resent_less_often_while_unacknowledged() -> None:
    """An agent lost with many tasks leaves one update per task waiting for its
    framework: they are resent after 2 s, then 4, 8... while none is acknowledged, and
    a tick looks only at those due."""
    from mesos_zmq.protocol import Acknowledge, Heartbeat, StatusUpdate
    from tests.unit.test_master_core import FW

    h = Harness(heartbeat_interval=1.0, missed_heartbeats=3)
    _, fid, _ = launch(h)
    sends: list[tuple[float, str]] = []
    now = 0.0
    while now < 40.0:
        now = round(now + 0.25, 2)
        h.send(FW, Heartbeat(), now)  # the framework stays; the agent falls silent
        for peer, msg, _ in h.tick(now):
            if peer == FW and isinstance(msg, StatusUpdate) and msg.status.uuid:
                sends.append((now, msg.status.uuid))
    assert len({uuid for _, uuid in sends}) == 1
    times = [t for t, _ in sends]
    gaps = [round(b - a) for a, b in pairwise(times)]
    assert gaps[:4] == [2, 4, 8, 16], times
    # an acknowledgement resets the wait (nothing else is pending here)
    uuid = sends[0][1]
    h.send(FW, Acknowledge(framework_id=fid, agent_id="", task_id="t1", uuid=uuid), now)
    assert h.core.framework_runtimes[fid].update_retry == 0.0
    assert not h.core.framework_runtimes[fid].pending
