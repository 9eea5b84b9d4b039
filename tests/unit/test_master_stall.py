"""A master that stood still (SIGSTOP, swap, a frozen VM) judges no peer silent for it,
and no deadline past, until each has had a whole heartbeat limit since; stalls that keep
coming do not hold every judgement back for good (a review found a dead agent never
removed with a 1.2 s stall every 4 s, and a framework removed for a failover timeout
whose subscription was still unread)."""

from __future__ import annotations

import types

from mesos_zmq.heartbeat import HeartbeatMonitor
from mesos_zmq.master.server import MasterServer
from mesos_zmq.protocol import FrameworkInfo, Heartbeat, Subscribe, Subscribed
from tests.unit.test_master_core import FW, Harness

TICK = 0.05
LIMIT = 5.0  # 1 s x 5


def _server() -> MasterServer:
    """The loop's stall rules alone (no sockets)."""
    server = object.__new__(MasterServer)
    server.config = types.SimpleNamespace(heartbeat_interval=1.0,  # type: ignore[assignment]
                                          missed_heartbeats=5)
    server.core = types.SimpleNamespace(agent_heartbeat_interval=1.0)  # type: ignore[assignment]
    return server


def test_a_peer_heard_before_a_long_stall_is_not_judged_silent_for_it() -> None:
    server = _server()
    server._note_stall(100.0, TICK)
    alive = HeartbeatMonitor(1.0, 5)
    alive.reset(100.0)
    server._note_stall(112.0, TICK)  # stood still 12 s
    assert not alive.expired(server._judged_at(112.0))
    assert not alive.expired(server._judged_at(112.0 + LIMIT - 0.1))
    # a whole limit since it is back, and still silent: now it is
    assert alive.expired(server._judged_at(112.0 + LIMIT + 0.1))


def test_stalls_that_keep_coming_still_let_a_dead_peer_be_judged() -> None:
    server = _server()
    dead = HeartbeatMonitor(1.0, 5)
    dead.reset(100.0)
    now, removed_at = 100.0, None
    server._note_stall(now, TICK)
    while now < 200.0 and removed_at is None:
        # every 4 s one turn comes 1.2 s late (each shorter than the limit)
        now = round(now + (1.2 if int(now * 20) % 80 == 0 else TICK), 3)
        server._note_stall(now, TICK)
        if dead.expired(server._judged_at(now)):
            removed_at = now
    assert removed_at is not None and removed_at < 100.0 + 3 * LIMIT, removed_at


def test_a_failover_timeout_is_judged_only_up_to_what_was_read() -> None:
    """The scheduler failed over in time, but the master had not read its subscription
    yet (it stood still): the framework must not be removed meanwhile."""
    h = Harness()
    info = FrameworkInfo(name="fw", failover_timeout=3.0)
    (sub,) = [m for m in h.send(FW, Subscribe(framework=info), 0.0) if isinstance(m, Subscribed)]
    fid = sub.framework_id
    for now in (1.0, 2.0):
        h.send(FW, Heartbeat(), now)
    h.tick(40.0)  # silent: disconnected, its failover timeout runs from here
    assert h.core.framework_runtimes[fid].deadline is not None
    # past the deadline, but everything was read only up to before it
    h.core.tick(50.0, heard_until=41.0)
    assert fid in h.core.state.frameworks
    again = FrameworkInfo(name="fw", framework_id=fid, failover_timeout=3.0)
    (sub,) = [m for m in h.send(b"fw-2", Subscribe(framework=again), 50.0)
              if isinstance(m, Subscribed)]
    assert sub.reregistered
    h.core.tick(51.0, heard_until=51.0)
    assert fid in h.core.state.frameworks
