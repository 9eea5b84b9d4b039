"""The allocator: agents' free resources in, offers (allocations) out.

Theory of operation
-------------------
The allocator receives lifecycle events only (agents and frameworks come and go,
resources are recovered with an optional filter, frameworks suppress and revive) and
produces :class:`Allocation` records from :meth:`Allocator.allocate`. It does not know
about sockets, offers ids or the log: the master turns allocations into offers.

Everything offered counts as allocated until the master recovers it (declined, left
over after an accept, or freed when a task ends), which is what keeps one resource from
being offered twice at once.

Each round visits agents in a rotating order; for each agent with free resources it
walks roles by ascending weighted DRF share and, inside a role, frameworks by ascending
share, and offers everything the first eligible framework may use on that agent
(unreserved resources plus those reserved for the role). Shares are updated as the
round goes, so a large round still spreads agents fairly.

A framework is eligible for an agent when it is active, subscribed to the role, not
suppressed for it, and has no unexpired decline filter for that agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mesos_zmq.allocator.sorter import DRFSorter
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
    active: bool = True

    @property
    def free(self) -> Resources:
        return self.total - self.allocated


@dataclass(slots=True)
class _Framework:
    roles: tuple[str, ...]
    active: bool = True
    suppressed: set[str] = field(default_factory=set)
    # agent_id -> time until which this framework refuses that agent
    filters: dict[str, float] = field(default_factory=dict)
    capabilities: frozenset[str] = frozenset()


class Allocator:
    """Weighted DRF over roles, then over frameworks inside each role."""

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self._agents: dict[str, _Agent] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._roles = DRFSorter()
        # role -> sorter of the frameworks in that role
        self._framework_sorters: dict[str, DRFSorter] = {}
        self._weights: dict[str, float] = {}
        self._cursor = 0
        for role, weight in (weights or {}).items():
            self.set_weight(role, weight)

    # ----------------------------------------------------------------- roles
    def set_weight(self, role: str, weight: float) -> None:
        self._roles.set_weight(role, weight)
        self._weights[role] = weight

    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    def _framework_sorter(self, role: str) -> DRFSorter:
        sorter = self._framework_sorters.get(role)
        if sorter is None:
            sorter = DRFSorter()
            sorter.add_total(self._roles.total())
            self._framework_sorters[role] = sorter
            self._roles.add(role)
        return sorter

    # ----------------------------------------------------------------- agents
    def add_agent(self, agent_id: str, total: Resources, used: Resources | None = None) -> None:
        """Add an agent; ``used`` is already held by tasks (recorded via ``allocate_to``)."""
        if agent_id in self._agents:
            raise ValueError(f"agent {agent_id} already added")
        self._agents[agent_id] = _Agent(total=total, allocated=Resources.empty())
        scalars = total.scalar_totals()
        self._roles.add_total(scalars)
        for sorter in self._framework_sorters.values():
            sorter.add_total(scalars)

    def remove_agent(self, agent_id: str) -> None:
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        scalars = agent.total.scalar_totals()
        self._roles.remove_total(scalars)
        for sorter in self._framework_sorters.values():
            sorter.remove_total(scalars)

    def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._agents

    def activate_agent(self, agent_id: str, active: bool = True) -> None:
        agent = self._agents.get(agent_id)
        if agent is not None:
            agent.active = active

    def free(self, agent_id: str) -> Resources:
        agent = self._agents.get(agent_id)
        return agent.free if agent is not None else Resources.empty()

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
        if fw is not None:
            targets = list(roles) or list(fw.roles)
            fw.suppressed.difference_update(targets)
            fw.filters.clear()

    # ----------------------------------------------------------------- accounting
    def allocate_to(
        self, framework_id: str, role: str, agent_id: str, resources: Resources
    ) -> None:
        """Record resources as held by a framework (used at recovery for running tasks)."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        agent.allocated = agent.allocated + resources
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
            agent.allocated = agent.allocated - returned
            scalars = returned.scalar_totals()
            self._roles.unallocated(role, scalars)
            sorter = self._framework_sorters.get(role)
            if sorter is not None:
                sorter.unallocated(framework_id, scalars)
        fw = self._frameworks.get(framework_id)
        if fw is not None and refuse_until is not None and resources:
            current = fw.filters.get(agent_id, 0.0)
            fw.filters[agent_id] = max(current, refuse_until)

    # ----------------------------------------------------------------- allocation
    def allocate(self, now: float) -> list[Allocation]:
        """One allocation round over every agent with free resources."""
        result: list[Allocation] = []
        agent_ids = list(self._agents)
        if not agent_ids or not self._frameworks:
            return result
        start = self._cursor % len(agent_ids)
        self._cursor += 1
        for agent_id in agent_ids[start:] + agent_ids[:start]:
            agent = self._agents[agent_id]
            if not agent.active:
                continue
            free = agent.free
            if not _worth_offering(free):
                continue
            allocation = self._pick(agent_id, free, now)
            if allocation is not None:
                result.append(allocation)
                self.allocate_to(
                    allocation.framework_id, allocation.role, agent_id, allocation.resources
                )
        return result

    def _pick(self, agent_id: str, free: Resources, now: float) -> Allocation | None:
        for role in self._roles.sort():
            offerable = free.allocatable_to(role)
            if not _worth_offering(offerable):
                continue
            sorter = self._framework_sorters.get(role)
            if sorter is None:
                continue
            for framework_id in sorter.sort():
                fw = self._frameworks.get(framework_id)
                if fw is None or not fw.active or role in fw.suppressed:
                    continue
                until = fw.filters.get(agent_id)
                if until is not None:
                    if until > now:
                        continue
                    del fw.filters[agent_id]
                return Allocation(framework_id, role, agent_id, offerable)
        return None

    # ----------------------------------------------------------------- introspection
    def role_shares(self) -> dict[str, float]:
        return {role: self._roles.share(role) for role in self._roles.clients()}

    def role_allocation(self, role: str) -> dict[str, float]:
        return self._roles.allocation(role)

    def framework_share(self, framework_id: str, role: str) -> float:
        sorter = self._framework_sorters.get(role)
        return sorter.share(framework_id) if sorter is not None else 0.0


def _worth_offering(resources: Resources) -> bool:
    if not resources:
        return False
    return resources.scalar("cpus") >= MIN_CPUS or resources.scalar("mem") >= MIN_MEM
