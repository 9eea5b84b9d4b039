"""The sorter policy: the lookup by name, and Mesos's weighted random order.

The random sorter must order by weight (a client with weight 3 comes first about three
times as often as one with weight 1), replay exactly from a seed, touch no global
random state, and keep the same books as the DRF sorter (quota and the reported shares
are read from them whatever the policy). The frequencies are checked with fixed seeds,
so these tests are deterministic; the bounds are loose (about four standard
deviations) so that a change of draw order still passes if the distribution is right.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.allocator import (
    SORTER_NAMES,
    Allocator,
    DRFSorter,
    RandomSorter,
    sorter_factory,
)
from mesos_zmq.allocator.roles import RoleTree
from mesos_zmq.allocator.sorter import Pool
from mesos_zmq.errors import ConfigError, MesosZmqError
from mesos_zmq.resources import Resources

DRAWS = 4000


def random_sorter(seed: int = 0, **weights: float) -> RandomSorter:
    s = RandomSorter(rng=random.Random(seed))
    for client, weight in weights.items():
        s.add(client)
        s.set_weight(client, weight)
    return s


def first_counts(s: RandomSorter, draws: int = DRAWS) -> Counter[str]:
    return Counter(next(s.iter_sorted()) for _ in range(draws))


# ----------------------------------------------------------------- lookup by name
def test_lookup_by_name() -> None:
    assert SORTER_NAMES == ("drf", "random")
    assert sorter_factory("drf") is DRFSorter
    made = sorter_factory("random", seed=3)(excluded=(), pool=Pool(), role_of=lambda c: c)
    assert isinstance(made, RandomSorter)


def test_unknown_name_is_a_config_error_that_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'fifo'.*drf, random") as info:
        sorter_factory("fifo")
    assert isinstance(info.value, MesosZmqError)


# ----------------------------------------------------------------- weighted order
def test_weight_three_is_first_about_three_times_as_often_as_weight_one() -> None:
    counts = first_counts(random_sorter(seed=7, heavy=3, light=1))
    # Expected 3000 : 1000.
    assert 2.5 <= counts["heavy"] / counts["light"] <= 3.6, counts


def test_first_place_is_proportional_to_weight() -> None:
    counts = first_counts(random_sorter(seed=11, a=3, b=1, c=1))
    # Expected 0.6, 0.2, 0.2 of the draws.
    assert 0.55 <= counts["a"] / DRAWS <= 0.65, counts
    assert 0.17 <= counts["b"] / DRAWS <= 0.23 and 0.17 <= counts["c"] / DRAWS <= 0.23, counts


def test_equal_weights_give_a_uniform_order() -> None:
    s = random_sorter(seed=13, a=1, b=1, c=1, d=1)
    counts = Counter(tuple(s.iter_sorted()) for _ in range(DRAWS * 6))
    assert len(counts) == 24  # every permutation turns up, each about 1000 times
    assert min(counts.values()) >= 850 and max(counts.values()) <= 1150, counts


def test_later_places_are_weighted_among_the_clients_left() -> None:
    """Sampling without replacement: given ``a`` first, ``b`` (3) beats ``c`` (1) 3:1."""
    s = random_sorter(seed=17, a=1000, b=3, c=1)
    seconds = Counter(s.sort()[1] for _ in range(DRAWS))
    assert 2.5 <= seconds["b"] / seconds["c"] <= 3.6, seconds


def test_role_weights_bias_the_hierarchical_order() -> None:
    """eng (3) against ops (1); inside eng, eng/a and eng/b alike: 3/8, 3/8, 1/4 first."""
    tree = RoleTree(Pool(), sorter_factory=sorter_factory("random", seed=19))
    for role in ("eng/a", "eng/b", "ops"):
        tree.add_role(role)
    tree.set_weight("eng", 3)
    counts = Counter(next(tree.iter_sorted()) for _ in range(DRAWS))
    assert 0.33 <= counts["eng/a"] / DRAWS <= 0.42, counts
    assert 0.33 <= counts["eng/b"] / DRAWS <= 0.42, counts
    assert 0.21 <= counts["ops"] / DRAWS <= 0.29, counts
    # Every walk still yields each role once.
    assert sorted(tree.iter_sorted()) == ["eng/a", "eng/b", "ops"]


def test_allocator_offers_by_weight_not_by_share() -> None:
    """One agent, offered and given back each round: the weight-3 role wins ~3 in 4.

    DRF would alternate strictly between equal holders; the random order ignores what
    each role holds and follows the weights alone.
    """
    a = Allocator({"heavy": 3, "light": 1}, sorter_factory=sorter_factory("random", seed=23))
    a.add_agent("s1", Resources.parse("cpus:4;mem:1024"))
    a.add_framework("fh", ["heavy"])
    a.add_framework("fl", ["light"])
    counts: Counter[str] = Counter()
    for now in range(DRAWS):
        (alloc,) = a.allocate(float(now))
        counts[alloc.role] += 1
        a.recover(alloc.framework_id, alloc.role, alloc.agent_id, alloc.resources)
    assert 2.5 <= counts["heavy"] / counts["light"] <= 3.6, counts


# ----------------------------------------------------------------- determinism
def test_same_seed_same_orders_other_seed_other_orders() -> None:
    weights = {f"c{i}": float(1 + i % 3) for i in range(10)}

    def orders(seed: int) -> list[list[str]]:
        s = random_sorter(seed, **weights)
        return [s.sort() for _ in range(20)]

    assert orders(5) == orders(5)
    assert orders(5) != orders(6)


def test_factories_with_one_seed_make_allocators_that_replay() -> None:
    def run(seed: int) -> list[tuple[str, str]]:
        a = Allocator({"r1": 2}, sorter_factory=sorter_factory("random", seed=seed))
        for i in range(30):
            a.add_agent(f"s{i}", Resources.parse("cpus:2;mem:2048"))
        for i in range(12):
            a.add_framework(f"f{i}", [f"r{i % 3}"])
        return [(x.framework_id, x.agent_id) for x in a.allocate(0.0)]

    assert run(29) == run(29)
    assert run(29) != run(30)


def test_the_global_random_state_is_left_alone() -> None:
    """Purity: the only randomness is the factory's own generator."""
    before = random.getstate()
    a = Allocator(sorter_factory=sorter_factory("random", seed=31))
    for i in range(5):
        a.add_agent(f"s{i}", Resources.parse("cpus:1;mem:512"))
        a.add_framework(f"f{i}", ["*", f"r{i}"])
    a.allocate(0.0)
    assert random.getstate() == before


