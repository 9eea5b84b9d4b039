"""A background catch-up of the read cache under churn leaves for later what changed
since it began (issue 13): a short task that starts and ends between two of them is
then never viewed nor counted, only forgotten; a read still takes in everything and
answers byte for byte what the forked child answers."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from mesos_zmq.master import loop_reads, read_cache, views
from mesos_zmq.master import records as r
from mesos_zmq.master.loop_reads import LoopReads
from mesos_zmq.master.read_cache import ReadCache
from mesos_zmq.protocol import GetState, TaskInfo
from tests.unit.test_read_cache import EPOCH, Cluster, answer, ask


def viewed(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Task ids whose active view the read cache makes, and how often."""
    seen: Counter[str] = Counter()
    make = views.active_task_view

    def counting(core: Any, rec: Any) -> Any:
        seen[rec.task_id] += 1
        return make(core, rec)

    monkeypatch.setattr(read_cache, "active_task_view", counting)
    return seen


def start(cluster: Cluster, tid: str) -> None:
    cluster.state.apply(r.TaskAdded(framework_id="fa", task=TaskInfo(
        task_id=tid, agent_id="ag01", resources="cpus:0.5;mem:64", name="n", role="*"),
        state="TASK_STAGING", time=3.0))


def end(cluster: Cluster, tid: str) -> None:
    cluster.state.apply(r.TaskUpdated(framework_id="fa", task_id=tid,
                                      state="TASK_FINISHED", exit_code=0, time=4.0))


def test_a_short_task_between_two_deferred_catch_ups_is_never_viewed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(41)
    cache = ReadCache()
    cache.attach(cluster.core)
    assert cache.catch_up(cluster.core)
    seen = viewed(monkeypatch)
    start(cluster, "short")
    cluster.state.apply(r.TaskUpdated(framework_id="fa", task_id="short",
                                      state="TASK_RUNNING", time=3.5))
    # what changed since it began is left for later: nothing else was pending
    assert cache.catch_up(cluster.core, defer=True)
    assert cache.pending == 1 and cache.fresh == 0
    end(cluster, "short")
    assert cache.catch_up(cluster.core, defer=True)
    # ended meanwhile: its end is left for the next (or a read), its start is forgotten
    assert seen["short"] == 0
    assert cache.catch_up(cluster.core, defer=True)
    assert cache.pending == 0 and seen["short"] == 0
    # the totals never counted it: what a read shows is the child's
    reads = LoopReads()
    reads.cache = cache
    assert answer(reads, cluster, None) == cluster.expected(None)


def test_a_read_takes_in_what_a_deferred_catch_up_left() -> None:
    cluster = Cluster(42)
    cache = ReadCache()
    cache.attach(cluster.core)
    assert cache.catch_up(cluster.core)
    cluster.churn(150)
    assert cache.catch_up(cluster.core, defer=True)
    cluster.churn(150)
    assert cache.catch_up(cluster.core, defer=True)
    assert cache.pending > 0  # the last 150 changes
    reads = LoopReads()
    reads.cache = cache
    for limit in (None, 5):
        assert answer(reads, cluster, limit) == cluster.expected(limit)
    assert cache.pending == 0


