"""Hostile requests to the master: each is refused as ``invalid`` with a clear message,
changes nothing, and leaves a log the master can restart from (no processes).

The orders an audit sent to a real cluster over a plain DEALER socket, replayed on the
master core, and the limits of :mod:`mesos_zmq.resources` and
:mod:`mesos_zmq.master.validation` that refuse them.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.errors import ResourceError
from mesos_zmq.master.validation import (
    MAX_ENV_BYTES,
    check_agent,
    check_framework,
    quota_amounts,
    task_problem,
)
from mesos_zmq.protocol import (
    Accept,
    Error,
    FrameworkInfo,
    GetState,
    HealthCheck,
    Operation,
    OperatorReply,
    RegisterAgent,
    SetQuota,
    State,
    StatusUpdate,
    Subscribe,
    TaskInfo,
    encode,
)
from mesos_zmq.resources import (
    MAX_RESOURCE_ENTRIES,
    MAX_RESOURCES_TEXT,
    MAX_SCALAR,
    Resources,
    validate_role,
)
from tests.unit.test_master_core import AGENT, FW, Harness

BIG = "9007199254740"  # within MAX_SCALAR on its own


def refused(h: Harness, msg: Any, peer: bytes = AGENT, now: float = 0.0) -> str:
    """The ``invalid`` refusal's message; asserts nothing was logged by it."""
    before = len(h.log.records)
    (reply,) = h.send(peer, msg, now)
    assert isinstance(reply, Error) and reply.code == "invalid", reply
    assert len(h.log.records) == before
    return reply.message


def restarts(h: Harness) -> Harness:
    """A master restarted from ``h``'s log: it recovers the same state."""
    again = Harness(log=h.log)
    assert again.core.state.snapshot() == h.core.state.snapshot()
    return again


# ----------------------------------------------------------------------------- the audit


def test_1100_roles_of_huge_cpus_are_refused_and_the_master_restarts() -> None:
    # The audit's order: the master exited and its log could not be replayed.
    h = Harness()
    hostile = ";".join(f"cpus(r{i}):1.7e305" for i in range(1100))
    message = refused(h, RegisterAgent(hostname="h", resources=hostile))
    assert "agent registration refused" in message and "1100 entries" in message
    one = ";".join(f"cpus(r{i}):1.7e305" for i in range(10))
    assert "too large" in refused(h, RegisterAgent(hostname="h", resources=one))
    assert not h.core.state.agents
    h.register_agent(peer=b"good")
    restarts(h)


@pytest.mark.parametrize("text,words", [
    # each amount within bounds, their sum not
    (";".join(f"cpus(r{i}):{BIG}" for i in range(1000)), "adds up to"),
    (f"cpus:{BIG};cpus:{BIG}", "adds up to"),
    (f"mem(a):{BIG};mem(b):{BIG};cpus:1", "adds up to"),
])
def test_sums_beyond_max_scalar_are_refused(text: str, words: str) -> None:
    h = Harness()
    message = refused(h, RegisterAgent(hostname="h", resources=text))
    assert words in message and "at most 9007199254740.991" in message
    restarts(h)


def test_an_agent_at_the_bound_is_accepted_and_sums_over_agents_stay_exact() -> None:
    h = Harness()
    half = "4503599627370.495"  # twice this is MAX_SCALAR exactly
    for i in range(30):
        h.register_agent(peer=f"a{i}".encode(),
                         resources=f"cpus(eng):{half};cpus:{half};mem:{MAX_SCALAR:.3f}")
    fid = h.subscribe()
    offers = h.offers_to(FW, 1.0)
    assert len(offers) == 30 and all(o.framework_id == fid for o in offers)
    assert Resources.parse(offers[0].resources).scalar("cpus") <= MAX_SCALAR
    (state,) = h.send(b"op", GetState(), 1.0)
    assert isinstance(state, State)
    encode(state)  # msgpack holds every number of the view
    restarts(h)


@pytest.mark.parametrize("where", ["register", "quota", "accept", "reserve"])
def test_cpus_1e306_is_an_invalid_refusal_everywhere(where: str) -> None:
    h = Harness()
    if where == "register":
        message = refused(h, RegisterAgent(hostname="h", resources="cpus:1e306"))
        assert "'cpus:1e306'" in message and "too large" in message
    elif where == "quota":
        message = refused(h, SetQuota(role="eng", guarantee="cpus:1e306"), peer=b"op")
        assert "quota refused" in message and "too large" in message
    else:
        agent_id = h.register_agent()
        fid = h.subscribe()
        (offer,) = h.offers_to(FW, 0.0)
        if where == "accept":
            bad = TaskInfo(task_id="t1", agent_id=agent_id, resources="cpus:1e306",
                           command="true")
            replies = h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                                        tasks=[bad]), 0.1)
            (status,) = [m.status for m in replies if isinstance(m, StatusUpdate)]
            assert status.state == "TASK_ERROR" and status.reason == "REASON_TASK_INVALID"
            assert "too large" in status.message
            assert h.core.state.task(fid, "t1") is None
        else:
            op = Operation(kind="RESERVE", resources="cpus(*):1e306")
            (reply,) = h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                                         operations=[op]), 0.1)
            assert isinstance(reply, Error) and reply.code == "invalid"
            assert "accept refused: RESERVE" in reply.message and "too large" in reply.message
            # the refused accept returns the offer (as any refused accept does), no more
            assert h.log.records[-1]["op"] == "offer_removed"
            assert not h.core.state.reservations
    restarts(h)


