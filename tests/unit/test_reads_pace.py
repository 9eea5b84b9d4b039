"""State reads answered in the loop are paced (issue 13): reads that come back to back
wait until the loop has spent at most ``READ_SHARE`` of its time on them (at most
``MAX_PACE`` seconds), then are answered together from the state of that instant,
byte for byte what the forked child answers then. Pages are not paced, nor are reads
that cost the loop less than ``PACE_FROM``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mesos_zmq.master import loop_reads
from mesos_zmq.master.core import DeferredRead
from mesos_zmq.master.loop_reads import LoopReads
from mesos_zmq.master.operator_api import shows_of
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


def spent_by(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Each answer costs the loop ``seconds`` (perf_counter moves on by that much)."""
    clock = [0.0]

    def perf_counter() -> float:
        clock[0] += seconds  # read once before an answer, once after
        return clock[0]

    # the loop's own clock: a catch-up's slices read the same
    monkeypatch.setattr("mesos_zmq.master.loop_reads.time", SimpleNamespace(
        perf_counter=perf_counter))


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
