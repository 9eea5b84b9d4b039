"""The three pure cores keep one shape (see mesos_zmq/batch.py): typed input, a dispatch
table keyed by message type, a typed output batch."""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing
from typing import Any

import pytest

from mesos_zmq.agent.core import AgentCore, Effects
from mesos_zmq.batch import Batch
from mesos_zmq.master.core import MasterCore, MasterCoreConfig, Ready
from mesos_zmq.protocol import FrameworkInfo, Heartbeat, Message
from mesos_zmq.resources import Resources
from mesos_zmq.scheduler import core as driver_core
from mesos_zmq.scheduler.core import DriverCore


def _ids() -> typing.Callable[[], str]:
    n = iter(range(1_000_000))
    return lambda: f"id-{next(n)}"


def _cores() -> list[tuple[Any, Any, typing.Callable[[], Any]]]:
    master = MasterCore(MasterCoreConfig(), _ids())
    agent = AgentCore("h", Resources.parse("cpus:1;mem:64"), "", None, _ids())
    driver = DriverCore(FrameworkInfo(name="f"), _ids())
    return [
        (master, Ready, lambda: master.handle(b"p", Heartbeat(), "", 1.0)),
        (agent, Effects, lambda: agent.handle(Heartbeat(), "", 1.0)),
        (driver, driver_core.Actions, lambda: driver.handle(Heartbeat(), "", 1.0)),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["master", "agent", "driver"])
def test_each_core_returns_its_typed_batch_from_handle_and_tick(index: int) -> None:
    core, batch_type, handle = _cores()[index]
    hints = {name: typing.get_type_hints(getattr(type(core), name), vars(inspect.getmodule(
        type(core)))) for name in ("handle", "tick")}
    for name, hint in hints.items():
        assert hint["return"] == batch_type, f"{type(core).__name__}.{name}"
    out = handle()
    assert isinstance(out, typing.get_origin(batch_type) or batch_type)
    assert isinstance(out, Batch)
    later = core.tick(2.0)
    assert isinstance(later, Batch)
    out.extend(later)  # a batch takes in a later one (the shells merge batches)
    empty = (typing.get_origin(batch_type) or batch_type)()
    assert not empty, "an empty batch is falsy"


@pytest.mark.parametrize("index", [0, 1, 2], ids=["master", "agent", "driver"])
def test_each_core_dispatches_messages_through_a_table_not_an_isinstance_chain(
        index: int) -> None:
    core, _, _ = _cores()[index]
    tables = [v for v in vars(core).values()
              if isinstance(v, dict) and v and all(isinstance(k, type) for k in v)]
    assert len(tables) == 1, "one dispatch table keyed by message type"
    assert all(issubclass(k, Message) for k in tables[0])
    source = textwrap.dedent(inspect.getsource(type(core).handle))
    calls = [n for n in ast.walk(ast.parse(source))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id == "isinstance"]
    assert calls == [], "handle dispatches by table"
