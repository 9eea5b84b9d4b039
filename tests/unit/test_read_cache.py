"""State reads answered in the loop from the read cache (issue 13): byte for byte what
the forked child's ``describe_cluster`` + ``encode`` answer, through adds, updates,
ends, trimmed history, usage figures, reservations, drains and removed frameworks;
readers the ACLs hide tasks from go to the child; the journal keeps the cache's order
of tasks the state's own. Agents change too (registered, registered again with other
resources, removed and back, drained, connected and gone): the cache keeps their views
encoded as well."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from mesos_zmq.auth.acls import Acls
from mesos_zmq.auth.principal import Principal
from mesos_zmq.master import loop_reads, read_cache
from mesos_zmq.master import records as r
from mesos_zmq.master.core import DeferredRead, MasterCore, MasterCoreConfig
from mesos_zmq.master.journal import JournaledDict, JournaledOrderedDict
from mesos_zmq.master.loop_reads import LoopReads
from mesos_zmq.master.operator_api import shows_of
from mesos_zmq.master.read_cache import _Mirror
from mesos_zmq.master.runtime import AgentRuntime
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

    def change_agent(self) -> None:
        """One random change of what an agent's view shows."""
        rng, state, core = self.rng, self.state, self.core
        aid = f"ag{rng.randrange(34):02d}"  # ag30-ag33 come and go
        roll = rng.random()
        if roll < 0.2:
            # registered (again: as Mesos, with what it has now)
            state.apply(r.AgentAdded(agent_id=aid, hostname=f"h{aid}", resources=rng.choice(
                ("cpus:64;mem:65536;disk:1000", "cpus:32;mem:1024")), attributes=rng.choice(
                    ("", "rack:r1")), time=5.0))
        elif roll < 0.3 and aid in state.agents:
            state.apply(r.AgentRemoved(agent_id=aid, time=5.0))
        elif roll < 0.4:
            state.apply(r.AgentDraining(agent_id=aid, time=5.0))
        elif roll < 0.5:
            state.apply(r.AgentDrained(agent_id=aid))
        elif roll < 0.6:
            state.apply(r.AgentReactivated(agent_id=aid))
        elif roll < 0.8:
            core.agent_runtimes.setdefault(aid, AgentRuntime()).peer = b"peer-" + aid.encode()
        elif roll < 0.95 and aid in core.agent_runtimes:
            core.agent_runtimes[aid].peer = None
        else:
            core.agent_runtimes.pop(aid, None)

    def churn(self, steps: int) -> None:
        """Random changes of every kind a read must follow."""
        rng, state, usage = self.rng, self.state, self.core.usage
        for _ in range(steps):
            if rng.random() < 0.1:
                self.change_agent()
                continue
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
    shown: set[bytes] = set()
    for round_ in range(12):
        for limit in (None, 100, 0, 3):
            got = answer(reads, cluster, limit)
            assert got == cluster.expected(limit), (round_, limit)
            shown.update(word for word in (b"DRAINED", b"DRAINING", b"rack:r1", b"ag3")
                         if word in got)
        cluster.churn(cluster.rng.choice((5, 60, 400)))
    state = cluster.state
    # the run went through what it is meant to: history trimmed, usage shown, many
    # tasks, agents drained, registered again and new
    assert 50 <= len(state.completed) <= 60 and len(state.tasks) > 300
    assert b"rss_bytes" in answer(reads, cluster, None)
    assert shown == {b"DRAINED", b"DRAINING", b"rack:r1", b"ag3"}
    assert any(cluster.core.agent_connected(aid) for aid in state.agents)


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
    """When no child may fill it (one failed lately; see test_read_fill.py)."""
    cluster = Cluster(7, tasks=1200)
    reads = LoopReads()
    reads._fill_failed_at = 9.0
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
    # one that waited too long, and still would, goes to the child
    cluster.churn(2000)
    monkeypatch.setattr(loop_reads, "MAX_WAIT", 0.0)
    monkeypatch.setattr(loop_reads, "WAIT_SLICE", 0.0)
    answers, forked = ask(reads, cluster, GetState())
    assert answers == [] and reads.waiting == 1
    answers, forked = reads.turn(cluster.core, 9.5, EPOCH)
    assert answers == [] and len(forked) == 1 and reads.waiting == 0