# ----------------------------------------------------------------------------- resources


@pytest.mark.parametrize("text,words", [
    ("cpus:1;" + ";".join(f"x{i}:1" for i in range(MAX_RESOURCE_ENTRIES)), "entries"),
    ("cpus:" + "1" * MAX_RESOURCES_TEXT, "characters"),
    ("cpus(" + "r" * 256 + "):1", "longer than 255"),
    ("x" * 129 + ":1", "longer than 128"),
    ("cpus:1;ports:[1-70000]", "at most 65535"),
    ("cpus:1;slots:[0-9007199254740992]", "at most 9007199254740991"),
    ("cpus:1;ports:[" + ",".join(f"{p}-{p}" for p in range(0, 4000, 2)) + "]",
     "2000 ranges"),
    ("cpus:1;z:{" + ",".join(f"i{n}" for n in range(2000)) + "}", "2000 set items"),
    ("cpus:1" + " " * 60000 + "x", "not a number"),
])
def test_resource_strings_beyond_the_limits_are_refused(text: str, words: str) -> None:
    h = Harness()
    message = refused(h, RegisterAgent(hostname="h", resources=text))
    assert words in message
    assert len(message) < 1000  # the refusal does not echo the hostile text back


def test_limits_at_their_edge_are_accepted() -> None:
    h = Harness()
    most = "cpus:1;" + ";".join(f"x{i}:1" for i in range(MAX_RESOURCE_ENTRIES - 1))
    h.register_agent(peer=b"a1", resources=most)
    h.register_agent(peer=b"a2", resources="cpus(" + "r" * 255 + "):1;ports:[0-65535]")
    assert len(h.core.state.agents) == 2
    validate_role("a" * 255)
    with pytest.raises(ResourceError, match="longer than 255"):
        validate_role("a" * 256)


def test_parsing_stays_linear_on_hostile_text() -> None:
    # A lazy '.*?' before '\s*$' made a value full of spaces cost quadratic time: 4 MiB
    # (a whole frame) would have held the master's loop for hours.
    text = "cpus:1" + " " * (4 << 20) + "x"
    started = time.perf_counter()
    with pytest.raises(ResourceError, match="not a number"):
        Resources.parse(text)
    with pytest.raises(ResourceError, match="characters"):
        Resources.from_wire(text)
    with pytest.raises(ResourceError):
        Resources.parse("cpus:4," + " " * (1 << 20))  # no separator hint on long text
    assert time.perf_counter() - started < 5.0


def test_fragmented_ports_subtract_in_linear_time() -> None:
    every_other = Resources.from_ports(range(0, 65536, 2))
    started = time.perf_counter()
    left = every_other - Resources.from_ports(range(0, 65536, 4))
    assert time.perf_counter() - started < 2.0
    assert len(left.ranges("ports")) == 16384


entry = st.tuples(st.sampled_from(["cpus", "mem", "gpus"]),
                  st.sampled_from(["*", "a", "b", "a/b"]),
                  st.integers(0, 2**53 + 5))


@settings(max_examples=300, deadline=None)
@given(st.lists(entry, max_size=8))
def test_whatever_parses_sums_within_max_scalar(entries: list[tuple[str, str, int]]) -> None:
    text = ";".join(f"{n}({r}):{m // 1000}.{m % 1000:03d}" for n, r, m in entries)
    try:
        res = Resources.from_wire(text)
    except ResourceError:
        totals: dict[str, int] = {}
        for name, _, milli in entries:
            totals[name] = totals.get(name, 0) + milli
        assert max(totals.values()) > 2**53 - 1
        return
    for name in res.names():
        assert res.scalar(name) <= MAX_SCALAR
    assert Resources.parse(str(res)) == res  # what is accepted prints and parses back


# ----------------------------------------------------------------------------- strings


def test_agent_strings_are_capped() -> None:
    h = Harness()
    message = refused(h, RegisterAgent(hostname="h", resources="cpus:1",
                                       attributes="rack:" + "r" * (64 * 1024)))
    assert "attributes are longer" in message
    assert check_agent("cpus:1", "", hostname="h" * 256) is not None
    assert check_agent("cpus:1", "", hostname="bad host") is not None
    assert check_agent("cpus:1", "rack:r1", hostname="agent-1.example.com") is None


