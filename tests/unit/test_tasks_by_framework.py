"""The master's index of each framework's active tasks (``tasks_by_framework``) is the
active tasks grouped by framework, in the order of ``tasks``, after any run of task
records and after a restore from a snapshot: a framework's re-subscription, implicit
reconciliation and removal read it instead of every task of the cluster, and commit
in its order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.master.records import TaskAdded, TaskUpdated
from mesos_zmq.master.state import MasterState
from mesos_zmq.protocol import TaskInfo
from tests.unit.test_master_core import FW, Harness, launch

STATES = ["TASK_STAGING", "TASK_RUNNING", "TASK_FINISHED", "TASK_LOST", "TASK_UNREACHABLE"]

step = st.tuples(st.sampled_from(["add", "update"]), st.sampled_from(["F1", "F2", "F3"]),
                 st.integers(0, 5), st.sampled_from(STATES), st.sampled_from(["A1", "A2"]))


def _grouped(state: MasterState) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for key, rec in state.tasks.items():
        out.setdefault(rec.framework_id, []).append(key)
    return out


def _indexed(state: MasterState) -> dict[str, list[tuple[str, str]]]:
    return {fid: [(r.framework_id, r.task_id) for r in state.active_tasks_of(fid)]
            for fid in state.tasks_by_framework}


@settings(max_examples=200, deadline=None)
@given(st.lists(step, max_size=60))
def test_the_index_is_the_active_tasks_grouped_in_order(steps: list[tuple]) -> None:  # type: ignore[type-arg]
    state = MasterState()
    for kind, fid, n, task_state, agent in steps:
        if kind == "add":
            state.apply(TaskAdded(framework_id=fid, task=TaskInfo(
                task_id=f"t{n}", agent_id=agent, resources="cpus:1", command="true"),
                state=task_state, time=1.0))
        else:
            state.apply(TaskUpdated(framework_id=fid, task_id=f"t{n}", state=task_state,
                                    time=2.0))
        assert _indexed(state) == _grouped(state)
        by_agent: dict[str, set[tuple[str, str]]] = {}
        for key, rec in state.tasks.items():
            by_agent.setdefault(rec.agent_id, set()).add(key)
        assert {a: {(r.framework_id, r.task_id) for r in state.active_tasks_on(a)}
                for a in by_agent} == by_agent
    restored = MasterState.restore(state.snapshot())
    assert _indexed(restored) == _grouped(restored) == _grouped(state)


def test_an_implicit_reconcile_answers_for_the_framework_s_own_active_tasks() -> None:
    from mesos_zmq.protocol import Reconcile, StatusUpdate

    h = Harness()
    _, fid, _ = launch(h)
    h.sent.clear()
    h.send(FW, Reconcile(framework_id=fid, tasks=[]), 1.0)
    told = [m.status for _, m, _ in h.sent if isinstance(m, StatusUpdate)]
    assert [(s.task_id, s.state, s.reason) for s in told] == [
        ("t1", "TASK_STAGING", "REASON_RECONCILIATION")]
