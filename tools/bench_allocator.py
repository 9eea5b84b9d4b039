"""Allocator benchmarks in the shapes of Mesos's allocator benchmarks.

Drives :class:`mesos_zmq.allocator.Allocator` directly (no master, no sockets) and
prints one line per round, then ``median round: X ms``. Shapes:

* ``decline-offers``: agents ``cpus:24;mem:4096;disk:4096;ports:[31000-32000]``, each
  with ``cpus:16;mem:2014;disk:1024`` and 16 ports already used by one framework
  (round-robin); every framework declines everything it is offered, forever.
* ``suppress-offers``: the same cluster; each round a further fifth of the frameworks
  suppresses offers.
* ``large-and-small-quota``: agents ``cpus:2;mem:2048;disk:2048``, ``--roles`` roles
  each with one framework and a quota guarantee of ``cpus:1;mem:1024;disk:1024``
  (every tenth role four times that); one cycle should satisfy every guarantee.
* ``add-agents``: time to add N agents, then to update all of them (remove and re-add
  with one more cpu).

``--sorter`` picks the order policy (``drf``, the default, or Mesos's weighted
``random``, seeded by ``--seed``), to compare their costs on the same shapes.

    python tools/bench_allocator.py decline-offers --agents 2000 --frameworks 2000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mesos_zmq.allocator import SORTER_NAMES, Allocator, SorterFactory, sorter_factory
from mesos_zmq.resources import Resources

AGENT = Resources.parse("cpus:24;mem:4096;disk:4096;ports:[31000-32000]")
QUOTA_AGENT = Resources.parse("cpus:2;mem:2048;disk:2048")
FOREVER = float("inf")
#: set from --sorter/--seed in main(); every shape builds its allocator through it
SORTER: SorterFactory = sorter_factory("drf")


def new_allocator() -> Allocator:
    return Allocator(sorter_factory=SORTER)


def used_by(index: int) -> Resources:
    first = 31000 + (index % 60) * 16
    return Resources.parse(f"cpus:16;mem:2014;disk:1024;ports:[{first}-{first + 15}]")


def build(agents: int, frameworks: int, role: str = "*") -> Allocator:
    allocator = new_allocator()
    for f in range(frameworks):
        allocator.add_framework(f"f{f}", [role])
    for a in range(agents):
        agent_id = f"a{a}"
        allocator.add_agent(agent_id, AGENT)
        allocator.allocate_to(f"f{a % frameworks}", role, agent_id, used_by(a))
    return allocator


def decline_offers(args: argparse.Namespace) -> list[float]:
    allocator = build(args.agents, args.frameworks)
    rounds: list[float] = []
    now = 0.0
    for r in range(args.rounds):
        start = time.perf_counter()
        allocations = allocator.allocate(now)
        elapsed = (time.perf_counter() - start) * 1000
        for alloc in allocations:
            allocator.recover(alloc.framework_id, alloc.role, alloc.agent_id,
                              alloc.resources, refuse_until=FOREVER)
        rounds.append(elapsed)
        print(f"round {r}: {len(allocations)} offers in {elapsed:.1f} ms")
        now += 1.0
    return rounds


def suppress_offers(args: argparse.Namespace) -> list[float]:
    allocator = build(args.agents, args.frameworks)
    rounds: list[float] = []
    now = 0.0
    fifth = max(1, args.frameworks // 5)
    suppressed = 0
    for r in range(args.rounds):
        for f in range(suppressed, min(args.frameworks, suppressed + fifth)):
            allocator.suppress(f"f{f}")
        suppressed = min(args.frameworks, suppressed + fifth)
        start = time.perf_counter()
        allocations = allocator.allocate(now)
        elapsed = (time.perf_counter() - start) * 1000
        for alloc in allocations:
            allocator.recover(alloc.framework_id, alloc.role, alloc.agent_id,
                              alloc.resources, refuse_until=FOREVER)
        rounds.append(elapsed)
        print(f"round {r}: {suppressed} suppressed, {len(allocations)} offers "
              f"in {elapsed:.1f} ms")
        now += 1.0
    return rounds


def large_and_small_quota(args: argparse.Namespace) -> list[float]:
    allocator = new_allocator()
    for a in range(args.agents):
        allocator.add_agent(f"a{a}", QUOTA_AGENT)
    for r in range(args.roles):
        role = f"role{r}"
        allocator.add_framework(f"f{r}", [role])
        size = 4 if r % 10 == 0 else 1  # one role in ten has the large quota
        allocator.set_quota(role, {"cpus": size, "mem": 1024 * size, "disk": 1024 * size})
    start = time.perf_counter()
    allocations = allocator.allocate(0.0)
    elapsed = (time.perf_counter() - start) * 1000
    unmet = [r for r, q in allocator.quotas().items()
             if any(allocator.role_allocation(r).get(n, 0.0) < v for n, v in q.guarantee.items())]
    print(f"cycle: {len(allocations)} offers in {elapsed:.1f} ms; "
          f"roles with unmet guarantees after it: {len(unmet)}")
    return [elapsed]


def add_agents(args: argparse.Namespace) -> list[float]:
    allocator = new_allocator()
    for f in range(args.frameworks):
        allocator.add_framework(f"f{f}", ["*"])
    start = time.perf_counter()
    for a in range(args.agents):
        allocator.add_agent(f"a{a}", AGENT)
    added = (time.perf_counter() - start) * 1000
    print(f"added {args.agents} agents in {added:.1f} ms")
    bigger = AGENT + Resources.parse("cpus:1")
    start = time.perf_counter()
    for a in range(args.agents):
        allocator.remove_agent(f"a{a}")
        allocator.add_agent(f"a{a}", bigger)
    updated = (time.perf_counter() - start) * 1000
    print(f"updated {args.agents} agents in {updated:.1f} ms")
    # One event-driven allocation after a single agent frees resources.
    holder = {x.agent_id: x for x in allocator.allocate(0.0)}["a0"]
    allocator.recover(holder.framework_id, holder.role, "a0", Resources.parse("cpus:1;mem:10"))
    start = time.perf_counter()
    made = allocator.allocate(1.0)
    single = (time.perf_counter() - start) * 1000
    print(f"one allocation after one agent freed resources: {single:.2f} ms "
          f"({len(made)} offer of {made[0].resources if made else 'nothing'})")
    return [added]


SHAPES = {
    "decline-offers": decline_offers,
    "suppress-offers": suppress_offers,
    "add-agents": add_agents,
    "large-and-small-quota": large_and_small_quota,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--frameworks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--roles", type=int, default=100, help="large-and-small-quota only")
    parser.add_argument("--sorter", choices=SORTER_NAMES, default="drf",
                        help="order policy for roles and frameworks")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random sorter")
    args = parser.parse_args()
    global SORTER
    SORTER = sorter_factory(args.sorter, seed=args.seed)
    print(f"{args.shape}: {args.agents} agents, {args.frameworks} frameworks, "
          f"{args.sorter} sorter")
    rounds = SHAPES[args.shape](args)
    print(f"reproduce: python tools/bench_allocator.py {args.shape} --agents {args.agents} "
          f"--frameworks {args.frameworks} --rounds {args.rounds} --roles {args.roles} "
          f"--sorter {args.sorter} --seed {args.seed}")
    print(f"median round: {statistics.median(rounds):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
