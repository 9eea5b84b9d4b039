"""The master's modules import one way: façade → handlers → context → state (issue 11).

Imports inside ``if TYPE_CHECKING:`` count too: a handler that needs the core's type
to be checked depends on the core as much as one that imports it at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

MASTER = Path(__file__).resolve().parents[2] / "mesos_zmq" / "master"
PACKAGE = "mesos_zmq.master"


def master_imports() -> dict[str, set[str]]:
    """Module name (``core``) -> the master modules it imports."""
    modules = {p.stem for p in MASTER.glob("*.py") if p.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        tree = ast.parse((MASTER / f"{name}.py").read_text())
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == PACKAGE:
                    found.update(a.name for a in node.names if a.name in modules)
                elif node.module.startswith(PACKAGE + "."):
                    found.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                found.update(a.name.split(".")[2] for a in node.names
                             if a.name.startswith(PACKAGE + "."))
        graph[name] = found - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_master_import_graph_has_no_cycle() -> None:
    graph = master_imports()
    assert {"core", "agent_api", "scheduler_api", "operator_api", "context"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_handlers_see_the_core_only_through_the_context() -> None:
    graph = master_imports()
    for handler in ("agent_api", "scheduler_api", "operator_api", "views"):
        assert "core" not in graph[handler], handler
        assert "context" in graph[handler], handler
    assert not graph["context"] & {"core", "agent_api", "scheduler_api", "operator_api", "views"}


def test_shared_services_sit_below_the_handlers() -> None:
    graph = master_imports()
    for service in ("offers", "task_book", "liveness"):
        assert not graph[service] & {"core", "agent_api", "scheduler_api", "operator_api"}
        assert "context" in graph[service]


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
