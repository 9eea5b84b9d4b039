"""The allocator: agents' free resources in, offers (allocations) out.

Theory of operation
-------------------
The allocator receives lifecycle events only (agents and frameworks come and go,
resources are recovered with an optional filter, frameworks suppress and revive) and
produces :class:`Allocation` records from :meth:`Allocator.allocate`. It does not know
about sockets, offer ids or the log: the master turns allocations into offers.

Everything offered counts as allocated until the master recovers it (declined, left
over after an accept, or freed when a task ends), which is what keeps one resource from
being offered twice at once.

A round visits only agents that have something worth offering (an index kept up to
date as resources come and go), in a rotating order. For each, it walks roles in
hierarchical DRF order (:class:`~mesos_zmq.allocator.roles.RoleTree`) and, inside a
role, frameworks by ascending share, and offers everything the first eligible
framework may use on that agent (unreserved resources plus those reserved for the
role or its ancestors). Shares are updated as the round goes, incrementally, so a
large round still spreads agents fairly and stays cheap.

A framework is eligible for an agent when it is active, subscribed to the role, not
suppressed for it, and has no unexpired decline filter for that agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mesos_zmq.allocator.roles import RoleTree
from mesos_zmq.allocator.sorter import DRFSorter, Pool
from mesos_zmq.resources import Resources

#: Mesos's minimum allocatable resources: an offer smaller than this in every one of
#: these dimensions is not worth making.
MIN_CPUS = 0.01
MIN_MEM = 32.0


@dataclass(frozen=True, slots=True)
class Allocation:
    framework_id: str
    role: str
    agent_id: str
    resources: Resources


@dataclass(slots=True)
class _Agent:
    total: Resources
    allocated: Resources
    free: Resources
    #: True when some resources are reserved, so what a role may use depends on it
    has_reservations: bool
    active: bool = True
    #: framework id -> time until which it refuses this agent
    filters: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _Framework:
    roles: tuple[str, ...]
    active: bool = True
    suppressed: set[str] = field(default_factory=set)
    #: agents this framework has filters on (to clear them on revive)
    filtered_agents: set[str] = field(default_factory=set)
    capabilities: frozenset[str] = frozenset()


class Allocator:
    """Hierarchical weighted DRF over roles, then DRF over frameworks in each role."""

    def __init__(self, weights: Mapping[str, float] | None = None,
                 excluded: Iterable[str] = ()) -> None:
        self._pool = Pool()
        self._excluded = frozenset(excluded)
        self._agents: dict[str, _Agent] = {}
        #: agents whose free resources are worth offering, in insertion order
        self._offerable: dict[str, None] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._roles = RoleTree(self._pool, self._excluded)
        # role -> sorter of the frameworks subscribed to exactly that role
        self._framework_sorters: dict[str, DRFSorter] = {}
        self._cursor = 0
        for role, weight in (weights or {}).items():
            self.set_weight(role, weight)

    # ----------------------------------------------------------------- roles
    def set_weight(self, role: str, weight: float) -> None:
        self._roles.set_weight(role, weight)

    def weights(self) -> dict[str, float]:
        return self._roles.weights()

    def _framework_sorter(self, role: str) -> DRFSorter:
        sorter = self._framework_sorters.get(role)
        if sorter is None:
            sorter = DRFSorter(self._excluded, self._pool)
            self._framework_sorters[role] = sorter
            self._roles.add_role(role)
        return sorter

    # ----------------------------------------------------------------- agents
    def add_agent(self, agent_id: str, total: Resources, used: Resources | None = None) -> None:
        """Add an agent; resources already held by tasks are recorded via ``allocate_to``."""
        if agent_id in self._agents:
            raise ValueError(f"agent {agent_id} already added")
        self._agents[agent_id] = _Agent(
            total=total, allocated=Resources.empty(), free=total,
            has_reservations=total.roles() != {"*"},
        )
        self._pool.add(total.scalar_totals(), 1)
        self._refresh(agent_id)

    def remove_agent(self, agent_id: str) -> None:
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        self._offerable.pop(agent_id, None)
        self._pool.add(agent.total.scalar_totals(), -1)
        for framework_id in agent.filters:
            fw = self._frameworks.get(framework_id)
            if fw is not None:
                fw.filtered_agents.discard(agent_id)

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._agents

    def activate_agent(self, agent_id: str, active: bool = True) -> None:
        agent = self._agents.get(agent_id)
        if agent is not None:
            agent.active = active
            self._refresh(agent_id)

    def free(self, agent_id: str) -> Resources:
        agent = self._agents.get(agent_id)
        return agent.free if agent is not None else Resources.empty()

    def _refresh(self, agent_id: str) -> None:
        """Keep the offerable index in step with one agent's free resources."""
        agent = self._agents[agent_id]
        if agent.active and _worth_offering(agent.free):
            self._offerable[agent_id] = None
        else:
            self._offerable.pop(agent_id, None)

    # ----------------------------------------------------------------- frameworks
    def add_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        capabilities: Iterable[str] = (),
        active: bool = True,
    ) -> None:
        if framework_id in self._frameworks:
            self.update_framework(framework_id, roles, capabilities)
            self._frameworks[framework_id].active = active
            return
        fw = _Framework(roles=tuple(roles), active=active, capabilities=frozenset(capabilities))
        self._frameworks[framework_id] = fw
        for role in fw.roles:
            self._framework_sorter(role).add(framework_id)

    def update_framework(
        self, framework_id: str, roles: Iterable[str], capabilities: Iterable[str] = ()
    ) -> None:
        fw = self._frameworks[framework_id]
        new_roles = tuple(roles)
        for role in new_roles:
            if role not in fw.roles:
                self._framework_sorter(role).add(framework_id)
        fw.roles = tuple(dict.fromkeys((*fw.roles, *new_roles)))
        fw.capabilities = frozenset(capabilities)

    def remove_framework(self, framework_id: str) -> None:
        """Forget a framework; its allocations must have been recovered first."""
        fw = self._frameworks.pop(framework_id, None)
        if fw is None:
            return
        for role in fw.roles:
            sorter = self._framework_sorters.get(role)
            if sorter is not None:
                sorter.remove(framework_id)
        for agent_id in fw.filtered_agents:
            agent = self._agents.get(agent_id)
            if agent is not None:
                agent.filters.pop(framework_id, None)

    def has_framework(self, framework_id: str) -> bool:
        return framework_id in self._frameworks

    def activate_framework(self, framework_id: str, active: bool = True) -> None:
        fw = self._frameworks.get(framework_id)
        if fw is not None:
            fw.active = active

    def suppress(self, framework_id: str, roles: Iterable[str] = ()) -> None:
        fw = self._frameworks.get(framework_id)
        if fw is not None:
            fw.suppressed.update(list(roles) or fw.roles)

    def revive(self, framework_id: str, roles: Iterable[str] = ()) -> None:
        """Lift suppression and decline filters (Mesos clears all filters on revive)."""
        fw = self._frameworks.get(framework_id)
        if fw is None:
            return
        fw.suppressed.difference_update(list(roles) or list(fw.roles))
        for agent_id in fw.filtered_agents:
            agent = self._agents.get(agent_id)
            if agent is not None:
                agent.filters.pop(framework_id, None)
        fw.filtered_agents.clear()

    # ----------------------------------------------------------------- accounting
    def allocate_to(
        self, framework_id: str, role: str, agent_id: str, resources: Resources
    ) -> None:
        """Record resources as held by a framework (offers, and tasks at recovery)."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        agent.allocated = agent.allocated + resources
        if agent.free.contains(resources):
            agent.free = agent.free - resources
        elif agent.total.contains(agent.allocated):
            agent.free = agent.total - agent.allocated
        else:  # over-committed (agent shrank under running tasks): nothing is free
            agent.free = Resources.empty()
        self._refresh(agent_id)
        scalars = resources.scalar_totals()
        self._roles.allocated(role, scalars)
        self._framework_sorter(role).allocated(framework_id, scalars)

    def recover(
        self,
        framework_id: str,
        role: str,
        agent_id: str,
        resources: Resources,
        refuse_until: float | None = None,
    ) -> None:
        """Give resources back; with ``refuse_until`` the framework refuses that agent."""
        agent = self._agents.get(agent_id)
        if agent is not None and resources:
            # Never let accounting go negative if a caller recovers twice.
            returned = resources if agent.allocated.contains(resources) else Resources.empty()
            if returned:
                agent.allocated = agent.allocated - returned
                agent.free = agent.free + returned
                self._refresh(agent_id)
                scalars = returned.scalar_totals()
                self._roles.unallocated(role, scalars)
                sorter = self._framework_sorters.get(role)
                if sorter is not None:
                    sorter.unallocated(framework_id, scalars)
        fw = self._frameworks.get(framework_id)
        if fw is not None and agent is not None and refuse_until is not None and resources:
            current = agent.filters.get(framework_id, 0.0)
            agent.filters[framework_id] = max(current, refuse_until)
            fw.filtered_agents.add(agent_id)

    # ----------------------------------------------------------------- allocation
    def allocate(self, now: float) -> list[Allocation]:
        """One allocation round over every agent with something worth offering."""
        result: list[Allocation] = []
        if not self._offerable or not self._frameworks:
            return result
        agent_ids = list(self._offerable)
        start = self._cursor % len(agent_ids)
        self._cursor += 1
        for agent_id in agent_ids[start:] + agent_ids[:start]:
            allocation = self._pick(agent_id, now)
            if allocation is not None:
                result.append(allocation)
                self.allocate_to(
                    allocation.framework_id, allocation.role, agent_id, allocation.resources
                )
        return result

    def _pick(self, agent_id: str, now: float) -> Allocation | None:
        agent = self._agents[agent_id]
        filters = agent.filters
        free = agent.free
        for role in self._roles.iter_sorted():
            if agent.has_reservations:
                offerable = free.allocatable_to(role)
                if not _worth_offering(offerable):
                    continue
            else:
                offerable = free
            sorter = self._framework_sorters.get(role)
            if sorter is None:
                continue
            for framework_id in sorter.iter_sorted():
                if filters:
                    until = filters.get(framework_id)
                    if until is not None and until > now:
                        continue
                fw = self._frameworks[framework_id]
                if not fw.active or role in fw.suppressed:
                    continue
                if filters and framework_id in filters:
                    del filters[framework_id]  # expired
                    fw.filtered_agents.discard(agent_id)
                return Allocation(framework_id, role, agent_id, offerable)
        return None

    # ----------------------------------------------------------------- introspection
    def role_shares(self) -> dict[str, float]:
        return {role: self._roles.share(role) for role in self._roles.roles()}

    def role_allocation(self, role: str) -> dict[str, float]:
        return self._roles.allocation(role)

    def framework_share(self, framework_id: str, role: str) -> float:
        sorter = self._framework_sorters.get(role)
        return sorter.share(framework_id) if sorter is not None else 0.0


def _worth_offering(resources: Resources) -> bool:
    if not resources:
        return False
    return resources.scalar("cpus") >= MIN_CPUS or resources.scalar("mem") >= MIN_MEM