@pytest.mark.parametrize("info,words", [
    (FrameworkInfo(name="n" * 1025), "name is longer"),
    (FrameworkInfo(name="ok", user="u" * 256), "user"),
    (FrameworkInfo(name="ok", user="root\nx"), "user"),
    (FrameworkInfo(name="ok", hostname="h" * 256), "hostname"),
    (FrameworkInfo(name="ok", roles=[f"r{i}" for i in range(1025)]), "at most 1024 roles"),
    (FrameworkInfo(name="ok", roles=["r" * 256]), "longer than 255"),
    (FrameworkInfo(name="ok", capabilities=["c" * 129]), "capabilities"),
])
def test_framework_strings_are_capped(info: FrameworkInfo, words: str) -> None:
    assert words in (check_framework(info, None) or "")
    h = Harness()
    assert "subscription refused" in refused(h, Subscribe(framework=info), peer=FW)
    assert not h.core.state.frameworks


def hostile_task(**fields: Any) -> TaskInfo:
    base: dict[str, Any] = {"task_id": "t1", "agent_id": "", "resources": "cpus:1",
                            "command": "true"}
    base.update(fields)
    return TaskInfo(**base)


HOSTILE_TASKS: list[tuple[str, TaskInfo, str]] = [
    ("garbage resources", hostile_task(resources="garbage"), "garbage"),
    ("negative", hostile_task(resources="cpus:-1"), "negative"),
    ("nan", hostile_task(resources="cpus:nan"), "not finite"),
    ("huge", hostile_task(resources="mem:1e305"), "too large"),
    ("ports as an amount", hostile_task(resources="cpus:1;ports:5"), "ports must be ranges"),
    ("cpus as ranges", hostile_task(resources="cpus:[1-2]"), "cpus must be an amount"),
    ("a fraction of a gpu", hostile_task(resources="cpus:1;gpus:0.5"), "whole number"),
    ("env too large", hostile_task(env={"BIG": "x" * MAX_ENV_BYTES}), "environment is"),
    ("env of 400 KB", hostile_task(env={f"V{i}": "x" * 4000 for i in range(100)}),
     "environment is"),
    ("too many variables", hostile_task(env={f"V{i}": "" for i in range(1025)}), "variables"),
    ("env name with '='", hostile_task(env={"A=B": "x"}), "holds '='"),
    ("env name empty", hostile_task(env={"": "x"}), "is empty"),
    ("NUL in env", hostile_task(env={"A": "x\0y"}), "NUL"),
    ("command too large", hostile_task(command="x" * (64 * 1024 + 1)), "command is"),
    ("NUL in command", hostile_task(command="true\0"), "NUL"),
    ("argv too long", hostile_task(shell=False, argv=["a"] * 1025), "arguments"),
    ("argv too large", hostile_task(shell=False, argv=["a" * 70000]), "argv is"),
    ("kill grace nan", hostile_task(kill_grace_period=float("nan")), "kill_grace_period"),
    ("kill grace inf", hostile_task(kill_grace_period=float("inf")), "kill_grace_period"),
    ("kill grace negative", hostile_task(kill_grace_period=-1.0), "kill_grace_period"),
    ("name too long", hostile_task(name="n" * 1025), "name is longer"),
    ("bad role", hostile_task(role="a b"), "invalid role"),
    ("health path too long",
     hostile_task(health_check=HealthCheck(kind="HTTP", port=80, path="/" + "p" * 5000)),
     "path is longer"),
    ("health interval absurd",
     hostile_task(health_check=HealthCheck(kind="TCP", port=80, interval=1e300)),
     "at most 1e9"),
    ("unsafe id", hostile_task(task_id="../etc"), "invalid task id"),
]


@pytest.mark.parametrize("name,task,words", HOSTILE_TASKS, ids=[n for n, _, _ in HOSTILE_TASKS])
def test_hostile_tasks_are_refused_with_task_error(name: str, task: TaskInfo,
                                                    words: str) -> None:
    assert words in (task_problem(task) or ""), task_problem(task)
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0.0)
    good = TaskInfo(task_id="ok", agent_id=agent_id, resources="cpus:1", command="true")
    bad = replace(task, agent_id=agent_id)
    replies = h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                                tasks=[bad, good]), 0.1)
    (status,) = [m.status for m in replies if isinstance(m, StatusUpdate)]
    assert status.state == "TASK_ERROR" and status.reason == "REASON_TASK_INVALID"
    assert words in status.message and len(status.message) < 1000
    assert h.core.state.task(fid, "ok") is not None  # the other task goes ahead
    assert h.core.state.task(fid, task.task_id) is None
    restarts(h)


def test_an_environment_just_within_the_cap_is_accepted() -> None:
    env = {"BIG": "x" * (MAX_ENV_BYTES - len("BIG") - 2)}
    assert task_problem(hostile_task(env=env)) is None
    assert task_problem(hostile_task(env={**env, "A": ""})) is not None


def test_quota_text_is_held_to_the_same_limits() -> None:
    with pytest.raises(ValueError, match="adds up to"):
        quota_amounts(f"cpus:{BIG};cpus:{BIG}", "guarantee")
    with pytest.raises(ValueError, match="characters"):
        quota_amounts("cpus:" + "1" * MAX_RESOURCES_TEXT, "limit")
    h = Harness()
    h.register_agent()
    (reply,) = h.send(b"op", SetQuota(role="eng", guarantee="cpus:1"), 0)
    assert isinstance(reply, OperatorReply)
