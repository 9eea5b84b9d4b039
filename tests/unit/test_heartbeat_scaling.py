"""Agents beat at an interval that grows with their number (``--max-agent-heartbeats``,
as Nomad's ``max_heartbeats_per_second``): an idle master's work is heartbeats, a
quarter of a core at 10,000 agents every 2 s (issue 13)."""

from __future__ import annotations

import pytest

from mesos_zmq.errors import ConfigError
from mesos_zmq.heartbeat import scaled_interval
from mesos_zmq.master import flags
from mesos_zmq.master.server import MasterConfig
from mesos_zmq.protocol import AgentRegistered, Heartbeat, RegisterAgent
from tests.unit.test_agent_rules import make, registered
from tests.unit.test_master_core import Harness


# ----------------------------------------------------------------- the rule
def test_a_small_cluster_beats_at_the_configured_interval() -> None:
    assert scaled_interval(2.0, 1, 2000.0) == 2.0
    assert scaled_interval(2.0, 4000, 2000.0) == 2.0  # 4,000 / 2 s = 2,000 a second


def test_a_large_cluster_beats_in_whole_multiples_of_the_interval() -> None:
    assert scaled_interval(2.0, 4001, 2000.0) == 4.0
    assert scaled_interval(2.0, 10_000, 2000.0) == 6.0  # 1,667 beats a second
    assert scaled_interval(2.0, 50_000, 2000.0) == 26.0


def test_by_default_ten_thousand_agents_beat_every_ten_seconds() -> None:
    # 1,000 beats a second; declared gone after 50 s (Mesos: 75 s)
    assert scaled_interval(flags.HEARTBEAT_INTERVAL, 10_000, flags.MAX_AGENT_HEARTBEATS) == 10.0


def test_no_rate_or_no_agents_means_the_configured_interval() -> None:
    assert scaled_interval(2.0, 1_000_000, 0.0) == 2.0
    assert scaled_interval(2.0, 0, 2000.0) == 2.0


def test_the_interval_comes_down_only_a_tenth_below_the_threshold() -> None:
    # at 6 s (8,001-12,000 agents); 4 s holds up to 8,000, so 6 s stays down to 7,201
    assert scaled_interval(2.0, 7_201, 2000.0, current=6.0) == 6.0
    assert scaled_interval(2.0, 7_200, 2000.0, current=6.0) == 4.0
    assert scaled_interval(2.0, 7_200, 2000.0) == 4.0
    # a large fall goes straight down, and growth is never held back
    assert scaled_interval(2.0, 100, 2000.0, current=26.0) == 2.0
    assert scaled_interval(2.0, 12_001, 2000.0, current=6.0) == 8.0


def test_the_flag_is_range_checked() -> None:
    with pytest.raises(ConfigError, match=r"max.agent.heartbeats"):
        MasterConfig(max_agent_heartbeats=-1.0).validate()


# ----------------------------------------------------------------- the master
def _register(h: Harness, peer: bytes, now: float) -> AgentRegistered:
    (reply,) = h.send(peer, RegisterAgent(hostname=peer.decode(), resources="cpus:1;mem:64"),
                      now)
    assert isinstance(reply, AgentRegistered)
    return reply


def _retunes(out: list[tuple[bytes, object, str]]) -> dict[bytes, float]:
    return {p: m.interval for p, m, _ in out if isinstance(m, Heartbeat) and m.interval}


def test_the_master_tells_new_and_old_agents_a_longer_interval_as_agents_join() -> None:
    h = Harness(heartbeat_interval=1.0, missed_heartbeats=3, max_agent_heartbeats=2.0)
    assert _register(h, b"a0", 0.0).heartbeat_interval == 1.0
    assert _register(h, b"a1", 0.0).heartbeat_interval == 1.0
    third = _register(h, b"a2", 0.0)  # 3 agents at 2 beats a second: every 2 s
    assert third.heartbeat_interval == 2.0
    assert h.core.peers[b"a2"].monitor.interval == 2.0
    # the first two hear it when they are next due, and are judged by it at once
    assert _retunes(h.tick(1.0)) == {b"a0": 2.0, b"a1": 2.0}
    assert h.core.peers[b"a0"].monitor.interval == 2.0
    assert h.core.counters["agent_heartbeat_retunes"] == 2
    # beating every 2 s from now on, nobody is lost and nobody is retuned again
    for now in (3.0, 5.0, 7.0, 9.0):
        for peer in (b"a0", b"a1", b"a2"):
            h.send(peer, Heartbeat(), now)
        assert not _retunes(h.tick(now + 0.5))
    assert len(h.core.peers) == 3
    # operators see both: what they set, and what agents beat at
    master = h.core.describe(10.0)["master"]
    assert master["heartbeat_interval"] == 1.0 and master["agent_heartbeat_interval"] == 2.0


def test_an_agent_told_a_shorter_interval_is_judged_from_when_it_was_told() -> None:
    h = Harness(heartbeat_interval=1.0, missed_heartbeats=3, max_agent_heartbeats=1.0)
    told = [_register(h, peer, 0.0).heartbeat_interval for peer in (b"a0", b"a1", b"a2")]
    assert told == [1.0, 2.0, 3.0]
    for now in (1.0, 2.0, 3.0):
        h.tick(now)
    assert h.core.peers[b"a0"].monitor.interval == 3.0
    # a1 and a2 go silent and are removed (at 9 s); a0's last beat is at 5 s
    h.send(b"a0", Heartbeat(), 5.0)
    told_at = None
    now = 5.0
    while now < 20.0:
        now += 0.25
        if _retunes(h.tick(now)).get(b"a0") == 1.0:
            told_at = now
        if told_at is not None and now > told_at and (now - told_at) % 1.0 == 0:
            h.send(b"a0", Heartbeat(), now)  # beating at the new interval, from then
    assert len(h.core.state.agents) == 1
    # one agent left: back to 1 s, told when more than 3 x 1 s had passed since its
    # last beat; it was not late by the interval it had been given, and is not lost
    assert told_at is not None and told_at - 5.0 > 3.0
    assert b"a0" in h.core.peers and h.core.peers[b"a0"].monitor.interval == 1.0


def test_without_scaling_every_agent_keeps_the_configured_interval() -> None:
    h = Harness(heartbeat_interval=1.0, missed_heartbeats=3, max_agent_heartbeats=0.0)
    for i in range(20):
        assert _register(h, f"a{i}".encode(), 0.0).heartbeat_interval == 1.0
    assert not _retunes(h.tick(1.0))


# ----------------------------------------------------------------- the agent
def test_the_agent_takes_the_interval_its_master_tells_it() -> None:
    core = make()
    registered(core, 0.0)  # every 1 s
    core.handle(Heartbeat(interval=4.0), "", 0.5)
    assert core.monitor.interval == 4.0
    assert core.monitor.timeout == 20.0  # the master is judged by it too
    assert not any(isinstance(m, Heartbeat) for m, _ in core.tick(2.0).messages)
    assert any(isinstance(m, Heartbeat) for m, _ in core.tick(4.1).messages)


@pytest.mark.parametrize("interval", [1e9, -1.0])
def test_the_agent_ignores_an_interval_it_could_not_keep(interval: float) -> None:
    core = make()
    registered(core, 0.0)
    core.handle(Heartbeat(interval=interval), "", 0.5)
    assert core.monitor.interval == 1.0


def test_a_plain_heartbeat_changes_nothing() -> None:
    core = make()
    registered(core, 0.0)
    core.handle(Heartbeat(), "", 0.5)
    assert core.monitor.interval == 1.0
