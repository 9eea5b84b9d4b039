"""State reads answered in the loop are paced (issue 13): reads that come back to back
wait until the loop has spent at most ``READ_SHARE`` of its time on them (at most
``MAX_PACE`` seconds), then are answered together from the state of that instant,
byte for byte what the forked child answers then. Pages are not paced, nor are reads
that cost the loop less than ``PACE_FROM``. Whole states and summaries are paced
apart, a summary by what its answers cost without the catching up."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mesos_zmq.master import loop_reads
from mesos_zmq.master.core import DeferredRead
from mesos_zmq.master.loop_reads import LoopReads
from mesos_zmq.master.operator_api import shows_of
from mesos_zmq.master.read_cache import ReadCache
from mesos_zmq.master.views import describe_cluster
from mesos_zmq.protocol import GetState, GetTasks, State, encode
from tests.unit.test_read_cache import EPOCH, Cluster


def expected(cluster: Cluster, now: float) -> bytes:
    """What the forked child answers at ``now``."""
    core = cluster.core
    return encode(State(state=describe_cluster(core, now, shows_of(core), None)), "rid", EPOCH)


def take(reads: LoopReads, cluster: Cluster, now: float, msg: Any = None,
         peer: bytes = b"reader") -> tuple[list[tuple[bytes, bytes]], list[DeferredRead]]:
    read = DeferredRead(peer, msg or GetState(), "rid", None)
    return reads.take(cluster.core, [read], now, EPOCH)


@pytest.fixture
def paced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_reads, "PACE_FROM", 0.0)  # pace however cheap the read
    monkeypatch.setattr(loop_reads, "READ_SHARE", 0.1)
    monkeypatch.setattr(loop_reads, "MAX_PACE", 0.6)


def spent_by(monkeypatch: pytest.MonkeyPatch, seconds: float,
             catching_up: float = 0.0) -> None:
    """Each turn that answers reads costs the loop ``seconds`` (perf_counter moves on
    by that much), of which ``catching_up`` is the cache's catching up."""
    clock = [0.0]
    # the loop's own clock: a catch-up's slices read the same
    monkeypatch.setattr("mesos_zmq.master.loop_reads.time", SimpleNamespace(
        perf_counter=lambda: clock[0]))
    answer_now, catch_up = LoopReads._answer_now, ReadCache.catch_up

    def answering(self: LoopReads, *args: Any) -> Any:
        clock[0] += seconds - catching_up
        return answer_now(self, *args)

    def catching(self: ReadCache, *args: Any, **kwargs: Any) -> Any:
        if self.pending:  # (once caught up, the next costs nothing)
            clock[0] += catching_up
        return catch_up(self, *args, **kwargs)

    monkeypatch.setattr(LoopReads, "_answer_now", answering)
    monkeypatch.setattr(ReadCache, "catch_up", catching)


