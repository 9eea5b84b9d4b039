"""A read cache kept warm (issue 13): attached at the leader's first turn and caught up
in the background, so that the first read of a large cluster finds it warm (a cold
cache's fill, forked when the read came, took 2-4 s on two busy cores). A leader that
takes over a large cluster has it filled by a child once agents and frameworks had
time to re-register. Every answer is byte for byte what the forked child answers."""

from __future__ import annotations

import select
import time
from typing import Any

import pytest

from mesos_zmq.master import loop_reads, read_cache
from mesos_zmq.master.core import MasterCore
from mesos_zmq.master.journal import JournaledDict
from mesos_zmq.master.loop_reads import KEEP_WARM_EVERY, LoopReads
from mesos_zmq.master.state import MasterState
from mesos_zmq.protocol import GetState
from tests.unit.test_read_cache import EPOCH, Cluster, answer, ask
from tests.unit.test_read_fill import cold


def filled_in_background(reads: LoopReads, cluster: Cluster, during: int, now: float) -> None:
    """Turns of the loop until a child filling the cache with no read waiting is done
    and its fill taken in (``during``: changes made while it works); nothing is
    answered meanwhile."""
    deadline = time.monotonic() + 30
    cluster.churn(during)
    while reads.filling:
        assert time.monotonic() < deadline, "the filling child never finished"
        fd = reads.fileno()
        if fd is not None:
            select.select([fd], [], [], 0.05)
        assert reads.turn(cluster.core, now, EPOCH) == ([], [])


def test_a_cache_kept_warm_starts_at_the_first_turn_and_answers_the_first_read_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # more changes than a read catches up with at once: a cache that were not kept
    # warm would make the read wait turns
    monkeypatch.setattr(loop_reads, "IN_LOOP_PENDING", 50)
    cluster = Cluster(31)
    reads = LoopReads()
    assert reads.turn(cluster.core, 1.0, EPOCH) == ([], [])
    assert reads.cache.attached_to(cluster.core)  # no read asked for it
    reads.turn(cluster.core, 1.0, EPOCH)
    assert reads.cache.pending == 0
    cluster.churn(300)
    pending = reads.cache.pending
    assert pending > loop_reads.IN_LOOP_PENDING
    # caught up in the background at most every KEEP_WARM_EVERY seconds
    reads.turn(cluster.core, 1.0 + KEEP_WARM_EVERY / 2, EPOCH)
    assert reads.cache.pending == pending
    reads.turn(cluster.core, 1.0 + KEEP_WARM_EVERY, EPOCH)
    assert reads.cache.pending == 0
    for limit in (None, 10):
        answers, forked = ask(reads, cluster, GetState(tasks_limit=limit))
        assert forked == [] and answers == [(b"reader", cluster.expected(limit))]
    assert cluster.core.counters["read_cache_started"] == 1


def test_a_cache_kept_warm_is_not_dropped_when_reads_stop() -> None:
    cluster = Cluster(32)
    reads = LoopReads(idle_after=30.0)
    assert answer(reads, cluster, None) == cluster.expected(None)
    reads.turn(cluster.core, 100.0, EPOCH)  # long after the last read
    assert reads.cache.attached_to(cluster.core)
    cluster.churn(200)
    reads.turn(cluster.core, 200.0, EPOCH)
    assert reads.cache.pending == 0
    answers, _ = ask(reads, cluster, GetState())
    assert answers == [(b"reader", cluster.expected(None))]


def test_a_replaced_core_gets_the_cache_kept_warm_at_the_next_turn() -> None:
    cluster = Cluster(33)
    reads = LoopReads()
    reads.turn(cluster.core, 1.0, EPOCH)
    old = cluster.core
    restored = MasterState.restore(old.state.snapshot(), old.state.history)
    cluster.core = MasterCore(old.config, old.new_id, restored, now=3.0)
    reads.turn(cluster.core, 2.0, EPOCH)
    # the old core's maps fall silent, the new one's are listened to
    assert old.state.tasks.dirty is None  # type: ignore[attr-defined]
    assert reads.cache.attached_to(cluster.core)
    tasks = cluster.core.state.tasks
    assert isinstance(tasks, JournaledDict) and tasks.dirty is not None
    cluster.churn(50)
    assert answer(reads, cluster, None) == cluster.expected(None)


