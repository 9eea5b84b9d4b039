"""Request ids are chosen by clients: one framework's id never shadows another's."""

from __future__ import annotations

from mesos_zmq.protocol import Accept, Offers
from tests.unit.test_master_core import Harness, task


def test_the_same_request_id_from_two_frameworks_applies_twice() -> None:
    h = Harness()
    agent_id = h.register_agent(resources="cpus:4;mem:1024")
    fa = h.subscribe(peer=b"fa")
    fb = h.subscribe(peer=b"fb")
    for when, (peer, fid, tid) in enumerate(((b"fa", fa, "ta"), (b"fb", fb, "tb"))):
        (offers,) = [m for p, m, _ in h.tick(5.0 * (when + 1))
                     if p == peer and isinstance(m, Offers)]
        accept = Accept(framework_id=fid, offer_ids=[offers.offers[0].offer_id],
                        tasks=[task(tid, agent_id, "cpus:1;mem:64")])
        assert h.send(peer, accept, 5.0 * (when + 1), rid="same-id") == []
    assert {t.task_id for t in h.core.state.tasks.values()} == {"ta", "tb"}
    # and a retry by the same framework is still applied once
    (offers,) = [m for p, m, _ in h.tick(20.0) if p == b"fa" and isinstance(m, Offers)]
    again = Accept(framework_id=fa, offer_ids=[offers.offers[0].offer_id],
                   tasks=[task("ta2", agent_id, "cpus:1;mem:64")])
    h.send(b"fa", again, 20.0, rid="same-id")
    assert "ta2" not in {t.task_id for t in h.core.state.tasks.values()}
