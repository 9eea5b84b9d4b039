"""A cold read cache is filled by a child forked for it (issue 13): the child answers
the reads that wait from its copy of the cache, caught up, and sends back the cache's
views and totals; the loop sends the answers and takes the cache in, then catches up
only with what changed since the fork. Byte for byte what a child building the state
the old way answers, before and after, through changes made while the child works; a
child that fails sends its reads to the reader child, and the cache warms in slices."""

from __future__ import annotations

import select
import time
from typing import Any

import pytest

from mesos_zmq.master import loop_reads
from mesos_zmq.master.core import DeferredRead
from mesos_zmq.master.loop_reads import LoopReads
from mesos_zmq.master.read_cache import ReadCache
from mesos_zmq.master.views import count_tasks
from mesos_zmq.protocol import GetState
from tests.unit.test_read_cache import ALICE, ANALYTICS_ONLY, BOB, EPOCH, Cluster, answer

Answers = tuple[list[tuple[bytes, bytes]], list[DeferredRead]]


def until_filled(reads: LoopReads, cluster: Cluster, during: int = 0) -> Answers:
    """Turns of the loop until the filling child is done (``during``: changes made
    while it works)."""
    deadline = time.monotonic() + 30
    cluster.churn(during)
    answers: list[tuple[bytes, bytes]] = []
    forked: list[DeferredRead] = []
    turns = 0
    while time.monotonic() < deadline:
        fd = reads.fileno()
        if fd is not None:
            select.select([fd], [], [], 0.05)
        more, later = reads.turn(cluster.core, 9.0, EPOCH)
        answers += more
        forked += later
        turns += more != [] or later != [] or turns > 0
        if not reads.filling:
            # the child's answers one turn, its cache decoded the next, taken the third
            assert turns in (1, 3)
            return answers, forked
    raise AssertionError("the filling child never finished")


def cold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_reads, "PARK_LIMIT", 100)
    monkeypatch.setattr(loop_reads, "IN_LOOP_PENDING", 50)