def test_a_deferred_catch_up_cut_short_still_leaves_what_changed_since_it_began(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(43)
    cache = ReadCache()
    cache.attach(cluster.core)
    assert cache.catch_up(cluster.core)
    for n in range(600):
        start(cluster, f"old{n}")
    assert cache.catch_up(cluster.core, defer=True)  # the 600 left for later
    seen = viewed(monkeypatch)
    # cut short at once (a deadline passed): a slice is 256 steps
    assert not cache.catch_up(cluster.core, deadline=0.0, defer=True)
    start(cluster, "young")
    # the catch-up goes on: the task started meanwhile waits, the old ones are done
    assert cache.catch_up(cluster.core, defer=True)
    assert seen["young"] == 0 and sum(seen.values()) == 600
    assert cache.pending == 1


def test_the_loop_defers_only_under_churn_and_never_past_the_defer_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_reads, "HIGH_WATER", 100)
    monkeypatch.setattr(loop_reads, "DEFER_FROM", 100)
    monkeypatch.setattr(loop_reads, "IN_LOOP_PENDING", 10_000)  # no slices here
    cluster = Cluster(44)
    reads = LoopReads()
    reads.turn(cluster.core, 1.0, EPOCH)
    reads.turn(cluster.core, 1.0, EPOCH)
    assert reads.cache.pending == 0
    # more than HIGH_WATER changes: a catch-up at once, which leaves those of a burst
    for n in range(150):
        start(cluster, f"s{n}")
    reads.turn(cluster.core, 1.1, EPOCH)
    assert reads.cache.pending == 150
    # the next takes in what is older (none: they all ended since) and leaves its own
    for n in range(150):
        end(cluster, f"s{n}")
    changed = reads.cache.fresh
    assert changed > loop_reads.HIGH_WATER
    reads.turn(cluster.core, 1.2, EPOCH)
    assert reads.cache.pending == changed and reads.cache.fresh == 0
    # a catch-up that is due (KEEP_WARM_EVERY) with few changes takes in everything
    reads.turn(cluster.core, 1.2 + loop_reads.KEEP_WARM_EVERY, EPOCH)
    assert reads.cache.pending == 0
    # too much pending already: everything is taken in, however many changed
    monkeypatch.setattr(loop_reads, "DEFER_LIMIT", 100)
    for n in range(150):
        start(cluster, f"t{n}")
    reads.turn(cluster.core, 5.0, EPOCH)
    assert reads.cache.pending == 0
    answers, forked = ask(reads, cluster, GetState())
    assert forked == [] and answers == [(b"reader", cluster.expected(None))]


def test_a_deferred_catch_up_cut_short_stops_deferring_past_the_defer_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_reads, "HIGH_WATER", 100)
    monkeypatch.setattr(loop_reads, "DEFER_FROM", 100)
    monkeypatch.setattr(loop_reads, "DEFER_LIMIT", 1_000)
    monkeypatch.setattr(loop_reads, "IN_LOOP_PENDING", 0)
    cluster = Cluster(45)
    reads = LoopReads()
    reads.turn(cluster.core, 1.0, EPOCH)
    reads.turn(cluster.core, 1.0, EPOCH)
    for n in range(600):
        start(cluster, f"a{n}")
    reads.turn(cluster.core, 1.1, EPOCH)  # a deferring catch-up: the 600 are left
    assert reads.cache.pending == 600
    for n in range(150):
        start(cluster, f"b{n}")
    monkeypatch.setattr(loop_reads, "SLICE", -1.0)  # cut short at its first check
    reads.turn(cluster.core, 1.2, EPOCH)
    assert 150 < reads.cache.pending < 750  # cut short: it goes on at the next turn
    for n in range(600):  # meanwhile more than DEFER_LIMIT pile up
        start(cluster, f"c{n}")
    monkeypatch.setattr(loop_reads, "SLICE", 10.0)
    reads.turn(cluster.core, 1.3, EPOCH)
    assert reads.cache.pending == 0  # it took in everything


def test_a_catch_up_that_is_due_defers_under_churn_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_reads, "DEFER_FROM", 100)  # HIGH_WATER stays far above
    monkeypatch.setattr(loop_reads, "IN_LOOP_PENDING", 10_000)
    cluster = Cluster(46)
    reads = LoopReads()
    reads.turn(cluster.core, 1.0, EPOCH)
    reads.turn(cluster.core, 1.0, EPOCH)
    every = loop_reads.KEEP_WARM_EVERY
    for n in range(150):  # churn: more than DEFER_FROM changes
        start(cluster, f"s{n}")
    reads.turn(cluster.core, 1.0 + every, EPOCH)
    assert reads.cache.pending == 150
    for n in range(50):  # few: all is taken in
        start(cluster, f"t{n}")
    reads.turn(cluster.core, 1.0 + 2 * every, EPOCH)
    assert reads.cache.pending == 0
