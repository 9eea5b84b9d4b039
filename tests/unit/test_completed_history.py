"""Completed-task history bounded per framework, in all, by age and by removed
frameworks (issue 13, "reads"), and trimmed the same way live and on replay."""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest

from mesos_zmq.master import flags
from mesos_zmq.master.records import (
    AgentAdded,
    FrameworkAdded,
    FrameworkRemoved,
    OfferRemoved,
    StateRecord,
    TaskAdded,
    TaskUpdated,
    record_to_plain,
)
from mesos_zmq.master.state import REMOVED_LIMIT, HistoryLimits, MasterState, replay, state_from
from mesos_zmq.protocol import FrameworkInfo, GetTasks, TaskInfo, Tasks
from tests.unit.test_master_core import Harness
from tests.unit.test_task_pages import ten_tasks


def added(fid: str, tid: str, time: float) -> TaskAdded:
    return TaskAdded(framework_id=fid, task=TaskInfo(task_id=tid, agent_id="A1",
                                                     resources="cpus:1"), time=time)


def ended(fid: str, tid: str, time: float | None,
          state: str = "TASK_FINISHED") -> TaskUpdated:
    return TaskUpdated(framework_id=fid, task_id=tid, state=state, time=time)


def framework(fid: str, time: float = 1.0) -> FrameworkAdded:
    return FrameworkAdded(framework=FrameworkInfo(name=fid, framework_id=fid), time=time)


def applied(limits: HistoryLimits, records: list[StateRecord]) -> MasterState:
    state = MasterState(limits)
    for record in records:
        state.apply(record)
    return state


def completed_ids(state: MasterState, fid: str | None = None) -> list[str]:
    return [rec.task_id for rec in state.completed.values()
            if fid is None or rec.framework_id == fid]


def run_and_end(fid: str, ids: list[str], start: float) -> list[StateRecord]:
    out: list[StateRecord] = []
    for i, tid in enumerate(ids):
        out += [added(fid, tid, start + i), ended(fid, tid, start + i + 0.5)]
    return out


def test_the_defaults_are_the_flags_and_mesoss() -> None:
    limits = HistoryLimits()
    assert limits.per_framework == flags.default("max_completed_tasks_per_framework") == 1000
    assert limits.frameworks == flags.default("max_completed_frameworks") == 50
    assert limits.total == flags.default("max_completed_tasks") == 10_000
    assert limits.age == flags.default("max_completed_task_age") == 7 * 24 * 3600.0
    assert MasterState().history == limits
    # a removed framework keeps its history only while its id is remembered
    assert flags.BY_NAME["max_completed_frameworks"].high == REMOVED_LIMIT
    problems = flags.range_problems({"max_completed_tasks_per_framework": -1,
                                     "max_completed_task_age": -5.0})
    assert any("--max-completed-tasks-per-framework" in p for p in problems)
    assert any("--max-completed-task-age" in p for p in problems)


def test_each_framework_keeps_its_newest_tasks() -> None:
    state = applied(HistoryLimits(per_framework=3), [
        framework("F1"), framework("F2"),
        *run_and_end("F1", ["a0", "a1"], 10.0),
        *run_and_end("F2", ["b0", "b1"], 20.0),
        *run_and_end("F1", ["a2", "a3", "a4"], 30.0),
    ])
    assert completed_ids(state) == ["b0", "b1", "a2", "a3", "a4"]
    assert [r.task_id for r in state.completed_of("F1")] == ["a2", "a3", "a4"]
    assert [r.task_id for r in state.completed_of("F2")] == ["b0", "b1"]
    assert state.task("F1", "a0") is None and state.task("F2", "b0") is not None


def test_the_total_bound_forgets_the_oldest_of_any_framework() -> None:
    state = applied(HistoryLimits(total=3), [
        framework("F1"), framework("F2"),
        *run_and_end("F1", ["a0"], 10.0), *run_and_end("F2", ["b0", "b1"], 20.0),
        *run_and_end("F1", ["a1"], 30.0),
    ])
    assert completed_ids(state) == ["b0", "b1", "a1"]
    assert [r.task_id for r in state.completed_of("F1")] == ["a1"]
    state = applied(HistoryLimits(per_framework=0), run_and_end("F1", ["a0"], 1.0))
    assert not state.completed and state.completed_of("F1") == []


