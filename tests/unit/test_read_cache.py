"""State reads answered in the loop from the read cache (issue 13): byte for byte what
the forked child's ``describe_cluster`` + ``encode`` answer, through adds, updates,
ends, trimmed history, usage figures, reservations, drains and removed frameworks;
readers the ACLs hide tasks from go to the child; the journal keeps the cache's order
of tasks the state's own."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from mesos_zmq.auth.acls import Acls
from mesos_zmq.auth.principal import Principal
from mesos_zmq.master import loop_reads
from mesos_zmq.master import records as r
from mesos_zmq.master.core import DeferredRead, MasterCore, MasterCoreConfig
from mesos_zmq.master.journal import JournaledDict, JournaledOrderedDict
from mesos_zmq.master.loop_reads import LoopReads
from mesos_zmq.master.operator_api import shows_of
from mesos_zmq.master.read_cache import _Mirror
from mesos_zmq.master.state import HistoryLimits, MasterState
from mesos_zmq.master.views import describe_cluster
from mesos_zmq.protocol import (
    FrameworkInfo,
    GetState,
    GetTasks,
    State,
    TaskInfo,
    TaskUsage,
    encode,
)

FRAMEWORKS = {"fa": "analytics", "fo": "other", "fz": ""}
SHAPES = ("cpus:0.5;mem:64", "cpus:1;mem:128", "cpus:0.25;mem:32;disk:10")
EPOCH = 7

ANALYTICS_ONLY = Acls.from_json({
    "permissive": True,
    "view_tasks": [
        {"principals": {"values": ["bob"]}, "framework_principals": {"type": "ANY"}},
        {"principals": {"type": "ANY"}, "framework_principals": {"values": ["analytics"]}},
        {"principals": {"type": "ANY"}, "framework_principals": {"type": "NONE"}},
    ],
    "view_frameworks": [
        {"principals": {"values": ["bob"]}, "framework_principals": {"values": ["other"]}},
    ],
})
ALICE = Principal("alice", "operator")  # sees analytics' tasks only
BOB = Principal("bob", "operator")  # sees every task, and only other's framework


class Cluster:
    """A master core with many tasks, changed record by record as the core would."""

    def __init__(self, seed: int, acls: Acls | None = None, tasks: int = 400) -> None:
        self.rng = random.Random(seed)
        self.seq = itertools.count()
        state = MasterState(HistoryLimits(per_framework=30, total=60))
        for fid, owner in FRAMEWORKS.items():
            state.apply(r.FrameworkAdded(framework=FrameworkInfo(
                name=fid, framework_id=fid, roles=[f"role-{fid}"]), time=1.0))
            if owner:
                state.apply(r.OwnerSet(kind="framework", ident=fid, principal=owner))
        for a in range(30):
            state.apply(r.AgentAdded(agent_id=f"ag{a:02d}", hostname=f"h{a}",
                                     resources="cpus:64;mem:65536;disk:1000", time=1.0))
        state.apply(r.WeightsSet(weights={"role-fa": 2.0}, time=1.0))
        state.apply(r.ReservationsSet(agent_id="ag03", reserved="cpus(role-fa):2", time=1.0))
        state.apply(r.AgentDraining(agent_id="ag04", time=1.0))
        self.core = MasterCore(MasterCoreConfig(acls=acls), lambda: f"id{next(self.seq)}",
                               state, now=2.0)
        for _ in range(tasks):
            self.add()

    @property
    def state(self) -> MasterState:
        return self.core.state

    def add(self, key: tuple[str, str] | None = None) -> None:
        rng = self.rng
        fid, tid = key or (rng.choice(list(FRAMEWORKS)), f"t{next(self.seq)}")
        self.state.apply(r.TaskAdded(
            framework_id=fid,
            task=TaskInfo(task_id=tid,
                          agent_id=f"ag{rng.randrange(30):02d}",
                          resources=rng.choice(SHAPES), name="n", role="*"),
            state=rng.choice(("TASK_STAGING", "TASK_RUNNING")), time=3.0))

    def churn(self, steps: int) -> None:
        """Random changes of every kind a read must follow."""
        rng, state, usage = self.rng, self.state, self.core.usage
        for _ in range(steps):
            active = list(state.tasks)
            roll = rng.random()
            if roll < 0.25 or not active:
                self.add()
            elif roll < 0.45:
                fid, tid = rng.choice(active)
                state.apply(r.TaskUpdated(framework_id=fid, task_id=tid, state=rng.choice(
                    ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED")), exit_code=1,
                    message="ended", time=4.0 + rng.random()))
            elif roll < 0.55:
                fid, tid = rng.choice(active)
                state.apply(r.TaskUpdated(framework_id=fid, task_id=tid, state="TASK_RUNNING",
                                          message="again", time=None))
            elif roll < 0.75:
                fid, tid = rng.choice(active)
                usage[(fid, tid)] = TaskUsage(fid, tid, rng.random() * 100, rng.randrange(9**9),
                                              rng.randrange(9**9))
            elif roll < 0.8 and usage:
                usage.pop(rng.choice(list(usage)))
            elif roll < 0.85 and state.completed:
                # a finished task's id launched again: it leaves the history, joins the end
                self.add(rng.choice(list(state.completed)))
            elif roll < 0.9 and state.completed:
                # a finished task seen running again (an agent that comes back)
                fid, tid = rng.choice(list(state.completed))
                state.apply(r.TaskUpdated(framework_id=fid, task_id=tid, state="TASK_RUNNING",
                                          time=5.0))
            elif roll < 0.95:
                aid = f"ag{rng.randrange(30):02d}"
                state.apply(r.ReservationsSet(agent_id=aid, reserved=rng.choice(
                    ("", "cpus(role-fo):1")), time=5.0))
            else:
                fid, tid = rng.choice(active)
                state.apply(r.TaskUpdated(framework_id=fid, task_id=tid,
                                          state="TASK_UNREACHABLE", reason="gone", time=6.0))

    def expected(self, limit: int | None, who: Principal | None = None) -> bytes:
        """What the forked child answers: its views, encoded."""
        core = self.core
        core.principal = who
        try:
            return encode(State(state=describe_cluster(core, 9.0, shows_of(core), limit)),
                          "rid", EPOCH)
        finally:
            core.principal = None


def ask(reads: LoopReads, cluster: Cluster, msg: Any, who: Principal | None = None,
        ) -> tuple[list[tuple[bytes, bytes]], list[DeferredRead]]:
    read = DeferredRead(b"reader", msg, "rid", who)
    return reads.take(cluster.core, [read], 9.0, EPOCH)


def answer(reads: LoopReads, cluster: Cluster, limit: int | None,
           who: Principal | None = None) -> bytes:
    answers, forked = ask(reads, cluster, GetState(tasks_limit=limit), who)
    turns = 0
    while not answers and not forked and turns < 1000:
        answers, forked = reads.turn(cluster.core, 9.0, EPOCH)
        turns += 1
    assert not forked and len(answers) == 1, (answers, forked)
    assert answers[0][0] == b"reader"
    return answers[0][1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_cached_state_is_the_childs_byte_for_byte_through_every_change(seed: int) -> None:
    cluster = Cluster(seed)
    reads = LoopReads()
    for round_ in range(12):
        for limit in (None, 100, 0, 3):
            assert answer(reads, cluster, limit) == cluster.expected(limit), (round_, limit)
        cluster.churn(cluster.rng.choice((5, 60, 400)))
    state = cluster.state
    # the run went through what it is meant to: history trimmed, usage shown, many tasks
    assert len(state.completed) == 60 and len(state.tasks) > 300
    assert b"rss_bytes" in answer(reads, cluster, None)


def test_a_reader_who_sees_every_task_is_answered_in_the_loop_as_the_child_would() -> None:
    cluster = Cluster(4, acls=ANALYTICS_ONLY)
    reads = LoopReads()
    for _ in range(3):
        for limit in (None, 5):
            # bob sees every task but only other's framework (and its role)
            assert answer(reads, cluster, limit, BOB) == cluster.expected(limit, BOB)
            # no principal (no keys): no ACL applies
            assert answer(reads, cluster, limit) == cluster.expected(limit)
        cluster.churn(50)


def test_a_reader_the_acls_hide_tasks_from_is_left_to_the_child() -> None:
    cluster = Cluster(5, acls=ANALYTICS_ONLY)
    reads = LoopReads()
    answers, forked = ask(reads, cluster, GetState(), ALICE)
    assert answers == [] and [read.principal for read in forked] == [ALICE]
    assert cluster.core.counters["state_reads_forked_tasks_hidden"] == 1
    # ... and what the child answers leaves those tasks out
    assert b'"fo"' not in cluster.expected(None, ALICE)


def test_task_pages_are_answered_in_the_loop_as_the_child_would() -> None:
    cluster = Cluster(6, acls=ANALYTICS_ONLY)
    cluster.churn(100)
    reads = LoopReads()
    for who in (None, ALICE, BOB):
        for msg in (GetTasks(limit=7, offset=3), GetTasks(which="completed", order="asc"),
                    GetTasks(framework_id="fo", limit=1000)):
            core = cluster.core
            ((peer, frame),), forked = ask(reads, cluster, msg, who)
            assert core.principal is None  # the reader's principal did not stay behind
            ((_, reply, rid),) = core.answer_read(DeferredRead(peer, msg, "rid", who),
                                                 9.0).messages
            core.principal = None
            assert forked == [] and frame == encode(reply, rid, EPOCH)


def test_a_cold_cache_leaves_reads_to_the_child_and_catches_up_meanwhile(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(7, tasks=1200)
    reads = LoopReads()
    monkeypatch.setattr(loop_reads, "PARK_LIMIT", 100)
    monkeypatch.setattr(loop_reads, "IN_LOOP_PENDING", 50)
    monkeypatch.setattr(loop_reads, "SLICE", 0.0)  # 256 tasks a turn
    answers, forked = ask(reads, cluster, GetState())
    assert answers == [] and len(forked) == 1
    assert cluster.core.counters["state_reads_forked_cache_behind"] == 1
    turns = 0
    while reads.cache.pending > loop_reads.IN_LOOP_PENDING:
        assert reads.turn(cluster.core, 9.0, EPOCH) == ([], [])
        turns += 1
    assert turns >= 1
    assert answer(reads, cluster, None) == cluster.expected(None)


def test_a_read_waits_a_few_turns_for_the_cache_then_goes_to_the_child(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(8, tasks=1200)
    reads = LoopReads()
    monkeypatch.setattr(loop_reads, "IN_LOOP_PENDING", 10)
    monkeypatch.setattr(loop_reads, "AFTER_SLICE", 5)
    monkeypatch.setattr(loop_reads, "SLICE", 0.0)
    answers, forked = ask(reads, cluster, GetState(tasks_limit=10))
    assert (answers, forked) == ([], []) and reads.waiting == 1
    turns = 0
    while not answers:
        answers, forked = reads.turn(cluster.core, 9.0, EPOCH)
        turns += 1
    assert turns > 1 and forked == [] and reads.waiting == 0
    assert answers == [(b"reader", cluster.expected(10))]
    # one that waited too long goes to the child
    cluster.churn(2000)
    monkeypatch.setattr(loop_reads, "MAX_WAIT", 0.0)
    answers, forked = ask(reads, cluster, GetState())
    assert answers == [] and reads.waiting == 1
    answers, forked = reads.turn(cluster.core, 9.5, EPOCH)
    assert answers == [] and len(forked) == 1 and reads.waiting == 0


def test_a_replaced_core_or_state_starts_the_cache_over_and_idle_drops_it() -> None:
    cluster = Cluster(9)
    reads = LoopReads(idle_after=30.0)
    assert answer(reads, cluster, None) == cluster.expected(None)
    # the shell rebuilds its core from the log after a handler failure
    old = cluster.core
    restored = MasterState.restore(old.state.snapshot(), old.state.history)
    cluster.core = MasterCore(old.config, old.new_id, restored, now=3.0)
    # the next turn lets go of the old core's maps (nothing else holds them)
    assert reads.cache.attached and reads.turn(cluster.core, 9.0, EPOCH) == ([], [])
    assert not reads.cache.attached
    assert old.state.tasks.dirty is None  # type: ignore[attr-defined]  # silent
    cluster.churn(30)
    assert answer(reads, cluster, None) == cluster.expected(None)
    assert cluster.core.counters["read_cache_started"] == 1
    # no state read for idle_after: the cache is dropped and its maps fall silent
    tasks = cluster.core.state.tasks
    assert isinstance(tasks, JournaledDict) and tasks.dirty is not None
    reads.turn(cluster.core, 100.0, EPOCH)
    assert not reads.cache.attached_to(cluster.core) and tasks.dirty is None
    cluster.churn(30)
    assert answer(reads, cluster, 100) == cluster.expected(100)


@pytest.mark.parametrize("ordered", [False, True])
def test_the_journal_keeps_the_mirror_in_the_dicts_order(ordered: bool) -> None:
    """Whatever is done to a journaled dict, the cache's mirror of it, once ordered,
    holds its keys in its order, and every key changed is to be redone."""
    rng = random.Random(11)
    source: Any = JournaledOrderedDict() if ordered else JournaledDict()
    for i in range(50):
        source[("f", f"k{i}")] = i
    mirror = _Mirror(source, source)
    mirror.todo.clear()
    keys = [("f", f"k{i}") for i in range(80)]
    missing = object()
    for _ in range(300):
        before = dict(source)
        for _ in range(rng.randrange(1, 12)):
            key = rng.choice(keys)
            op = rng.randrange(9 if ordered else 7)
            if op == 0:
                source[key] = rng.random()
            elif op == 1 and key in source:
                del source[key]
            elif op == 2:
                source.pop(key, None)
            elif op == 3 and source:
                source.popitem(last=rng.random() < 0.5) if ordered else source.popitem()
            elif op == 4:
                source.setdefault(key, rng.random())
            elif op == 5:
                source.update({key: rng.random(), rng.choice(keys): rng.random()})
            elif op == 6 and rng.random() < 0.05:
                source.clear()
            elif op in (7, 8) and key in source:
                source.move_to_end(key, last=op == 7)
        changed = {k for k in keys if before.get(k, missing) is not source.get(k, missing)}
        if ordered and source.reordered:  # as the cache does on a move to the front
            source.reordered = False
            mirror.reorder(source)
        mirror.order(source)
        assert list(mirror.views) == list(source)
        assert {k for k in changed if k in source} <= mirror.todo
        mirror.todo.clear()
        assert not mirror.dirty and not mirror.inserted


def test_a_fault_in_the_cache_sends_reads_to_the_child_and_starts_it_over(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(10)
    reads = LoopReads()
    assert answer(reads, cluster, None) == cluster.expected(None)
    cluster.churn(20)

    def broken(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("a bug")

    monkeypatch.setattr(reads.cache, "catch_up", broken)
    answers, forked = ask(reads, cluster, GetState())
    assert answers == [] and len(forked) == 1 and not reads.cache.attached
    monkeypatch.undo()
    assert answer(reads, cluster, 0) == cluster.expected(0)

