"""Property tests: random event sequences never break the allocator's promises.

Promises checked after every step: no resource is offered or used twice at once (what
the test holds per agent equals what the allocator counts, and fits in the agent);
offers never exceed an agent; reserved resources go only to their role and its
sub-roles; quota limits are never passed. Separately: guarantees
that the cluster can satisfy are met by one allocation round.

These promises do not depend on the order in which clients are served, so they are
checked under every sorter policy (DRF and Mesos's weighted random order, with a drawn
seed); the convergence to the weights is DRF's own promise and is checked for DRF only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.allocator import SORTER_NAMES, Allocation, Allocator, sorter_factory
from mesos_zmq.resources import Resources

ROLES = ["a", "b", "b/x"]
#: holds resources beyond an agent's total, as a state recovered from a stale log can
GHOST = "ghost"
LIMITS = {"b": {"cpus": 6.0}}
seeds = st.integers(0, 2**32 - 1)


def make_allocator(sorter: str = "drf", seed: int = 0) -> Allocator:
    return Allocator(sorter_factory=sorter_factory(sorter, seed=seed))


@dataclass
class World:
    allocator: Allocator = field(default_factory=Allocator)
    agents: dict[str, Resources] = field(default_factory=dict)
    frameworks: dict[str, str] = field(default_factory=dict)  # id -> role
    # (framework, role, agent, resources) held as offers or running tasks
    held: list[tuple[str, str, str, Resources]] = field(default_factory=list)
    now: float = 0.0
    counter: int = 0
    #: every allocation made, in order (to compare runs)
    made: list[Allocation] = field(default_factory=list)

    def check(self) -> None:
        per_agent: dict[str, Resources] = {}
        for _, _, agent_id, res in self.held:
            per_agent[agent_id] = per_agent.get(agent_id, Resources.empty()) + res
        for agent_id, total in self.agents.items():
            used = per_agent.get(agent_id, Resources.empty())
            ghosts = any(h[0] == GHOST and h[2] == agent_id for h in self.held)
            assert ghosts or total.contains(used), f"{agent_id} over-committed: {used} > {total}"
            # Free is what the total has beyond what is held, never more.
            assert self.allocator.free(agent_id) == total.subtract_available(used)
        for role, limit in LIMITS.items():
            have = self.allocator.role_allocation(role)
            for name, cap in limit.items():
                assert have.get(name, 0.0) <= cap + 1e-9, f"{role} over its {name} limit"


op = st.one_of(
    st.tuples(st.just("agent"), st.integers(1, 8), st.integers(1, 4)),
    st.tuples(st.just("remove_agent"), st.integers(0, 20)),
    st.tuples(st.just("framework"), st.sampled_from(ROLES)),
    st.tuples(st.just("remove_framework"), st.integers(0, 20)),
    st.tuples(st.just("allocate"), st.booleans()),
    st.tuples(st.just("use_half"), st.integers(0, 50), st.floats(0, 10)),
    st.tuples(st.just("decline"), st.integers(0, 50), st.floats(0, 10)),
    st.tuples(st.just("finish"), st.integers(0, 50)),
    st.tuples(st.just("suppress"), st.integers(0, 20)),
    st.tuples(st.just("revive"), st.integers(0, 20)),
    st.tuples(st.just("overcommit"), st.integers(0, 20), st.integers(1, 4)),
)


def step(w: World, action: tuple) -> None:  # type: ignore[type-arg]
    kind = action[0]
    a = w.allocator
    if kind == "agent":
        w.counter += 1
        agent_id = f"s{w.counter}"
        # Every other agent has part of it reserved for role b (static reservation).
        reserved = ";cpus(b):1;mem(b):256" if w.counter % 2 else ""
        total = Resources.parse(f"cpus:{action[1]};mem:{action[2] * 512}{reserved}")
        w.agents[agent_id] = total
        a.add_agent(agent_id, total)
    elif kind == "remove_agent" and w.agents:
        agent_id = sorted(w.agents)[action[1] % len(w.agents)]
        for item in [h for h in w.held if h[2] == agent_id]:
            a.recover(item[0], item[1], item[2], item[3])
            w.held.remove(item)
        a.remove_agent(agent_id)
        del w.agents[agent_id]
    elif kind == "framework":
        fid = f"f{len(w.frameworks)}"
        w.frameworks[fid] = action[1]
        a.add_framework(fid, [action[1]])
    elif kind == "remove_framework" and w.frameworks:
        fid = sorted(w.frameworks)[action[1] % len(w.frameworks)]
        for item in [h for h in w.held if h[0] == fid]:
            a.recover(*item)
            w.held.remove(item)
        a.remove_framework(fid)
        del w.frameworks[fid]
    elif kind == "allocate":
        w.now += 1.0 if action[1] else 0.0
        for alloc in a.allocate(w.now):
            w.made.append(alloc)
            assert alloc.agent_id in w.agents
            held = sum((h[3] for h in w.held if h[2] == alloc.agent_id), Resources.empty())
            # Only what is really free: over-committed resources are never offered.
            free = w.agents[alloc.agent_id].subtract_available(held)
            assert free.contains(alloc.resources), (
                f"{alloc.agent_id} offered {alloc.resources} on top of {held}")
            assert alloc.framework_id in w.frameworks
            # Reserved resources go only to their role or its sub-roles.
            for role in alloc.resources.roles() - {"*"}:
                assert alloc.role == role or alloc.role.startswith(role + "/"), alloc
            w.held.append((alloc.framework_id, alloc.role, alloc.agent_id, alloc.resources))
            held = held + alloc.resources
    elif kind == "use_half" and w.held:
        fid, role, agent_id, res = w.held.pop(action[1] % len(w.held))
        half = Resources.from_scalars({n: v / 2 for n, v in res.scalar_totals().items()})
        if res.contains(half):
            w.held.append((fid, role, agent_id, half))
            a.recover(fid, role, agent_id, res - half, refuse_until=w.now + action[2])
        else:
            w.held.append((fid, role, agent_id, res))
    elif kind == "decline" and w.held:
        fid, role, agent_id, res = w.held.pop(action[1] % len(w.held))
        a.recover(fid, role, agent_id, res, refuse_until=w.now + action[2])
    elif kind == "finish" and w.held:
        a.recover(*w.held.pop(action[1] % len(w.held)))
    elif kind == "overcommit" and w.agents:
        # Tasks recovered from a log say more runs here than the agent now has.
        agent_id = sorted(w.agents)[action[1] % len(w.agents)]
        extra = Resources.parse(f"cpus:{w.agents[agent_id].scalar('cpus') + action[2]}")
        a.allocate_to(GHOST, "*", agent_id, extra)
        w.held.append((GHOST, "*", agent_id, extra))
    elif kind in ("suppress", "revive") and w.frameworks:
        fid = sorted(w.frameworks)[action[1] % len(w.frameworks)]
        (a.suppress if kind == "suppress" else a.revive)(fid)


def prepare(w: World, quota: bool) -> None:
    w.allocator.add_framework(GHOST, ["*"], active=False)
    if quota:
        w.allocator.set_quota("b", {"cpus": 2.0}, limit=LIMITS["b"])
        w.allocator.set_quota("b/x", {"cpus": 1.0})
    else:
        w.allocator.set_quota("b", {}, limit=LIMITS["b"])


@pytest.mark.parametrize("sorter", SORTER_NAMES)
@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=60), st.booleans(), seeds)
def test_random_sequences_keep_the_books_straight(sorter: str, actions: list,  # type: ignore[type-arg]
                                                  quota: bool, seed: int) -> None:
    w = World(allocator=make_allocator(sorter, seed))
    prepare(w, quota)
    for action in actions:
        step(w, action)
        w.check()


@settings(max_examples=50, deadline=None)
@given(st.lists(op, max_size=60), st.booleans(), seeds)
def test_random_order_replays_from_its_seed(actions: list, quota: bool,  # type: ignore[type-arg]
                                            seed: int) -> None:
    """Same seed, same events: the same offers (the allocator stays a pure function)."""
    runs = []
    for _ in range(2):
        w = World(allocator=make_allocator("random", seed))
        prepare(w, quota)
        for action in actions:
            step(w, action)
        runs.append(w.made)
    assert runs[0] == runs[1]


@settings(max_examples=50, deadline=None)
@given(st.lists(op, max_size=60), st.booleans())
def test_drf_by_name_is_the_default(actions: list, quota: bool) -> None:  # type: ignore[type-arg]
    """``sorter_factory("drf")`` and ``Allocator()`` make the same offers."""
    runs = []
    for allocator in (Allocator(), make_allocator("drf")):
        w = World(allocator=allocator)
        prepare(w, quota)
        for action in actions:
            step(w, action)
        runs.append(w.made)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("sorter", SORTER_NAMES)
@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 8), min_size=1, max_size=12),
       st.lists(st.integers(1, 6), min_size=1, max_size=5), seeds)
def test_satisfiable_guarantees_are_met_in_one_round(sorter: str, agent_cpus: list[int],
                                                     guarantees: list[int], seed: int) -> None:
    a = make_allocator(sorter, seed)
    for i, cpus in enumerate(agent_cpus):
        a.add_agent(f"s{i}", Resources.parse(f"cpus:{cpus};mem:{cpus * 1024}"))
    capacity = sum(agent_cpus)
    wanted = [g for g in guarantees]
    while sum(wanted) > capacity:
        wanted.pop()
    a.add_framework("greedy", ["other"])  # an eager non-quota role competes
    for i, cpus in enumerate(wanted):
        a.add_framework(f"q{i}", [f"q{i}"])
        a.set_quota(f"q{i}", {"cpus": cpus, "mem": cpus * 1024})
    a.allocate(0)
    for i, cpus in enumerate(wanted):
        have = a.role_allocation(f"q{i}")
        assert have.get("cpus", 0.0) >= cpus and have.get("mem", 0.0) >= cpus * 1024


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=2, max_size=3), st.integers(10, 80))
def test_equal_demand_converges_to_the_weights(weights: list[int], agents: int) -> None:
    a = Allocator({f"r{i}": float(w) for i, w in enumerate(weights)})
    for i in range(agents):
        a.add_agent(f"s{i}", Resources.parse("cpus:1;mem:1024"))
    for i in range(len(weights)):
        a.add_framework(f"f{i}", [f"r{i}"])
    counts = {f"r{i}": 0 for i in range(len(weights))}
    for alloc in a.allocate(0):
        counts[alloc.role] += 1
    # Whole agents are the unit, so weighted holdings (agents / weight) can differ by
    # at most one agent's worth: the last agent given to the least-served role.
    weighted = [counts[f"r{i}"] / w for i, w in enumerate(weights)]
    assert max(weighted) - min(weighted) <= 1.0 / min(weights) + 1e-9, (counts, weights)
    assert sum(counts.values()) == agents
