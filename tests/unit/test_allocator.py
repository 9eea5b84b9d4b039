"""Sorter and allocator rules (expected shares stated in comments)."""

from __future__ import annotations

import pytest

from mesos_zmq.allocator import Allocator, DRFSorter
from mesos_zmq.resources import Resources


def R(text: str) -> Resources:
    return Resources.parse(text)


def test_sorter_orders_by_weighted_dominant_share() -> None:
    s = DRFSorter()
    s.add_total({"cpus": 10, "mem": 100})
    s.add("a")
    s.add("b")
    s.set_weight("b", 2)
    s.allocated("a", {"cpus": 2, "mem": 10})  # dominant: cpus 0.2
    s.allocated("b", {"cpus": 1, "mem": 30})  # dominant: mem 0.3, weighted 0.15
    assert s.share("a") == 0.2 and s.share("b") == 0.3
    assert s.sort() == ["b", "a"]
    s.unallocated("b", {"mem": 30})
    assert s.share("b") == 0.1


def test_sorter_excludes_names_from_share() -> None:
    s = DRFSorter(excluded=["gpus"])
    s.add_total({"cpus": 10, "gpus": 1})
    s.allocated("a", {"cpus": 1, "gpus": 1})
    assert s.share("a") == 0.1


def test_whole_free_agent_offered_and_not_twice() -> None:
    a = Allocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"])
    (alloc,) = a.allocate(0)
    assert alloc.framework_id == "f1" and alloc.resources == R("cpus:4;mem:1024")
    assert a.allocate(1) == []  # everything is out on offer


def test_decline_filter_holds_until_expiry() -> None:
    a = Allocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"])
    (alloc,) = a.allocate(0)
    a.recover("f1", "*", "s1", alloc.resources, refuse_until=5.0)
    assert a.allocate(1) == []
    assert len(a.allocate(5.0)) == 1


def test_revive_clears_filters_and_suppress_stops_offers() -> None:
    a = Allocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"])
    (alloc,) = a.allocate(0)
    a.recover("f1", "*", "s1", alloc.resources, refuse_until=100.0)
    a.revive("f1")
    (alloc,) = a.allocate(1)
    a.recover("f1", "*", "s1", alloc.resources)
    a.suppress("f1")
    assert a.allocate(2) == []


def test_reserved_resources_only_go_to_their_role() -> None:
    a = Allocator()
    a.add_agent("s1", R("cpus(eng):2;cpus:1;mem:512"))
    a.add_framework("ops", ["ops"])
    (alloc,) = a.allocate(0)
    assert alloc.resources == R("cpus:1;mem:512")
    a.add_framework("eng", ["eng"])
    (alloc,) = a.allocate(1)
    assert alloc.framework_id == "eng" and alloc.resources == R("cpus(eng):2")


def test_weights_share_agents_three_to_one() -> None:
    a = Allocator({"a": 1, "b": 3})
    for i in range(8):
        a.add_agent(f"s{i}", R("cpus:1;mem:100"))
    a.add_framework("fa", ["a"])
    a.add_framework("fb", ["b"])
    got = [x.framework_id for x in a.allocate(0)]
    # 8 agents: b (weight 3) ends with 6, a with 2 (shares 0.75 and 0.25).
    assert got.count("fb") == 6 and got.count("fa") == 2


def test_inactive_framework_and_agent_get_nothing() -> None:
    a = Allocator()
    a.add_agent("s1", R("cpus:1;mem:100"))
    a.add_framework("f1", ["*"], active=False)
    assert a.allocate(0) == []
    a.activate_framework("f1")
    a.activate_agent("s1", False)
    assert a.allocate(0) == []


def test_tiny_leftovers_are_not_offered() -> None:
    a = Allocator()
    a.add_agent("s1", R("cpus:1;mem:100"))
    a.add_framework("f1", ["*"])
    a.allocate_to("f1", "*", "s1", R("cpus:0.995;mem:90"))
    assert a.allocate(0) == []  # 0.005 cpus and 10 MB are below the minimum


def test_gpu_agents_only_go_to_frameworks_that_can_use_gpus() -> None:
    a = Allocator()
    a.add_agent("gpu", R("cpus:4;mem:1024;gpus:2"))
    a.add_agent("plain", R("cpus:4;mem:1024"))
    a.add_framework("cpu-only", ["*"])
    got = {x.agent_id: x.framework_id for x in a.allocate(0)}
    assert got == {"plain": "cpu-only"}
    a.add_framework("trainer", ["*"], capabilities=["GPU_RESOURCES"])
    got = {x.agent_id: x.framework_id for x in a.allocate(1)}
    assert got == {"gpu": "trainer"}