def test_a_replaced_core_or_state_starts_the_cache_over_and_idle_drops_it() -> None:
    cluster = Cluster(9)
    reads = LoopReads(idle_after=30.0, keep_warm=False)
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



def test_only_the_agents_whose_view_changed_are_encoded_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Built again: the agents whose record, reservations, drain or connection
    changed; those whose tasks' totals alone changed are patched (see _AgentViews)."""
    cluster = Cluster(12)
    reads = LoopReads()
    assert answer(reads, cluster, None) == cluster.expected(None)
    redone: list[str] = []
    real = read_cache.agent_view

    def counted(core: Any, totals: Any, aid: str, agent: Any, empty: str) -> Any:
        redone.append(aid)
        return real(core, totals, aid, agent, empty)

    monkeypatch.setattr(read_cache, "agent_view", counted)
    assert answer(reads, cluster, 5) == cluster.expected(5)
    assert redone == []  # nothing changed
    core, state = cluster.core, cluster.state
    state.apply(r.AgentDraining(agent_id="ag07", time=5.0))
    core.agent_runtimes.setdefault("ag08", AgentRuntime()).peer = b"p8"
    state.apply(r.ReservationsSet(agent_id="ag09", reserved="cpus(role-fa):1", time=5.0))
    state.apply(r.AgentAdded(agent_id="ag10", hostname="h10", resources="cpus:1;mem:1",
                             time=5.0))
    state.apply(r.AgentDrained(agent_id="ag04"))
    cluster.add()  # a task on some agent: its count and use
    task = list(state.tasks.values())[-1].task
    assert answer(reads, cluster, None) == cluster.expected(None)
    assert sorted(redone) == sorted({"ag04", "ag07", "ag08", "ag09", "ag10"})
    assert task.agent_id not in redone  # its count and use patched in
    # tasks started, updated and ended on every agent: none is built again, each
    # shows its own count and use
    cluster.churn(300)
    assert answer(reads, cluster, None) == cluster.expected(None)
    redone.clear()
    for n, aid in enumerate(state.agents):
        state.apply(r.TaskAdded(framework_id="fa", task=TaskInfo(
            task_id=f"on-{aid}", agent_id=aid, resources=SHAPES[n % 3], name="n", role="*"),
            state="TASK_RUNNING", time=3.0))
    for fid, tid in list(state.tasks)[:40]:
        state.apply(r.TaskUpdated(framework_id=fid, task_id=tid, state="TASK_FINISHED",
                                  exit_code=0, time=4.0))
    assert answer(reads, cluster, None) == cluster.expected(None)
    assert redone == []


def test_a_summary_takes_its_page_from_the_encoded_views(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(13)
    cluster.churn(300)
    reads = LoopReads()
    assert answer(reads, cluster, 0) == cluster.expected(0)

    def walks_every_task(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a page of the cache's views needs no walk of every task")

    for limit in (7, 100, len(cluster.state.tasks) + 5, 10_000):
        expected = cluster.expected(limit)
        with monkeypatch.context() as patch:
            patch.setattr(read_cache, "task_page", walks_every_task)
            assert answer(reads, cluster, limit) == expected, limit
        cluster.churn(20)


def test_a_read_that_waits_gets_longer_slices_than_a_busy_turn_brings_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A short slice a turn took in about what a busy turn changed: the read waited
    MAX_WAIT, then went to the child. From its second turn it gets WAIT_SLICE."""
    cluster = Cluster(14, tasks=1200)
    reads = LoopReads()
    assert answer(reads, cluster, None) == cluster.expected(None)
    monkeypatch.setattr(loop_reads, "IN_LOOP_PENDING", 10)
    monkeypatch.setattr(loop_reads, "AFTER_SLICE", 5)
    monkeypatch.setattr(loop_reads, "SLICE", 0.0)  # 256 changes a turn
    cluster.churn(600)
    now = 9.0
    answers, forked = reads.take(cluster.core, [DeferredRead(b"r", GetState(), "rid", None)],
                                 now, EPOCH)
    assert (answers, forked) == ([], []) and reads.waiting == 1
    turns = 0
    while not answers and not forked:
        cluster.churn(300)  # more than a short slice takes in
        now += 0.1
        answers, forked = reads.turn(cluster.core, now, EPOCH)
        turns += 1
    assert forked == [] and turns <= 2
    assert answers[0][1] == encode(State(state=describe_cluster(
        cluster.core, now, shows_of(cluster.core), None)), "rid", EPOCH)