def test_tasks_older_than_the_age_are_forgotten_as_records_come() -> None:
    state = applied(HistoryLimits(age=100.0), [
        framework("F1"), *run_and_end("F1", ["a0"], 1000.0),
        *run_and_end("F1", ["a1"], 1010.0), *run_and_end("F1", ["a2"], 1050.0)])
    assert completed_ids(state) == ["a0", "a1", "a2"]
    state.apply(OfferRemoved(offer_id="o"))  # no time: nothing to measure against
    state.apply(AgentAdded(agent_id="A9", hostname="h", resources="cpus:1"))  # time 0: an old log
    assert completed_ids(state) == ["a0", "a1", "a2"]
    state.apply(AgentAdded(agent_id="A2", hostname="h", resources="cpus:1", time=1105.0))
    assert completed_ids(state) == ["a1", "a2"]  # a0 ended at 1000.5, before 1005
    state.apply(added("F1", "a3", 1151.0))
    assert completed_ids(state) == [] and state.completed_of("F1") == []
    assert state.task("F1", "a3") is not None  # active tasks are not history


def test_only_the_newest_removed_frameworks_keep_their_tasks() -> None:
    state = applied(HistoryLimits(frameworks=1), [
        framework("F1"), framework("F2"), framework("F3"),
        *run_and_end("F1", ["a0"], 10.0), added("F1", "a1", 11.0),
        *run_and_end("F2", ["b0"], 20.0), *run_and_end("F3", ["c0"], 30.0),
        FrameworkRemoved(framework_id="F1", time=40.0)])
    assert completed_ids(state) == ["a0", "b0", "c0"]  # F1 is the newest removed one
    state.apply(FrameworkRemoved(framework_id="F2", time=41.0))
    assert completed_ids(state) == ["b0", "c0"]  # F1 fell out of the window
    state.apply(ended("F1", "a1", 42.0, "TASK_KILLED"))
    assert completed_ids(state) == ["b0", "c0"] and state.task("F1", "a1") is None
    assert list(state.removed_frameworks) == ["F1", "F2"]  # their ids stay refused
    # a framework back under its id (re-added) keeps what it finishes from then on
    state.apply(framework("F1", 50.0))
    state.apply(ended("F3", "c0", 51.0))
    state.apply(FrameworkRemoved(framework_id="F3", time=52.0))
    assert completed_ids(state) == ["c0"]
    none = applied(HistoryLimits(frameworks=0), [
        framework("F1"), *run_and_end("F1", ["a0"], 1.0),
        FrameworkRemoved(framework_id="F1", time=2.0)])
    assert not none.completed


def test_a_task_that_comes_back_leaves_the_history_and_ends_again_at_its_end() -> None:
    state = applied(HistoryLimits(per_framework=2), [
        framework("F1"), *run_and_end("F1", ["a0", "a1"], 1.0),
        ended("F1", "a0", 5.0, "TASK_RUNNING")])
    assert completed_ids(state) == ["a1"] and [r.task_id for r in state.completed_of("F1")] \
        == ["a1"]
    state.apply(ended("F1", "a0", 6.0, "TASK_FAILED"))
    assert completed_ids(state) == ["a1", "a0"]


def random_log(rng: random.Random, now: float = 1000.0) -> list[StateRecord]:
    """Frameworks come and go, tasks start and end (some end twice, some come back),
    times never go back (from ``now`` on)."""
    frameworks: list[str] = []
    active: list[tuple[str, str]] = []
    ended_keys: list[tuple[str, str]] = []
    out: list[StateRecord] = [AgentAdded(agent_id="A1", hostname="h", resources="cpus:9",
                                         time=now)]
    for n in range(rng.randint(20, 200)):
        now += rng.choice((0.0, 0.5, 3.0, 20.0))
        roll = rng.random()
        if roll < 0.08 or not frameworks:
            fid = f"F{rng.randint(0, 6)}"
            out.append(framework(fid, now))
            frameworks.append(fid)
        elif roll < 0.13:
            fid = rng.choice(frameworks)
            out.append(FrameworkRemoved(framework_id=fid, time=now))
        elif roll < 0.55:
            key = (rng.choice(frameworks), f"t{n}")
            out.append(added(*key, now))
            active.append(key)
        elif roll < 0.9 and active:
            key = active.pop(rng.randrange(len(active)))
            out.append(ended(*key, now, rng.choice(("TASK_FINISHED", "TASK_FAILED",
                                                    "TASK_LOST"))))
            ended_keys.append(key)
        elif ended_keys:
            key = rng.choice(ended_keys)
            state = rng.choice(("TASK_RUNNING", "TASK_KILLED", "TASK_FINISHED"))
            out.append(ended(*key, now if rng.random() < 0.9 else None, state))
            if state == "TASK_RUNNING":
                active.append(key)
    return out