def test_a_leader_that_takes_over_a_large_cluster_has_a_child_fill_it_after_a_hold(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cold(monkeypatch)  # a "large" cluster: over 100 tasks
    monkeypatch.setattr(loop_reads, "COLD_FILL_AFTER", 5.0)
    monkeypatch.setattr(loop_reads, "SLICE", 0.0)
    cluster = Cluster(34, tasks=1500)
    reads = LoopReads()
    # agents and frameworks re-register first: nothing is attached, nothing forked
    for now in (0.0, 4.9):
        assert reads.turn(cluster.core, now, EPOCH) == ([], [])
        assert not reads.cache.attached and not reads.filling
    assert reads.turn(cluster.core, 5.0, EPOCH) == ([], [])
    assert reads.cache.attached_to(cluster.core) and reads.filling
    filled_in_background(reads, cluster, 70, 9.0)
    core = cluster.core
    assert core.counters["read_cache_fills"] == 1 and core.counters["read_cache_filled"] == 1
    # what changed since the fork is caught up in slices, with no read waiting
    turns = 0
    while reads.cache.pending:
        reads.turn(core, 9.0, EPOCH)
        turns += 1
    assert 1 <= turns < 20
    answers, forked = ask(reads, cluster, GetState())
    assert forked == [] and answers == [(b"reader", cluster.expected(None))]
    # a burst of changes beyond PARK_LIMIT on a warm cache: a child fills it again
    cluster.churn(400)
    assert reads.cache.pending > loop_reads.PARK_LIMIT
    reads.turn(core, 9.0 + KEEP_WARM_EVERY, EPOCH)
    assert reads.filling
    filled_in_background(reads, cluster, 20, 9.0 + KEEP_WARM_EVERY)
    assert core.counters["read_cache_filled"] == 2
    assert answer(reads, cluster, 7) == cluster.expected(7)


def test_a_background_fill_that_cannot_fork_warms_the_cache_in_slices(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cold(monkeypatch)
    monkeypatch.setattr(loop_reads, "COLD_FILL_AFTER", 5.0)
    monkeypatch.setattr(loop_reads, "SLICE", 0.0)
    monkeypatch.setattr(loop_reads, "COLD_SLICE", 0.0)  # 256 changes a turn
    cluster = Cluster(35, tasks=1500)
    reads = LoopReads()

    def no_fork(*args: Any, **kwargs: Any) -> None:
        raise OSError("out of memory")

    monkeypatch.setattr(reads._filler, "start", no_fork)
    reads.turn(cluster.core, 0.0, EPOCH)
    assert reads.turn(cluster.core, 5.0, EPOCH) == ([], [])
    assert reads.cache.attached_to(cluster.core) and not reads.filling
    assert cluster.core.counters["read_cache_fills_failed"] == 1
    turns = 0
    while reads.cache.pending > loop_reads.IN_LOOP_PENDING:
        assert reads.turn(cluster.core, 5.0, EPOCH) == ([], [])
        turns += 1
    assert turns > 1 and cluster.core.counters["read_cache_fills_failed"] == 1
    answers, forked = ask(reads, cluster, GetState())
    assert forked == [] and answers == [(b"reader", cluster.expected(None))]


def test_a_cache_not_kept_warm_waits_for_a_read() -> None:
    cluster = Cluster(36)
    reads = LoopReads(keep_warm=False)
    reads.turn(cluster.core, 1.0, EPOCH)
    assert not reads.cache.attached
    assert answer(reads, cluster, None) == cluster.expected(None)


def test_a_read_waits_for_a_fill_the_master_began_no_longer_than_max_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a fill begun with no read waiting, by a child that does not finish (starved of
    # CPU, stopped): a read that comes meanwhile goes to a reader child after MAX_WAIT
    monkeypatch.setattr(loop_reads, "PARK_LIMIT", 100)
    monkeypatch.setattr(loop_reads, "IN_LOOP_PENDING", 50)
    monkeypatch.setattr(loop_reads, "COLD_FILL_AFTER", 0.0)

    def stalled(self: Any, core: MasterCore) -> Any:
        time.sleep(120)  # the child is killed when the reads close

    monkeypatch.setattr(read_cache.ReadCache, "export", stalled)
    cluster = Cluster(50, tasks=1500)
    reads = LoopReads()
    try:
        reads.turn(cluster.core, 0.0, EPOCH)
        assert reads.filling
        assert ask(reads, cluster, GetState()) == ([], [])  # asked at 9.0
        assert reads.turn(cluster.core, 9.0 + loop_reads.MAX_WAIT / 2, EPOCH) == ([], [])
        answers, forked = reads.turn(cluster.core, 9.1 + loop_reads.MAX_WAIT, EPOCH)
        assert answers == [] and [read.peer for read in forked] == [b"reader"]
        assert cluster.core.counters["state_reads_forked_fill_slow"] == 1
        assert reads.filling and reads.waiting == 0
    finally:
        reads.close()


def test_a_cache_that_keeps_failing_is_started_again_only_after_fill_retry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_reads, "HIGH_WATER", 100)
    monkeypatch.setattr(loop_reads, "IN_LOOP_PENDING", 50)
    cluster = Cluster(40, tasks=300)
    reads = LoopReads()
    reads.turn(cluster.core, 1.0, EPOCH)
    assert cluster.core.counters["read_cache_started"] == 1
    real = read_cache.active_task_view

    def broken(core: MasterCore, rec: Any) -> Any:
        if rec.task.task_id.endswith("3"):
            raise RuntimeError("a view that cannot be made")
        return real(core, rec)

    monkeypatch.setattr(read_cache, "active_task_view", broken)
    cluster.churn(300)
    failed_at = None
    for i in range(400):  # 4 s of turns
        now = 1.0 + KEEP_WARM_EVERY + i * 0.01
        reads.turn(cluster.core, now, EPOCH)
        if failed_at is None and not reads.cache.attached:
            failed_at = now
    assert failed_at is not None
    # not rebuilt (and the fault logged) turn after turn
    assert cluster.core.counters["read_cache_started"] == 1
    reads.turn(cluster.core, failed_at + loop_reads.FILL_RETRY, EPOCH)
    assert cluster.core.counters["read_cache_started"] == 2