def test_suppressed_framework_is_skipped_and_revived() -> None:
    a = Allocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"])
    a.add_framework("f2", ["*"])
    a.suppress("f1")
    assert [x.framework_id for x in a.allocate(0)] == ["f2"]
    a.recover("f2", "*", "s1", R("cpus:4;mem:1024"), refuse_until=100.0)
    assert a.allocate(1) == []
    a.revive("f1")
    assert [x.framework_id for x in a.allocate(2)] == ["f1"]


def test_min_allocatable_alternatives() -> None:
    from mesos_zmq.allocator.allocator import parse_min_allocatable

    alternatives = parse_min_allocatable("cpus:1;mem:64|gpus:1")
    assert alternatives == [{"cpus": 1.0, "mem": 64.0}, {"gpus": 1.0}]
    a = Allocator(min_allocatable=alternatives)
    a.add_agent("small", R("cpus:0.5;mem:1024"))
    a.add_agent("big", R("cpus:2;mem:128"))
    a.add_framework("f", ["*"])
    assert [x.agent_id for x in a.allocate(0)] == ["big"]
    for bad in ("", "ports:[1-2]", "cpus:x"):
        with pytest.raises(ValueError):
            parse_min_allocatable(bad)


def test_excluded_names_do_not_count_in_shares() -> None:
    a = Allocator(excluded=["gpus"])
    a.add_agent("s1", R("cpus:10;mem:1000;gpus:1"))
    a.add_framework("f", ["*"], capabilities=["GPU_RESOURCES"])
    a.allocate(0)
    assert a.role_shares()["*"] == 1.0  # cpus and mem are all taken; gpus ignored
    b = Allocator(excluded=["gpus"])
    b.add_agent("s1", R("cpus:10;mem:1000;gpus:1"))
    b.allocate_to("f", "*", "s1", R("cpus:1;mem:100;gpus:1"))
    assert b.role_shares()["*"] == 0.1


def test_shares_count_only_what_the_role_may_be_given() -> None:
    a = Allocator()
    a.add_agent("s1", R("cpus:5;cpus(eng):5;mem:100;mem(eng):100"))
    a.allocate_to("f-ops", "ops", "s1", R("cpus:5;mem:100"))
    a.allocate_to("f-ml", "eng/ml", "s1", R("cpus(eng):5;mem(eng):100"))
    shares = a.role_shares()
    # ops may only ever get the unreserved half, and holds all of it.
    assert shares["ops"] == 1.0
    # eng/ml may get everything (eng's reservation is its ancestor's): half of it.
    assert shares["eng/ml"] == 0.5


def test_per_role_minimum_allocatable() -> None:
    a = Allocator()
    a.add_agent("s1", R("cpus:0.5;mem:512"))
    a.add_framework("ml", ["ml"])
    a.set_min_allocatable("ml", [{"cpus": 1.0}])
    assert a.allocate(0) == []  # too small for ml's tasks
    a.add_framework("web", ["web"])
    assert [x.framework_id for x in a.allocate(1)] == ["web"]
    a.set_min_allocatable("ml", None)


def test_an_over_committed_agent_offers_nothing_until_it_is_back_under_its_total() -> None:
    """Issue 9, violation 3: released amounts were added to a free clamped at zero."""
    a = Allocator()
    a.add_agent("s1", Resources.parse("cpus:2;mem:1024"))
    a.add_framework("f1", ["*"])
    # Recovered from a log: 3 cpus of tasks on an agent that now has 2.
    a.allocate_to("f1", "*", "s1", Resources.parse("cpus:2;mem:512"))
    a.allocate_to("f1", "*", "s1", Resources.parse("cpus:1;mem:256"))
    assert a.free("s1") == Resources.parse("mem:256")
    a.recover("f1", "*", "s1", Resources.parse("cpus:1;mem:256"))
    assert a.free("s1") == Resources.parse("mem:512")  # 2 cpus still in use: none free
    assert all(x.resources.scalar("cpus") == 0 for x in a.allocate(0.0))
    a.recover("f1", "*", "s1", Resources.parse("cpus:2;mem:512"))
    a.recover("f1", "*", "s1", Resources.parse("mem:512"))
    assert a.free("s1") == Resources.parse("cpus:2;mem:1024")