def same(a: Any, b: Any) -> bool:
    return bool(msgpack.packb(a, use_bin_type=True) == msgpack.packb(b, use_bin_type=True))


def check_bounds(state: MasterState, limits: HistoryLimits, time: float | None) -> None:
    """The history within its limits; ``time``: that of the record just applied."""
    per: dict[str, list[str]] = {}
    for rec in state.completed.values():
        assert rec.terminal
        per.setdefault(rec.framework_id, []).append(rec.task_id)
    if time and state.completed:
        # the oldest ended within the age (a task re-ended by a record of an old log,
        # without a time, keeps its time but goes last: it waits for those before it)
        assert next(iter(state.completed.values())).updated_at >= time - limits.age
    assert len(state.completed) <= limits.total
    for fid, ids in per.items():
        assert len(ids) <= limits.per_framework
        assert [r.task_id for r in state.completed_of(fid)] == ids
    removed = list(state.removed_frameworks)
    kept = removed[max(0, len(removed) - limits.frameworks):] if limits.frameworks else []
    for fid in per:
        assert fid not in state.removed_frameworks or fid in kept


@pytest.mark.parametrize("seed", range(150))
def test_trimming_replays_to_the_live_history(seed: int) -> None:
    rng = random.Random(seed)
    limits = HistoryLimits(per_framework=rng.randint(0, 6), total=rng.randint(0, 15),
                           age=rng.choice((30.0, 200.0, 1e9)), frameworks=rng.randint(0, 3))
    records = random_log(rng)
    live = MasterState(limits)
    cut = rng.randrange(len(records))
    snapshot: dict[str, Any] = {}
    last_time = 0.0
    for i, record in enumerate(records):
        live.apply(record)
        last_time = getattr(record, "time", None) or last_time
        if i == cut:
            snapshot = msgpack.unpackb(msgpack.packb(live.snapshot(), use_bin_type=True),
                                       raw=False)
        check_bounds(live, limits, getattr(record, "time", None))
    plain = [record_to_plain(r) for r in records]
    assert same(state_from(None, plain, limits).snapshot(), live.snapshot())
    assert same(state_from(snapshot, plain[cut + 1:], limits).snapshot(), live.snapshot())
    restored = MasterState.restore(msgpack.unpackb(msgpack.packb(
        live.snapshot(), use_bin_type=True), raw=False), limits)
    assert same(restored.snapshot(), live.snapshot())
    # and restored, the history goes on being trimmed as the live one
    more = random_log(random.Random(seed + 10_000), now=last_time)
    replay(restored, [record_to_plain(r) for r in more])
    for record in more:
        live.apply(record)
    assert same(restored.snapshot(), live.snapshot())


def test_a_smaller_limit_trims_a_snapshot_taken_under_a_larger_one() -> None:
    records = [framework("F1"), *run_and_end("F1", [f"a{i}" for i in range(6)], 10.0)]
    wide = applied(HistoryLimits(), records)
    narrow = MasterState.restore(wide.snapshot(), HistoryLimits(per_framework=2))
    assert completed_ids(narrow) == ["a4", "a5"]
    assert same(narrow.snapshot(), applied(HistoryLimits(per_framework=2), records).snapshot())


def test_the_master_core_keeps_the_bounded_history_and_its_log_replays_to_it() -> None:
    h = Harness()
    limits = HistoryLimits(per_framework=2)
    h.core.state.history = limits  # an empty state: as if built with these limits
    ten_tasks(h, count=5, finished=4)
    (reply,) = h.send(b"cli", GetTasks(which="completed"), 20.0)
    assert isinstance(reply, Tasks)
    assert [t["id"] for t in reply.tasks] == ["t3", "t2"] and reply.total == 2
    recovered = h.log.recover()
    replayed = state_from(recovered.snapshot, recovered.records, limits)
    assert same(replayed.snapshot(), h.core.state.snapshot())
    # under the default limits, the same log keeps every one of them
    assert completed_ids(state_from(recovered.snapshot, recovered.records)) == [
        "t0", "t1", "t2", "t3"]