def test_a_cold_cache_is_filled_by_a_child_that_answers_as_the_old_child_would(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cold(monkeypatch)
    cluster = Cluster(21, acls=ANALYTICS_ONLY, tasks=1500)
    cluster.churn(300)
    reads = LoopReads()
    asked = [(b"full", GetState(), None), (b"summary", GetState(tasks_limit=10), None),
             (b"bob", GetState(), BOB), (b"alice", GetState(tasks_limit=5), ALICE)]
    answers, forked = reads.take(cluster.core, [
        DeferredRead(peer, msg, "rid", who) for peer, msg, who in asked], 9.0, EPOCH)
    assert (answers, forked) == ([], []) and reads.filling
    expected = {peer: cluster.expected(msg.tasks_limit, who) for peer, msg, who in asked[:3]}
    # alice sees only some tasks: the child builds hers the old way, and counts it first
    cluster.core.count("state_reads_forked_tasks_hidden")
    expected[b"alice"] = cluster.expected(5, ALICE)
    # another state read comes while the child works: it waits for the fill
    answers, forked = reads.take(cluster.core, [
        DeferredRead(b"later", GetState(), "rid", None)], 9.0, EPOCH)
    assert (answers, forked) == ([], []) and reads.waiting == 1
    # fewer changes meanwhile than a fill is for (PARK_LIMIT), more than are caught
    # up at once (IN_LOOP_PENDING)
    answers, forked = until_filled(reads, cluster, during=70)
    assert forked == [] and not reads.filling
    got = dict(answers)
    # the child's answers show the state of its fork, as the old child's would
    assert {peer: got[peer] for peer in expected} == expected
    # the one that waited is answered from the cache caught up: the state of now
    assert got[b"later"] == cluster.expected(None)
    core = cluster.core
    assert core.counters["read_cache_fills"] == 1 and core.counters["read_cache_filled"] == 1
    # the cache took the child's totals: as counted afresh, and it goes on from there
    assert reads.cache.totals == count_tasks(cluster.state.tasks.values())
    for _ in range(5):
        cluster.churn(60)  # fewer than a fill is for
        for limit in (None, 3):
            assert answer(reads, cluster, limit) == cluster.expected(limit)
    assert core.counters["read_cache_fills"] == 1


def test_a_failed_fill_sends_its_reads_to_the_reader_child_and_the_cache_warms(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cold(monkeypatch)
    monkeypatch.setattr(loop_reads, "SLICE", 0.0)
    monkeypatch.setattr(loop_reads, "COLD_SLICE", 0.0)
    cluster = Cluster(22, tasks=1500)
    reads = LoopReads()

    def broken(*args: Any, **kwargs: Any) -> list[Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(reads.cache, "export", broken)
    answers, forked = reads.take(cluster.core, [DeferredRead(b"r", GetState(), "rid", None)],
                                 9.0, EPOCH)
    assert (answers, forked) == ([], []) and reads.filling
    answers, forked = until_filled(reads, cluster, during=50)
    assert answers == [] and [read.peer for read in forked] == [b"r"]
    assert cluster.core.counters["read_cache_fills_failed"] == 1
    # no second fill for a while: the cache catches up in slices, and then answers
    turns = 0
    while reads.cache.pending > loop_reads.IN_LOOP_PENDING:
        assert reads.turn(cluster.core, 9.0, EPOCH) == ([], []) and not reads.filling
        turns += 1
    assert turns > 1
    assert answer(reads, cluster, None) == cluster.expected(None)
    assert cluster.core.counters["read_cache_fills"] == 1


def test_a_fill_is_not_taken_into_a_cache_moved_since_the_fork(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cold(monkeypatch)
    monkeypatch.setattr(loop_reads, "SLICE", 0.0)
    cluster = Cluster(23, tasks=1500)
    reads = LoopReads()
    reads.take(cluster.core, [DeferredRead(b"r", GetState(), "rid", None)], 9.0, EPOCH)
    assert reads.filling
    reads.cache.catch_up(cluster.core)  # nothing in the loop does this meanwhile
    answers, forked = until_filled(reads, cluster, during=30)
    assert [peer for peer, _ in answers] == [b"r"] and forked == []
    assert cluster.core.counters["read_cache_fills_refused"] == 1
    assert "read_cache_filled" not in cluster.core.counters
    assert answer(reads, cluster, None) == cluster.expected(None)


def test_a_fill_whose_views_differ_from_the_masters_is_not_taken(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cold(monkeypatch)
    monkeypatch.setattr(loop_reads, "SLICE", 0.0)
    cluster = Cluster(24, tasks=1500)
    reads = LoopReads()
    real = reads.cache.export

    def wrong(core: Any) -> list[Any]:
        parts = real(core)
        parts[0] = parts[0][::-1]  # every view in another's place
        return parts

    monkeypatch.setattr(reads.cache, "export", wrong)
    reads.take(cluster.core, [DeferredRead(b"r", GetState(), "rid", None)], 9.0, EPOCH)
    expected = cluster.expected(None)
    answers, _ = until_filled(reads, cluster)
    # the child's own answer is whole (its cache was right; what it sent back is not)
    assert answers == [(b"r", expected)]
    assert cluster.core.counters["read_cache_fills_refused"] == 1
    assert "read_cache_filled" not in cluster.core.counters
    while reads.cache.pending > loop_reads.IN_LOOP_PENDING:
        reads.turn(cluster.core, 9.0, EPOCH)
    assert answer(reads, cluster, None) == cluster.expected(None)


def test_a_fork_that_fails_leaves_the_reads_to_the_reader_child(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cold(monkeypatch)
    cluster = Cluster(25, tasks=1500)
    reads = LoopReads()

    def no_fork(*args: Any, **kwargs: Any) -> None:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(reads._filler, "start", no_fork)
    answers, forked = reads.take(cluster.core, [DeferredRead(b"r", GetState(), "rid", None)],
                                 9.0, EPOCH)
    assert answers == [] and [read.peer for read in forked] == [b"r"]
    assert not reads.filling and reads.waiting == 0 and not reads.cache.attached


def test_the_childs_count_of_a_cold_cache_at_once_is_the_count_one_by_one() -> None:
    cluster = Cluster(26, tasks=1500)
    cluster.churn(400)
    core = cluster.core
    one_by_one = ReadCache()
    one_by_one.attach(core)
    one_by_one.catch_up(core)
    at_once = ReadCache()
    at_once.attach(core)
    at_once.export(core)
    assert at_once.totals == one_by_one.totals == count_tasks(cluster.state.tasks.values())
    assert at_once._agent_shapes == one_by_one._agent_shapes
    assert at_once._fw_shapes == one_by_one._fw_shapes
    assert at_once._counted == one_by_one._counted


def test_a_fill_whose_totals_do_not_count_the_tasks_of_the_fork_is_not_taken(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cold(monkeypatch)
    cluster = Cluster(27, tasks=1500)
    reads = LoopReads()
    real = reads.cache.export

    def short(core: Any) -> list[Any]:
        parts = real(core)
        agent_tasks = parts[6]
        agent_tasks[next(iter(agent_tasks))] += 1  # one task counted twice
        return parts

    monkeypatch.setattr(reads.cache, "export", short)
    reads.take(cluster.core, [DeferredRead(b"r", GetState(), "rid", None)], 9.0, EPOCH)
    until_filled(reads, cluster)
    assert cluster.core.counters["read_cache_fills_refused"] == 1
    assert "read_cache_filled" not in cluster.core.counters
