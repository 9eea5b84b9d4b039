"""The cores stay pure by construction: no I/O, no threads, no clock.

Walks the imports of each core module and of every mesos_zmq module it imports in
turn, and fails if any of them imports a forbidden module or calls a clock function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mesos_zmq

PACKAGE = Path(mesos_zmq.__file__).parent
CORES = [
    "mesos_zmq.master.core",
    "mesos_zmq.master.state",
    "mesos_zmq.master.operator_api",
    "mesos_zmq.master.agent_api",
    "mesos_zmq.master.scheduler_api",
    "mesos_zmq.master.runtime",
    "mesos_zmq.allocator.allocator",
    "mesos_zmq.allocator.sorter",
    "mesos_zmq.agent.core",
    "mesos_zmq.agent.gc",
    "mesos_zmq.agent.health_policy",
    "mesos_zmq.scheduler.core",
    "mesos_zmq.protocol",
    "mesos_zmq.resources",
    "mesos_zmq.attributes",
    "mesos_zmq.tasks",
    "mesos_zmq.heartbeat",
]
FORBIDDEN = {
    "zmq", "kazoo", "socket", "subprocess", "threading", "asyncio", "time",
    "selectors", "multiprocessing", "concurrent", "signal",
}
CLOCK_CALLS = {"now", "utcnow", "today", "monotonic", "perf_counter", "time_ns"}


def module_path(name: str) -> Path:
    rel = Path(*name.split(".")[1:])
    if not rel.parts:  # the package itself
        return PACKAGE / "__init__.py"
    candidate = PACKAGE / rel.with_suffix(".py")
    return candidate if candidate.exists() else PACKAGE / rel / "__init__.py"


def imports_of(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def violations(start: str) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_path(name)
        if not path.exists():
            continue
        tree = ast.parse(path.read_text(), str(path))
        for imported in imports_of(tree):
            top = imported.split(".")[0]
            if top in FORBIDDEN:
                problems.append(f"{name} imports {imported}")
            if top == "mesos_zmq" and module_path(imported).exists():
                todo.append(imported)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in CLOCK_CALLS
            ):
                problems.append(f"{name} calls .{node.func.attr}() (line {node.lineno})")
    return problems


@pytest.mark.parametrize("core", CORES)
def test_core_module_is_pure(core: str) -> None:
    assert module_path(core).exists(), f"{core} is missing"
    assert violations(core) == []


def test_checker_catches_an_impure_module(tmp_path: Path) -> None:
    tree = ast.parse("import time\nfrom zmq import Context\nx = time.monotonic()\n")
    assert {"time", "zmq"} <= {i.split(".")[0] for i in imports_of(tree)}
