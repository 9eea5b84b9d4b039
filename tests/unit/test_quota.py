"""Quota: guarantees are met first and their headroom is held; limits are never passed."""

from __future__ import annotations

import pytest

from mesos_zmq.allocator import Allocator
from mesos_zmq.resources import Resources


def cluster(agents: int, per_agent: str = "cpus:1;mem:1024") -> Allocator:
    a = Allocator()
    for i in range(agents):
        a.add_agent(f"s{i}", Resources.parse(per_agent))
    return a


def held(a: Allocator, role: str) -> float:
    return a.role_allocation(role).get("cpus", 0.0)


def test_guarantee_is_met_before_fair_sharing() -> None:
    a = cluster(4)
    a.add_framework("fa", ["a"])
    a.add_framework("fq", ["q"])
    a.set_quota("q", {"cpus": 3, "mem": 3072})
    a.allocate(0)
    # DRF alone would split 2/2; the guarantee gives q three agents first.
    assert held(a, "q") == 3 and held(a, "a") == 1


def test_headroom_for_unmet_guarantee_is_not_offered_to_others() -> None:
    a = cluster(4)
    a.add_framework("fa", ["a"])
    a.set_quota("q", {"cpus": 2, "mem": 2048})  # q has no framework yet
    a.allocate(0)
    assert held(a, "a") == 2
    a.add_framework("fq", ["q"])
    a.allocate(1)
    assert held(a, "q") == 2


def test_limit_is_never_exceeded_and_counts_the_subtree() -> None:
    a = cluster(4)
    a.add_framework("ml", ["eng/ml"])
    a.add_framework("web", ["eng/web"])
    a.set_quota("eng", {}, limit={"cpus": 1.5})
    offers = a.allocate(0)
    assert held(a, "eng") == 1.5
    assert sum(o.resources.scalar("cpus") for o in offers) == 1.5
    # What is left of the split agent stays available for others.
    a.add_framework("ops", ["ops"])
    assert held(a, "ops") == 0
    a.allocate(1)
    assert held(a, "ops") == 2.5


def test_guarantee_larger_than_cluster_takes_what_exists() -> None:
    a = cluster(2)
    a.add_framework("fq", ["q"])
    a.set_quota("q", {"cpus": 5})
    a.allocate(0)
    assert held(a, "q") == 2


def test_invalid_quota_is_refused() -> None:
    a = cluster(1)
    with pytest.raises(ValueError, match="within the limit"):
        a.set_quota("q", {"cpus": 4}, limit={"cpus": 2})
    with pytest.raises(ValueError):
        a.set_quota("q", {"cpus": -1})


def test_quota_recovered_resources_return_to_guarantee_first() -> None:
    a = cluster(4)
    a.add_framework("fa", ["a"])
    a.add_framework("fq", ["q"])
    a.set_quota("q", {"cpus": 2, "mem": 2048})
    offers = a.allocate(0)
    for o in offers:
        if o.framework_id == "fq":
            a.recover("fq", "q", o.agent_id, o.resources)
    assert held(a, "q") == 0
    a.allocate(1)
    assert held(a, "q") == 2 and held(a, "a") == 2
