"""Hierarchical DRF over the role tree (expected orders stated in comments)."""

from __future__ import annotations

from mesos_zmq.allocator import Allocator
from mesos_zmq.allocator.roles import RoleTree, ancestors
from mesos_zmq.allocator.sorter import Pool
from mesos_zmq.resources import Resources


def tree(*roles: str) -> RoleTree:
    pool = Pool()
    pool.add({"cpus": 100.0})
    t = RoleTree(pool)
    for role in roles:
        t.add_role(role)
    return t


def test_ancestors() -> None:
    assert ancestors("eng/ml/train") == ["eng", "eng/ml"]
    assert ancestors("eng") == [] and ancestors("*") == []


def test_siblings_compete_inside_their_parent() -> None:
    t = tree("eng/ml", "eng/web", "ops")
    t.allocated("eng/ml", {"cpus": 30})  # eng subtree: 0.30; ops: 0
    t.allocated("ops", {"cpus": 20})  # ops: 0.20 -> ops before eng
    assert list(t.iter_sorted()) == ["ops", "eng/web", "eng/ml"]
    t.allocated("ops", {"cpus": 20})  # ops 0.40 > eng 0.30 -> eng's children first
    assert list(t.iter_sorted()) == ["eng/web", "eng/ml", "ops"]
    assert t.share("eng") == 0.3 and t.allocation("eng") == {"cpus": 30}


def test_weights_apply_among_siblings() -> None:
    t = tree("eng/ml", "eng/web")
    t.set_weight("eng/ml", 3)
    t.allocated("eng/ml", {"cpus": 30})  # weighted 0.10
    t.allocated("eng/web", {"cpus": 15})  # weighted 0.15
    assert list(t.iter_sorted()) == ["eng/ml", "eng/web"]


def test_role_with_own_frameworks_and_children() -> None:
    t = tree("eng", "eng/ml")
    t.allocated("eng", {"cpus": 10})
    assert list(t.iter_sorted()) == ["eng/ml", "eng"]
    t.unallocated("eng", {"cpus": 10})
    t.allocated("eng/ml", {"cpus": 10})
    assert list(t.iter_sorted()) == ["eng", "eng/ml"]
    assert t.share("eng") == 0.1


def test_allocator_splits_by_subtree_then_within() -> None:
    a = Allocator({"eng": 1, "ops": 1})
    for i in range(8):
        a.add_agent(f"s{i}", Resources.parse("cpus:1;mem:100"))
    a.add_framework("ml", ["eng/ml"])
    a.add_framework("web", ["eng/web"])
    a.add_framework("ops", ["ops"])
    got = [x.framework_id for x in a.allocate(0)]
    # eng and ops get 4 agents each; eng's 4 split 2/2 between its children.
    assert got.count("ops") == 4 and got.count("ml") == 2 and got.count("web") == 2
