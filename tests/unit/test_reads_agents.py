"""The agents' views in a state read from the read cache (issue 13): an agent whose
tasks alone changed has its count and use patched into its encoded view, not the view
built again (under churn that was two thirds of a read's cost); whatever mix of task
and agent changes comes between reads, the answer is byte for byte a fresh build's."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.master import read_cache
from mesos_zmq.master import records as r
from mesos_zmq.master.loop_reads import LoopReads
from mesos_zmq.protocol import TaskInfo, TaskUsage
from tests.unit.test_read_cache import SHAPES, Cluster, answer

#: what may happen between two reads: tasks started on an agent, updated, ended,
#: usage reported; agents changed (registered, drained, connected...); a read
OPS = st.lists(st.one_of(
    st.tuples(st.just("start"), st.integers(0, 33), st.integers(0, 2)),
    st.tuples(st.just("running"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("end"), st.integers(0, 10**6), st.integers(0, 2)),
    st.tuples(st.just("usage"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("agent"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("read"), st.sampled_from((None, 0, 3, 100)), st.just(0)),
), max_size=80)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), ops=OPS)
def test_agents_touched_by_tasks_alone_are_patched_and_every_read_is_a_fresh_build(
        seed: int, ops: list[tuple[str, Any, int]]) -> None:
    cluster = Cluster(seed, tasks=60)
    state, core = cluster.state, cluster.core
    reads = LoopReads()
    built: list[str] = []
    real = read_cache.agent_view

    def counted(core: Any, totals: Any, aid: str, agent: Any, empty: str) -> Any:
        built.append(aid)
        return real(core, totals, aid, agent, empty)

    read_cache.agent_view = counted  # (not monkeypatch: a function-scoped fixture)
    try:
        assert answer(reads, cluster, None) == cluster.expected(None)
        agents_changed = False
        for n, (op, arg, pick) in enumerate([*ops, ("read", None, 0)]):
            active = list(state.tasks)
            if op == "read":
                built.clear()
                assert answer(reads, cluster, arg) == cluster.expected(arg)
                if not agents_changed:
                    assert built == []
                agents_changed = False
            elif op == "start":
                state.apply(r.TaskAdded(framework_id="fa", task=TaskInfo(
                    task_id=f"h{n}", agent_id=f"ag{arg:02d}", resources=SHAPES[pick],
                    name="n", role="*"), state="TASK_STAGING", time=3.0))
            elif op == "agent":
                cluster.change_agent()
                agents_changed = True
            elif active:
                fid, tid = active[arg % len(active)]
                if op == "running":
                    state.apply(r.TaskUpdated(framework_id=fid, task_id=tid,
                                              state="TASK_RUNNING", time=3.5))
                elif op == "end":
                    state.apply(r.TaskUpdated(framework_id=fid, task_id=tid, state=(
                        "TASK_FINISHED", "TASK_FAILED", "TASK_LOST")[pick], exit_code=0,
                        time=4.0))
                else:
                    core.usage[(fid, tid)] = TaskUsage(fid, tid, 1.5, 100 + n, 200 + n)
    finally:
        read_cache.agent_view = real
