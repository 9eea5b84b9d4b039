"""The read cache's order of tasks, taken from what the journal notes while each change
happens (``inserted``: keys the dict appended and still holds; ``gone``: keys that left
their place), is the state's own order through any mix of inserts, updates, removals
and moves, with the catch-ups at any point between them; and the cache's bytes stay
those of a fresh build under churn with reads in between."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.master import read_cache
from mesos_zmq.master.journal import JournaledDict, JournaledOrderedDict
from mesos_zmq.master.loop_reads import LoopReads
from mesos_zmq.master.operator_api import shows_of
from mesos_zmq.master.read_cache import ReadCache, _Mirror
from mesos_zmq.master.views import describe_cluster, remembered
from mesos_zmq.protocol import State, encode
from tests.unit.test_read_cache import EPOCH, Cluster, answer

#: task keys as the state's: tuples, few enough that keys come back often
KEYS = st.tuples(st.sampled_from(("fa", "fb")), st.sampled_from([f"t{i}" for i in range(8)]))
OPS = st.lists(st.one_of(
    st.tuples(st.just("set"), KEYS),
    st.tuples(st.just("del"), KEYS),
    st.tuples(st.just("pop"), KEYS),
    st.tuples(st.just("popitem"), st.booleans()),
    st.tuples(st.just("setdefault"), KEYS),
    st.tuples(st.just("update"), st.lists(KEYS, max_size=3)),
    st.tuples(st.just("clear"), st.none()),
    st.tuples(st.just("to_end"), KEYS),
    st.tuples(st.just("to_front"), KEYS),
    st.tuples(st.just("order"), st.none()),
), max_size=60)


def _apply(source: Any, ordered: bool, op: str, arg: Any, value: int) -> None:
    if op == "set":
        source[arg] = value
    elif op == "del" and arg in source:
        del source[arg]
    elif op == "pop":
        source.pop(arg, None)
    elif op == "popitem" and source:
        if ordered:
            source.popitem(last=arg)
        else:
            source.popitem()
    elif op == "setdefault":
        source.setdefault(arg, value)
    elif op == "update":
        source.update({key: value for key in arg})
    elif op == "clear":
        source.clear()
    elif op in ("to_end", "to_front") and ordered and arg in source:
        source.move_to_end(arg, last=op == "to_end")


def _take_order(mirror: _Mirror, source: Any, ordered: bool) -> None:
    """As :meth:`ReadCache._order` does."""
    if ordered and source.reordered:
        source.reordered = False
        mirror.reorder(source)
    mirror.order(source)


@pytest.mark.parametrize("ordered", [False, True])
@settings(max_examples=400, deadline=None)
@given(start=st.lists(KEYS, max_size=10), ops=OPS)
def test_the_mirror_follows_the_dicts_order_through_any_changes(
        ordered: bool, start: list[tuple[str, str]], ops: list[tuple[str, Any]]) -> None:
    source: Any = (JournaledOrderedDict if ordered else JournaledDict)(
        (key, -1) for key in start)
    mirror = _Mirror(source, source)
    assert list(mirror.views) == list(source)
    for value, (op, arg) in enumerate(ops):
        before = dict(source)
        if op == "order":
            _take_order(mirror, source, ordered)
            assert list(mirror.views) == list(source)
            assert not mirror.dirty and not mirror.inserted and not mirror.gone
            continue
        _apply(source, ordered, op, arg, value)
        # what the journal keeps: the keys appended, each still in the dict, in its order
        # (after a move to the front the order is taken afresh: that is all it says)
        assert set(mirror.inserted) <= set(source)
        if not (ordered and source.reordered):
            tail = [key for key in source if key in mirror.inserted]
            assert list(mirror.inserted) == tail
            assert list(source)[len(source) - len(tail):] == tail
        # every key that changed is noted
        changed = {key for key in before.keys() | source.keys()
                   if before.get(key, object()) is not source.get(key, object())}
        assert changed <= mirror.dirty
    _take_order(mirror, source, ordered)
    assert list(mirror.views) == list(source)
    # every key of the dict that changed or came is to be redone
    assert set(source) - set(start) <= mirror.todo


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_the_cache_bytes_are_a_fresh_builds_through_churn_and_reads(seed: int) -> None:
    cluster = Cluster(seed, tasks=300)
    reads = LoopReads()
    for round_ in range(15):
        cluster.churn(cluster.rng.choice((3, 50, 300)) if round_ else 0)
        for limit in (None, 5):
            assert answer(reads, cluster, limit) == cluster.expected(limit), (round_, limit)
    cache = reads.cache
    assert cache is not None
    state = cluster.state
    assert cache._active is not None and cache._done is not None
    assert list(cache._active.views) == list(state.tasks)
    assert list(cache._done.views) == list(state.completed)


def test_the_whole_order_is_checked_every_few_seconds_the_newest_keys_at_every_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing 100,000 keys of each mirror and dict to compare them cost 3-4 ms a read
    on busy cores: the whole order is compared at most every ORDER_CHECK_EVERY
    seconds, the length and newest keys at every read; a mismatch either finds starts
    the cache over (no answer from it)."""
    cluster = Cluster(15)
    core = cluster.core
    shows = remembered(shows_of(core))
    assert shows is not None
    cache = ReadCache()
    cache.attach(core)
    wholes: list[bool] = []
    check = _Mirror.in_order

    def in_order(self: _Mirror, source: Any, whole: bool) -> bool:
        wholes.append(whole)
        return check(self, source, whole)

    monkeypatch.setattr(_Mirror, "in_order", in_order)

    def frame(now: float) -> bytes | None:
        cache.catch_up(core)
        return cache.state_frame(core, now, shows, None, "rid", EPOCH)

    def fresh(now: float) -> bytes:
        return encode(State(state=describe_cluster(core, now, shows, None)), "rid", EPOCH)

    every = read_cache.ORDER_CHECK_EVERY
    assert frame(10.0) == fresh(10.0) and wholes == [True, True]
    cluster.churn(50)
    assert frame(10.0 + every / 2) == fresh(10.0 + every / 2) and wholes[2:] == [False, False]
    assert frame(10.0 + every) == fresh(10.0 + every) and wholes[4:] == [True, True]
    # an order lost in the middle: found by the next whole check
    active = cache._active
    assert active is not None
    keys = list(active.views)
    keys[10], keys[11] = keys[11], keys[10]
    active.views = {key: active.views[key] for key in keys}
    assert frame(10.0 + 2 * every) is None
    assert frame(10.0 + 2 * every) == fresh(10.0 + 2 * every)  # started over
    # among the newest keys: found at once
    active = cache._active
    assert active is not None
    keys = list(active.views)
    keys[-1], keys[-2] = keys[-2], keys[-1]
    active.views = {key: active.views[key] for key in keys}
    assert frame(10.5 + 2 * every) is None
