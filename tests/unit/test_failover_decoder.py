"""The record decoder's direct calls to nested records' builders (mesos_zmq.protocol,
``_generate_builder``), the hot part of a new leader's takeover: an agent's
re-registration with its task reports. A nested record, a list of them or an optional
one is built without going through its checker when it is a map; anything else is
still refused, with the same error and location the checkers give."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import pytest

from mesos_zmq.errors import ProtocolError
from mesos_zmq.protocol import (
    PROTOCOL_VERSION,
    HealthCheck,
    ReregisterAgent,
    TaskInfo,
    TaskReport,
    _build,
    decode,
    encode,
    to_wire,
)


def _reregistration(count: int = 4) -> ReregisterAgent:
    tasks = [TaskReport(
        task=TaskInfo(task_id=f"t{i}", agent_id="a1", resources="cpus:1", command="true",
                      env={"K": str(i)} if i % 2 else {},
                      health_check=HealthCheck(kind="TCP", port=8000 + i) if i == 1 else None),
        framework_id="f", state="TASK_RUNNING", exit_code=3 if i == 2 else None)
        for i in range(count)]
    return ReregisterAgent(agent_id="a1", hostname="h1", resources="cpus:8", tasks=tasks)


def _frame(body: dict[str, Any]) -> bytes:
    return msgpack.packb([PROTOCOL_VERSION, "reregister_agent", "r1", body],
                         use_bin_type=True)


def _refusal(body: dict[str, Any]) -> str:
    with pytest.raises(ProtocolError) as err:
        decode(_frame(body))
    assert err.value.code == "bad_field"
    return err.value.message


def test_a_reregistration_decodes_to_what_was_encoded() -> None:
    msg = _reregistration()
    decoded = decode(encode(msg, "r1")).message
    assert decoded == msg
    assert type(decoded.tasks[0]) is TaskReport and type(decoded.tasks[0].task) is TaskInfo
    assert type(decoded.tasks[1].task.health_check) is HealthCheck
    # defaults written out as literals are still a new list and map for every record
    first, second = decoded.tasks[0].task, decoded.tasks[2].task
    assert first.argv == [] and first.argv is not second.argv
    assert first.env == {} and first.env is not second.env


@pytest.mark.parametrize(("path", "value", "message"), [
    (("tasks",), {"a": 1}, "reregister_agent.tasks: expected a list, got dict"),
    (("tasks",), "x", "reregister_agent.tasks: expected a list, got str"),
    (("tasks", 2), "x", "reregister_agent.tasks[2]: expected a map, got str"),
    (("tasks", 3), None, "reregister_agent.tasks[3]: expected a map, got nil"),
    (("tasks", 1, "task"), [1], "reregister_agent.tasks[1].task: expected a map, got list"),
    (("tasks", 2, "task", "resources"), 5,
     "reregister_agent.tasks[2].task.resources: expected a string, got int"),
    (("tasks", 0, "task", "health_check"), 5,
     "reregister_agent.tasks[0].task.health_check: expected a map, got int"),
    (("tasks", 1, "task", "health_check", "port"), "80",
     "reregister_agent.tasks[1].task.health_check.port: expected an integer, got str"),
    (("tasks", 3, "task", "env", "K"), 1,
     "reregister_agent.tasks[3].task.env['K']: expected a string, got int"),
    (("tasks", 2, "exit_code"), True,
     "reregister_agent.tasks[2].exit_code: expected an integer, got bool"),
])
def test_a_mistyped_nested_field_is_refused_where_it_is(path: tuple[Any, ...], value: Any,
                                                          message: str) -> None:
    body = to_wire(_reregistration())
    node: Any = body
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    assert _refusal(body) == message


def test_a_missing_nested_field_is_refused_where_it_is() -> None:
    body = to_wire(_reregistration())
    del body["tasks"][3]["task"]["task_id"]
    assert _refusal(body) == "reregister_agent.tasks[3].task: missing field 'task_id'"
    body = to_wire(_reregistration())
    del body["tasks"][1]["task"]
    assert _refusal(body) == "reregister_agent.tasks[1]: missing field 'task'"


def test_an_optional_nested_record_may_be_nil() -> None:
    body = to_wire(_reregistration())
    body["tasks"][1]["task"]["health_check"] = None
    assert decode(_frame(body)).message.tasks[1].task.health_check is None


@dataclass(frozen=True, slots=True)
class _Node:
    """A record that nests itself: its builder cannot call its own, not yet built."""

    name: str
    child: _Node | None = None
    children: list[_Node] | None = None


def test_a_record_nested_in_itself_is_built_and_checked() -> None:
    body = {"name": "a", "child": {"name": "b", "child": {"name": "c"}},
            "children": [{"name": "d"}]}
    node = _build(_Node, body, "node")
    assert node == _Node("a", _Node("b", _Node("c")), [_Node("d")])
    body["child"]["child"]["name"] = 1
    with pytest.raises(ProtocolError) as err:
        _build(_Node, body, "node")
    assert err.value.message == "node.child.child.name: expected a string, got int"
