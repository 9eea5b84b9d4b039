"""Any message is a sign of life (every monitor counts every message), so neither side
sends a heartbeat within an interval of having said something else (issue 13: under
load at 10,000 agents, heartbeats were a fifth of what the master sent and read)."""

from __future__ import annotations

from mesos_zmq.protocol import Accept, Heartbeat, RegisterAgent, RunTasks, StatusUpdate
from tests.unit.test_agent_rules import make, registered, run
from tests.unit.test_master_core import Harness, task


def _heartbeats_to(h: Harness, peer: bytes, now: float) -> int:
    return sum(1 for p, m, _ in h.tick(now) if p == peer and isinstance(m, Heartbeat))


def test_the_master_heartbeats_only_peers_it_has_said_nothing_to_for_an_interval() -> None:
    h = Harness(heartbeat_interval=2.0, missed_heartbeats=5)
    h.send(b"busy", RegisterAgent(hostname="h0", resources="cpus:4;mem:4096"), 0.0)
    h.send(b"idle", RegisterAgent(hostname="h1", resources="cpus:4;mem:4096"), 0.0)
    fid = h.subscribe(now=0.0)
    busy = h.core.peers[b"busy"].id
    offer = next(o for o in h.offers_to(b"fw-conn", 1.0) if o.agent_id == busy)
    h.send(b"fw-conn", Accept(framework_id=fid, offer_ids=[offer.offer_id],
                              tasks=[task("t1", busy)]), 1.5)
    assert [m for p, m, _ in h.sent if p == b"busy" and isinstance(m, RunTasks)]
    out = h.tick(2.0)
    beats = {p for p, m, _ in out if isinstance(m, Heartbeat)}
    assert b"idle" in beats and b"busy" not in beats
    assert _heartbeats_to(h, b"busy", 3.0) == 0
    assert _heartbeats_to(h, b"busy", 3.5) == 1  # an interval after the RunTasks


def test_an_agent_that_sent_an_update_skips_the_heartbeat_for_an_interval() -> None:
    core = make()
    registered(core, 0.0)
    assert any(isinstance(m, Heartbeat) for m, _ in core.tick(1.0).messages)
    fx = run(core, "t1", now=1.2)
    fx.extend(core.task_spawned(("F1", "t1"), 1.3))
    assert any(isinstance(m, StatusUpdate) for m, _ in fx.messages)
    assert not any(isinstance(m, Heartbeat) for m, _ in core.tick(2.1).messages)
    assert any(isinstance(m, Heartbeat) for m, _ in core.tick(2.4).messages)
