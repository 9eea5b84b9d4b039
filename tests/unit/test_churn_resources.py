"""Resources arithmetic on the allocator's hot path gives what the plain way gave.

The allocator adds and subtracts an agent's resources at every launch and end of a
task. Shortcuts there: a sum or difference is built over its own fresh map without a
second pass to drop empty amounts (``Resources._owning``), ``minus_contained`` does
not check again what its caller checked, ``subtract_available`` clamps in one pass,
and each collection works out its scalar totals once (``scalar_amounts``). Each is
held here to the plain way, written out in this file, over random collections of
every kind (amounts, ranges, sets) and role; and the cached totals are checked to be
each collection's own (never another's, never changed by a caller of
``scalar_totals``).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.resources import Resources, _add_into, _kind, _normalize_ranges, _sub

names = st.sampled_from(["cpus", "mem", "disk", "gpus"])
roles = st.sampled_from(["*", "a", "b/x"])
scalar_entries = st.tuples(names, roles, st.integers(0, 5000))
range_entries = st.tuples(st.just("ports"), roles,
                          st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)),
                                   max_size=3))
set_entries = st.tuples(st.just("zones"), roles,
                        st.frozensets(st.sampled_from("uvwxyz"), max_size=4))


def build(entries: list[tuple[str, str, object]]) -> Resources:
    items: dict[tuple[str, str], object] = {}
    for name, role, value in entries:
        if isinstance(value, list):  # ranges, normalised as parse leaves them
            value = _normalize_ranges((lo, lo + span) for lo, span in value)
        items[(name, role)] = value
    return Resources(items)  # type: ignore[arg-type]


collections_ = st.lists(st.one_of(scalar_entries, range_entries, set_entries),
                        max_size=6).map(build)


def plain_init(items: dict) -> dict:  # type: ignore[type-arg]
    """What the constructor kept before: amounts not empty by kind."""
    return {k: v for k, v in items.items()
            if not (v == 0 if isinstance(v, int) else not v)}


def plain_add(a: Resources, b: Resources) -> Resources:
    items = dict(a._items)
    _add_into(items, b._items)
    return Resources(plain_init(items))


def plain_sub(a: Resources, b: Resources) -> Resources:
    items = dict(a._items)
    for key, value in b._items.items():
        items[key] = _sub(items[key], value)
    return Resources(plain_init(items))


def plain_subtract_available(a: Resources, b: Resources) -> Resources:
    items = dict(a._items)
    for key, value in b._items.items():
        mine = items.get(key)
        if mine is None or _kind(mine) != _kind(value):
            continue
        if isinstance(mine, int) and isinstance(value, int):
            items[key] = max(0, mine - value)
        else:
            items[key] = _sub(mine, value)
    return Resources(plain_init(items))


def plain_scalar_totals(a: Resources) -> dict[str, float]:
    milli: dict[str, int] = {}
    for (name, _), value in a._items.items():
        if isinstance(value, int):
            milli[name] = milli.get(name, 0) + value
    return {name: v / 1000 for name, v in milli.items()}


def same(a: Resources, b: Resources) -> None:
    assert a == b and a._items == b._items and str(a) == str(b)
    assert all(v for v in a._items.values()), "an empty amount kept"


@settings(max_examples=400, deadline=None)
@given(collections_, collections_)
def test_sums_and_differences_are_the_plain_ones(a: Resources, b: Resources) -> None:
    same(a + b, plain_add(a, b))
    same(a.subtract_available(b), plain_subtract_available(a, b))
    total = a + b
    same(total.minus_contained(b), plain_sub(total, b))
    same(total - b, plain_sub(total, b))
    if a.contains(b):
        same(a.minus_contained(b), plain_sub(a, b))
    # each result's totals are its own, worked out from its own amounts
    for res in (a, b, total, a.subtract_available(b), total.minus_contained(b)):
        assert res.scalar_amounts() == plain_scalar_totals(res)
        assert res.scalar_totals() == plain_scalar_totals(res)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(names, roles, st.integers(-3, 3)), max_size=6),
       st.lists(st.tuples(st.just("ports"), roles, st.just(())), max_size=2),
       st.lists(st.tuples(st.just("zones"), roles, st.just(frozenset())), max_size=2))
def test_the_constructor_drops_what_it_dropped(scalars: list, ranges: list,  # type: ignore[type-arg]
                                               sets: list) -> None:  # type: ignore[type-arg]
    items = {(n, r): v for n, r, v in scalars + ranges + sets}
    assert Resources(items)._items == plain_init(items)


def test_the_cached_totals_are_not_the_callers_to_change() -> None:
    """``scalar_totals`` gives the caller its own map: changing it changes nothing the
    allocator reads afterwards (the shared one is ``scalar_amounts``)."""
    res = Resources.parse("cpus:2;mem:512;cpus(a):1")
    first = res.scalar_amounts()
    mine = res.scalar_totals()
    mine["cpus"] = 99.0
    mine["gpus"] = 1.0
    assert res.scalar_amounts() == {"cpus": 3.0, "mem": 512.0}
    assert res.scalar_amounts() is first
    assert res.scalar_totals() == {"cpus": 3.0, "mem": 512.0}
    # a sum or difference is a new collection with totals of its own
    more = res + Resources.parse("cpus:1")
    assert more.scalar_amounts() == {"cpus": 4.0, "mem": 512.0}
    less = more.minus_contained(Resources.parse("mem:512"))
    assert less.scalar_amounts() == {"cpus": 4.0}
    assert more.subtract_available(less).scalar_amounts() == {"mem": 512.0}
    assert res.scalar_amounts() == {"cpus": 3.0, "mem": 512.0}
