"""The master's tick looks only at peers and deadlines whose time has come (issue 13,
cause 1: the tick scanned every peer and every agent, 8 ms at 10,000 idle agents)."""

from __future__ import annotations

from mesos_zmq.master import liveness
from mesos_zmq.protocol import Heartbeat, RegisterAgent
from tests.unit.test_master_core import Harness


def test_a_tick_with_nothing_due_looks_at_no_peer(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    h = Harness(heartbeat_interval=2.0, missed_heartbeats=5)
    for i in range(500):
        h.send(f"a{i}".encode(), RegisterAgent(hostname=f"h{i}", resources="cpus:1"), 0.0)
    looked: list[bytes] = []
    real = liveness._peer_lost
    monkeypatch.setattr(liveness, "_peer_lost",
                        lambda core, peer, info, now: (looked.append(peer),
                                                       real(core, peer, info, now)))
    assert [m for m in h.tick(1.0) if isinstance(m[1], Heartbeat)] == []
    assert h.core.deadline_timers == []
    # at 2 s every agent is due a heartbeat; those that spoke stay, the silent go at 10 s
    assert len([m for m in h.tick(2.0) if isinstance(m[1], Heartbeat)]) == 500
    for now in (4.0, 6.0, 8.0):
        h.send(b"a0", Heartbeat(), now)
        h.tick(now)
    h.tick(10.5)
    assert looked and b"a0" not in looked and len(looked) == 499
    assert set(h.core.peers) == {b"a0"}