@pytest.mark.usefixtures("paced")
def test_reads_back_to_back_wait_for_their_turn_and_show_the_state_then(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(51)
    reads = LoopReads()
    spent_by(monkeypatch, 0.03)  # 30 ms each: the next may come 0.3 s after
    answers, _ = take(reads, cluster, 10.0)
    assert answers == [(b"reader", expected(cluster, 10.0))]
    # the next two come at once: they wait until 10.3
    assert take(reads, cluster, 10.05) == ([], [])
    assert take(reads, cluster, 10.1, peer=b"other") == ([], [])
    assert reads.waiting == 2
    cluster.churn(40)  # what changes meanwhile is what they show
    assert reads.turn(cluster.core, 10.29, EPOCH) == ([], [])
    answers, forked = reads.turn(cluster.core, 10.3, EPOCH)
    then = expected(cluster, 10.3)
    assert forked == [] and answers == [(b"reader", then), (b"other", then)]
    # two answers in 30 ms: the next may come 0.3 s after
    assert take(reads, cluster, 10.59) == ([], [])
    answers, _ = reads.turn(cluster.core, 10.61, EPOCH)
    assert answers == [(b"reader", expected(cluster, 10.61))]


@pytest.mark.usefixtures("paced")
def test_a_read_waits_at_most_max_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(52)
    reads = LoopReads()
    spent_by(monkeypatch, 5.0)  # an answer that cost the loop seconds
    assert take(reads, cluster, 10.0)[0]
    assert take(reads, cluster, 10.0) == ([], [])
    assert reads.turn(cluster.core, 10.59, EPOCH) == ([], [])
    answers, _ = reads.turn(cluster.core, 10.6, EPOCH)
    assert answers == [(b"reader", expected(cluster, 10.6))]


@pytest.mark.usefixtures("paced")
def test_pages_are_not_paced(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(53)
    reads = LoopReads()
    spent_by(monkeypatch, 0.05)
    assert take(reads, cluster, 10.0)[0]
    assert take(reads, cluster, 10.0) == ([], [])  # a state read waits
    answers, forked = take(reads, cluster, 10.0, GetTasks(limit=5), peer=b"pager")
    assert forked == [] and [peer for peer, _ in answers] == [b"pager"]
    assert reads.waiting == 1


def test_cheap_reads_are_not_paced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_reads, "PACE_FROM", 0.02)
    cluster = Cluster(54)
    reads = LoopReads()
    spent_by(monkeypatch, 0.019)
    for _ in range(3):
        answers, _ = take(reads, cluster, 10.0)
        assert answers == [(b"reader", expected(cluster, 10.0))]
    spent_by(monkeypatch, 0.021)
    assert take(reads, cluster, 10.0)[0]
    assert take(reads, cluster, 10.0) == ([], [])


def test_the_cache_catches_up_for_reads_shortly_before_their_turn(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_reads, "PACE_FROM", 0.0)
    monkeypatch.setattr(loop_reads, "READ_SHARE", 1e-9)  # every pace is MAX_PACE
    monkeypatch.setattr(loop_reads, "MAX_PACE", 0.5)
    monkeypatch.setattr(loop_reads, "PREWARM", 0.15)
    monkeypatch.setattr(loop_reads, "AFTER_SLICE", 0)
    monkeypatch.setattr(loop_reads, "KEEP_WARM_EVERY", 100.0)  # no background catch-up
    cluster = Cluster(55)
    reads = LoopReads()
    assert take(reads, cluster, 10.0)[0]
    assert take(reads, cluster, 10.1) == ([], [])
    cluster.churn(60)
    pending = reads.cache.pending
    assert pending > 0
    # long before its turn: nothing is done
    assert reads.turn(cluster.core, 10.3, EPOCH) == ([], [])
    assert reads.cache.pending == pending
    # shortly before: the cache catches up, the read still waits
    assert reads.turn(cluster.core, 10.36, EPOCH) == ([], [])
    assert reads.cache.pending == 0 and reads.waiting == 1
    cluster.churn(5)
    answers, _ = reads.turn(cluster.core, 10.51, EPOCH)
    assert answers == [(b"reader", expected(cluster, 10.51))]


@pytest.mark.usefixtures("paced")
def test_summaries_are_paced_apart_from_whole_states(monkeypatch: pytest.MonkeyPatch) -> None:
    """A summary (``tasks_limit`` set) does not wait for the turn of whole states, nor
    they for its; each lane is paced by what its own answers cost."""
    cluster = Cluster(56)
    reads = LoopReads()
    spent_by(monkeypatch, 0.03)
    assert take(reads, cluster, 10.0)[0]  # a whole state: the next waits until 10.3
    assert take(reads, cluster, 10.05) == ([], [])
    summary = GetState(tasks_limit=5)
    answers, _ = take(reads, cluster, 10.05, summary, peer=b"summary")
    assert answers == [(b"summary", expected_summary(cluster, 10.05, 5))]
    assert reads.waiting == 1  # the whole state still waits
    # the next summary waits for its own lane's turn (10.35), not the whole states'
    assert take(reads, cluster, 10.1, summary, peer=b"summary") == ([], [])
    answers, _ = reads.turn(cluster.core, 10.3, EPOCH)
    assert answers == [(b"reader", expected(cluster, 10.3))]
    assert reads.waiting == 1
    answers, _ = reads.turn(cluster.core, 10.36, EPOCH)
    assert answers == [(b"summary", expected_summary(cluster, 10.36, 5))]


@pytest.mark.usefixtures("paced")
def test_a_summarys_pace_leaves_out_the_catching_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache's catching up (which it does in the background anyway) does not pace
    summaries: only what their answers cost does."""
    cluster = Cluster(57)
    reads = LoopReads()
    spent_by(monkeypatch, 0.03, catching_up=0.025)
    summary = GetState(tasks_limit=5)
    assert take(reads, cluster, 10.0, summary)[0]
    # 5 ms of answers: the next may come 50 ms after
    assert take(reads, cluster, 10.04, summary) == ([], [])
    cluster.churn(30)
    answers, _ = reads.turn(cluster.core, 10.05, EPOCH)
    assert answers == [(b"reader", expected_summary(cluster, 10.05, 5))]
    # whole states count it all: 30 ms, the next 0.3 s after
    cluster.churn(30)
    assert take(reads, cluster, 11.0)[0]
    assert take(reads, cluster, 11.29) == ([], [])
    assert reads.turn(cluster.core, 11.3, EPOCH)[0]


def expected_summary(cluster: Cluster, now: float, limit: int) -> bytes:
    core = cluster.core
    return encode(State(state=describe_cluster(core, now, shows_of(core), limit)), "rid",
                  EPOCH)
