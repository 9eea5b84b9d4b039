"""A new leader adds its agents and their running tasks in bulk (``add_agents``,
``allocate_many``): the allocator must come out exactly as if each had been added one
by one, shares and later offers included, whatever the shapes, roles, reservations,
quotas and sorter policy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.allocator import SORTER_NAMES, Allocator, sorter_factory
from mesos_zmq.resources import Resources

ROLES = ["a", "b", "b/x", "*"]
SHAPES = [
    "cpus:4;mem:4096",
    "cpus:2;mem:1024;gpus:1",
    "cpus:1;mem:512;cpus(b):2;mem(b):256",
    "cpus:0.001;mem:0.5;disk:10",
    "cpus:8;mem:16384;ports:[31000-31010]",
]
HELD = ["cpus:0.1;mem:32", "cpus:0.3;mem:64", "cpus:1.7;mem:100.5", "cpus(b):0.5;mem(b):8",
        "cpus:0.001", "mem:7;ports:[31000-31001]"]

agents_st = st.lists(st.sampled_from(SHAPES), min_size=1, max_size=8)
held_st = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(ROLES), st.integers(0, 9),
                             st.sampled_from(HELD)), max_size=30)


def build(shapes: list[str], held: list[tuple[int, str, int, str]], sorter: str, bulk: bool,
          quota: bool) -> Allocator:
    allocator = Allocator(sorter_factory=sorter_factory(sorter, seed=7))
    if quota:
        allocator.set_quota("b", {"cpus": 3.0}, {"cpus": 6.0})
    agents = [(f"agent{i}", Resources.parse(text)) for i, text in enumerate(shapes)]
    # Held resources name agents that may be unknown (a stale log): both ways skip them.
    holds = [(f"fw{fw}", role, f"agent{agent}", Resources.parse(text))
             for fw, role, agent, text in held]
    for fw in range(4):
        allocator.add_framework(f"fw{fw}", tuple(ROLES), active=False)
    if bulk:
        allocator.add_agents(agents, active=False)
        allocator.allocate_many(holds)
    else:
        for agent_id, total in agents:
            allocator.add_agent(agent_id, total)
            allocator.activate_agent(agent_id, False)
        for hold in holds:
            allocator.allocate_to(*hold)
    return allocator


def books(allocator: Allocator, agents: int) -> dict[str, object]:
    return {
        "shares": allocator.role_shares(),
        "roles": {role: allocator.role_allocation(role) for role in ROLES},
        "frameworks": {(fw, role): allocator.framework_share(f"fw{fw}", role)
                       for fw in range(4) for role in ROLES},
        "free": {i: allocator.free(f"agent{i}") for i in range(agents)},
    }


@pytest.mark.parametrize("sorter", SORTER_NAMES)
@settings(max_examples=60, deadline=None)
@given(shapes=agents_st, held=held_st, quota=st.booleans())
def test_bulk_recovery_books_as_one_by_one(sorter: str, shapes: list[str],
                                            held: list[tuple[int, str, int, str]],
                                            quota: bool) -> None:
    one = build(shapes, held, sorter, bulk=False, quota=quota)
    many = build(shapes, held, sorter, bulk=True, quota=quota)
    assert books(many, len(shapes)) == books(one, len(shapes))
    for allocator in (one, many):  # everyone comes back; then the same offers follow
        for i in range(len(shapes)):
            allocator.activate_agent(f"agent{i}")
        for fw in range(4):
            allocator.activate_framework(f"fw{fw}")
    assert many.allocate(1.0) == one.allocate(1.0)
    assert books(many, len(shapes)) == books(one, len(shapes))


def test_an_agent_added_twice_is_refused_and_the_rest_still_counted() -> None:
    allocator = Allocator()
    cpus = Resources.parse("cpus:4;mem:4096")
    allocator.add_agent("a1", cpus)
    with pytest.raises(ValueError, match="a2 already added"):
        allocator.add_agents([("a2", cpus), ("a3", cpus), ("a2", cpus)])
    allocator.add_framework("fw", ("*",))
    offered = {a.agent_id for a in allocator.allocate(1.0)}
    assert offered == {"a1", "a2", "a3"}
    allocator.allocate_to("fw", "*", "a9", cpus)  # unknown agent: nothing counted
    assert allocator.role_shares() == {"*": pytest.approx(1.0)}
