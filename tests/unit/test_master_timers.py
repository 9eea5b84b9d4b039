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


def test_silence_is_judged_only_up_to_what_was_read() -> None:
    """A master behind on its input (a backlog of frames, a pause) must not remove
    agents whose heartbeats wait unread in that backlog: at 10,000 agents under load
    it once removed 5,220 of them. The shell says until when it had read everything."""
    h = Harness(heartbeat_interval=1.0, missed_heartbeats=3)
    h.send(b"a0", RegisterAgent(hostname="h0", resources="cpus:1"), 0.0)
    # silent since 0 s; at 10 s the input was last found empty at 2 s: not judged yet
    h.core.tick(10.0, heard_until=2.0)
    assert b"a0" in h.core.peers
    # looked at again a little later (not every tick), and lost once the master caught up
    assert min(due for due, *_ in h.core.peer_timers) > 10.0
    h.core.tick(10.5, heard_until=10.5)
    assert b"a0" not in h.core.peers


def test_a_heartbeat_taken_without_decoding_counts_only_for_a_bound_connection() -> None:
    from mesos_zmq.auth.principal import Principal

    h = Harness(heartbeat_interval=1.0, missed_heartbeats=3)
    assert not h.core.heard(b"stranger", 0.5)  # goes the long way: "register first"
    h.send(b"a0", RegisterAgent(hostname="h0", resources="cpus:1"), 0.0)
    assert h.core.heard(b"a0", 2.5)
    assert h.core.peers[b"a0"].monitor.last_received == 2.5
    h.core.tick(4.0)
    assert b"a0" in h.core.peers  # silent only since 2.5
    # bound without keys; a principal the binding does not know is not it
    assert not h.core.heard(b"a0", 4.5, Principal(name="someone", kind="agent"))
    assert h.core.peers[b"a0"].monitor.last_received == 2.5


def test_the_heartbeat_frames_agents_and_frameworks_send_are_the_fast_paths() -> None:
    from itertools import count

    from mesos_zmq.agent.core import AgentCore
    from mesos_zmq.master.server import HEARTBEAT_FRAME
    from mesos_zmq.protocol import AgentRegistered, encode
    from mesos_zmq.resources import Resources

    ids = count()
    agent = AgentCore("h", Resources.parse("cpus:1"), "", None, lambda: f"id{next(ids)}")
    agent.connected(0.0)
    agent.handle(AgentRegistered(agent_id="a", heartbeat_interval=1.0, missed_heartbeats=3),
                 "", 0.0)
    sent = [(m, rid) for m, rid in agent.tick(1.5).messages if isinstance(m, Heartbeat)]
    assert sent and all(encode(m, rid) == HEARTBEAT_FRAME for m, rid in sent)