# ----------------------------------------------------------------- membership
def test_only_visible_clients_are_ordered_each_exactly_once() -> None:
    s = random_sorter(seed=37, a=1, b=2, c=3, d=1)
    assert sorted(s.sort()) == ["a", "b", "c", "d"]
    s.hide("b")
    s.remove("c")
    s.hide("zz")  # unknown: ignored
    for _ in range(50):
        assert sorted(s.sort()) == ["a", "d"]
    s.hide("b", False)
    assert sorted(s.sort()) == ["a", "b", "d"]
    assert "c" not in s and "b" in s


def test_a_single_client_draws_nothing() -> None:
    rng = random.Random(41)
    s = RandomSorter(rng=rng)
    state = rng.getstate()
    assert s.sort() == []
    s.add("only")
    assert s.sort() == ["only"]
    assert rng.getstate() == state


def test_weights_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        random_sorter().set_weight("a", 0)


# ----------------------------------------------------------------- same books as DRF
sorter_ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from("abcd")),
    st.tuples(st.just("remove"), st.sampled_from("abcd")),
    st.tuples(st.just("hide"), st.sampled_from("abcd"), st.booleans()),
    st.tuples(st.just("weight"), st.sampled_from("abcd"), st.integers(1, 4)),
    st.tuples(st.just("allocated"), st.sampled_from("abcd"), st.integers(0, 8),
              st.integers(0, 4096)),
    st.tuples(st.just("unallocated"), st.sampled_from("abcd"), st.integers(0, 8),
              st.integers(0, 4096)),
    st.tuples(st.just("total"), st.integers(1, 16), st.integers(512, 8192)),
), max_size=40)


@pytest.mark.parametrize("excluded", [(), ("mem",)])
@settings(max_examples=150, deadline=None)
@given(sorter_ops, st.integers(0, 2**32 - 1))
def test_random_sorter_keeps_the_same_books_as_drf(excluded: tuple[str, ...],
                                                   ops: list,  # type: ignore[type-arg]
                                                   seed: int) -> None:
    pool = Pool()
    drf = DRFSorter(excluded, pool)
    rnd = RandomSorter(excluded, pool, rng=random.Random(seed))
    for op in ops:
        for s in (drf, rnd):
            kind = op[0]
            if kind == "add":
                s.add(op[1])
            elif kind == "remove":
                s.remove(op[1])
            elif kind == "hide":
                s.hide(op[1], op[2])
            elif kind == "weight":
                s.set_weight(op[1], op[2])
            elif kind in ("allocated", "unallocated"):
                getattr(s, kind)(op[1], {"cpus": op[2], "mem": op[3]})
        if op[0] == "total":
            pool.add({"cpus": op[1], "mem": op[2]})
        for client in "abcd":
            assert rnd.allocation(client) == drf.allocation(client)
            assert rnd.share(client) == drf.share(client)
        assert sorted(rnd.iter_sorted()) == sorted(drf.iter_sorted())


@pytest.mark.parametrize("name", SORTER_NAMES)
def test_allocator_reports_the_same_shares_under_either_policy(name: str) -> None:
    """Shares are a measurement: the policy changes who is served, not how it is told."""
    a = Allocator(sorter_factory=sorter_factory(name, seed=43))
    a.add_agent("s1", Resources.parse("cpus:4;mem:1024"))
    a.add_agent("s2", Resources.parse("cpus:4;mem:4096"))
    a.add_framework("f1", ["eng/ml"])
    a.allocate_to("f1", "eng/ml", "s1", Resources.parse("cpus:2;mem:256"))
    assert a.role_shares() == {"eng/ml": 0.25}  # cpus 2 of 8
    assert a.role_allocation("eng") == {"cpus": 2.0, "mem": 256.0}
    assert a.framework_share("f1", "eng/ml") == 0.25
