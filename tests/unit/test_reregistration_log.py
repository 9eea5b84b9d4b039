"""A new leader logs the agents that re-registered once per tick, in one info line that
names them ("agents reregistered", their ids in ``agent_ids``), not a line per agent:
at 10,000 agents that line cost ~17 us of the 83 us each re-registration took the new
leader's loop (issue 13). Each agent still has its own "agent reregistered" at debug."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from mesos_zmq.master import agent_api
from mesos_zmq.protocol import AgentRegistered, ReregisterAgent
from tests.unit.test_master_core import Harness


def _known_agents(count: int) -> tuple[Harness, list[str]]:
    """Agents the log knows, as a new leader finds them (not connected yet)."""
    old = Harness()
    ids = [old.register_agent(peer=b"old-%d" % i) for i in range(count)]
    return Harness(log=old.log, now=10.0), ids


def _reregister(h: Harness, index: int, agent_id: str, now: float) -> None:
    (reply,) = h.send(b"new-%d" % index, ReregisterAgent(
        agent_id=agent_id, hostname="h1", resources="cpus:4;mem:4096"), now)
    assert isinstance(reply, AgentRegistered) and reply.reregistered


def _named(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] == event]


def test_the_agents_back_are_named_in_one_info_line_per_tick() -> None:
    h, ids = _known_agents(3)
    with capture_logs() as logs:
        for i, agent_id in enumerate(ids):
            _reregister(h, i, agent_id, 10.0 + i / 100)
        # nothing at info per agent: only at debug
        assert [line["log_level"] for line in _named(logs, "agent reregistered")] \
            == ["debug"] * 3
        assert _named(logs, "agents reregistered") == []
        h.tick(10.1)
        h.tick(10.2)  # nothing new: no line
    (line,) = _named(logs, "agents reregistered")
    assert line["log_level"] == "info"
    assert line["agent_ids"] == ids and line["count"] == 3


def test_a_long_list_is_split_over_lines(monkeypatch: Any) -> None:
    monkeypatch.setattr(agent_api, "REREGISTERED_PER_LINE", 2)
    h, ids = _known_agents(5)
    with capture_logs() as logs:
        for i, agent_id in enumerate(ids):
            _reregister(h, i, agent_id, 10.0)
        h.tick(10.1)
    lines = _named(logs, "agents reregistered")
    assert [line["agent_ids"] for line in lines] == [ids[:2], ids[2:4], ids[4:]]
    assert [line["count"] for line in lines] == [2, 2, 1]
