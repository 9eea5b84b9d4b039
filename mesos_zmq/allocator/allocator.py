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

The order is a policy: every sorter (role tree nodes, each role's frameworks) comes
from one :class:`~mesos_zmq.allocator.sorter.SorterFactory`, DRF by default, or
Mesos's weighted random order (:func:`~mesos_zmq.allocator.sorter.sorter_factory`).
Everything else here (eligibility, reservations, quota, limits) holds whatever the
order, so a policy changes who is served first, never what may be offered.

A framework is eligible for an agent when it is active, subscribed to the role, not
suppressed for it, has no unexpired decline filter for that agent, and, if the agent
has GPUs, declares the GPU_RESOURCES capability (GPUs are scarce: a framework that
cannot use them must not sit on the machines that have them).

Quota (guarantee and limit, counted over a role's subtree) adds a first stage: roles
whose guarantee is unmet get resources up to it, before fair sharing; during fair
sharing, nobody may take the unallocated headroom those guarantees still need, and no
offer takes a role past a limit (offers are trimmed, and the rest of the agent stays
available to others).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mesos_zmq.allocator.roles import RoleTree, ancestors
from mesos_zmq.allocator.sorter import DRFSorter, Pool, Sorter, SorterFactory
from mesos_zmq.errors import ResourceError
from mesos_zmq.resources import Resources

#: Mesos's minimum allocatable resources: an offer smaller than this in every one of
#: these dimensions is not worth making.
MIN_CPUS = 0.01
MIN_MEM = 32.0
#: the framework capability that admits it to agents with GPUs (Mesos's name)
GPU_CAPABILITY = "GPU_RESOURCES"


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
    #: GPUs are scarce: only frameworks that declare GPU_RESOURCES get such agents
    has_gpus: bool = False
    active: bool = True
    #: some entry of another kind than what the agent held was left out of
    #: ``allocated`` (see :meth:`Allocator._hold`): given back, the rest is released
    mixed: bool = False
    #: framework id -> time until which it refuses this agent
    filters: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Quota:
    """A role's guarantee (held for it until used) and limit (never exceeded)."""

    guarantee: Mapping[str, float]
    limit: Mapping[str, float]


@dataclass(slots=True)
class _Framework:
    roles: tuple[str, ...]
    active: bool = True
    suppressed: set[str] = field(default_factory=set)
    #: agents this framework has filters on (to clear them on revive)
    filtered_agents: set[str] = field(default_factory=set)
    capabilities: frozenset[str] = frozenset()


class Allocator:
    """Hierarchical weighted DRF over roles, then DRF over frameworks in each role
    (or another order, given a ``sorter_factory``)."""

    def __init__(self, weights: Mapping[str, float] | None = None,
                 excluded: Iterable[str] = (),
                 min_allocatable: Iterable[Mapping[str, float]] | None = None,
                 sorter_factory: SorterFactory = DRFSorter) -> None:
        """``excluded``: resource names left out of shares (Mesos's
        --fair_sharing_excluded_resource_names). ``min_allocatable``: alternatives, any
        one of which an offer must reach to be worth making (default cpus:0.01 or mem:32).
        ``sorter_factory``: makes every sorter, for roles and for each role's frameworks
        (Mesos's --role_sorter and --framework_sorter, here one policy); DRF by default.
        """
        self._sorter_factory = sorter_factory
        self._min_allocatable = [dict(m) for m in (min_allocatable or DEFAULT_MIN_ALLOCATABLE)]
        #: per-role overrides of the minimum allocatable alternatives
        self._role_min_allocatable: dict[str, list[dict[str, float]]] = {}
        self._pool = Pool()
        self._excluded = frozenset(excluded)
        self._agents: dict[str, _Agent] = {}
        #: agents whose free resources are worth offering, in insertion order
        self._offerable: dict[str, None] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._roles = RoleTree(self._pool, self._excluded, sorter_factory)
        # role -> sorter of the frameworks subscribed to exactly that role
        self._framework_sorters: dict[str, Sorter] = {}
        self._cursor = 0
        self._quotas: dict[str, Quota] = {}
        #: quota roles whose guarantee is not yet met, in the order they were set
        self._unmet: dict[str, None] = {}
        #: role -> roles with frameworks at or below it (kept as roles appear)
        self._subtree: dict[str, list[str]] = {}
        #: scalars allocated (offered or used) over the whole cluster
        self._allocated_total: dict[str, float] = {}
        for role, weight in (weights or {}).items():
            self.set_weight(role, weight)

    # ----------------------------------------------------------------- roles
    def set_weight(self, role: str, weight: float) -> None:
        self._roles.set_weight(role, weight)

    def weights(self) -> dict[str, float]:
        return self._roles.weights()

    def _framework_sorter(self, role: str) -> Sorter:
        sorter = self._framework_sorters.get(role)
        if sorter is None:
            sorter = self._sorter_factory(excluded=self._excluded, pool=self._pool,
                                          role_of=lambda _fw: role)
            self._framework_sorters[role] = sorter
            self._roles.add_role(role)
            for node in self._chain(role):
                self._subtree.setdefault(node, []).append(role)
        return sorter

    # ----------------------------------------------------------------- agents
    def add_agent(self, agent_id: str, total: Resources, used: Resources | None = None) -> None:
        """Add an agent; resources already held by tasks are recorded via ``allocate_to``."""
        self.add_agents([(agent_id, total)])

    def add_agents(self, agents: Iterable[tuple[str, Resources]], active: bool = True) -> None:
        """:meth:`add_agent` for many at once (and :meth:`activate_agent` with
        ``active``), the pool counted once: a new leader adds every agent before it may
        serve, and one pool update per agent was a fifth of a takeover at 10,000 agents.
        Agents of one shape (one parsed object) share what is derived from it."""
        # counted by shape: never summed across agents, where a custom name may be an
        # amount on one and ranges on another (the pool counts amounts only)
        added: dict[int, tuple[Resources, int]] = {}
        facts: dict[int, tuple[bool, bool]] = {}
        try:
            for agent_id, total in agents:
                if agent_id in self._agents:
                    raise ValueError(f"agent {agent_id} already added")
                known = facts.get(id(total))
                if known is None:
                    known = facts[id(total)] = (total.roles() != {"*"},
                                                total.scalar("gpus") > 0)
                self._agents[agent_id] = _Agent(
                    total=total, allocated=Resources.empty(), free=total,
                    has_reservations=known[0], has_gpus=known[1], active=active)
                shape = added.get(id(total))
                added[id(total)] = (total, 1 if shape is None else shape[1] + 1)
                self._refresh(agent_id)
        finally:  # what was added is counted, even when a later agent was refused
            for total, count in added.values():
                self._pool.add_resources(total, count)

    def remove_agent(self, agent_id: str) -> None:
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        self._offerable.pop(agent_id, None)
        self._pool.add_resources(agent.total, -1)
        for framework_id in agent.filters:
            fw = self._frameworks.get(framework_id)
            if fw is not None:
                fw.filtered_agents.discard(agent_id)

    def convert(self, agent_id: str, old: Resources, new: Resources,
                held: bool = False) -> None:
        """Swap ``old`` for ``new`` (same amounts, other roles) on an agent.

        For reservations: with ``held`` the resources are part of an offer (allocated),
        otherwise they are free. Shares do not change, only who may be offered what.
        """
        agent = self._agents[agent_id]
        self._pool.add_resources(agent.total, -1)
        agent.total = agent.total - old + new
        self._pool.add_resources(agent.total, 1)
        if held:
            agent.allocated = agent.allocated - old + new
        agent.free = agent.total.subtract_available(agent.allocated)
        agent.has_reservations = agent.total.roles() != {"*"}
        self._refresh(agent_id)

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

    def held(self, agent_id: str) -> Resources:
        """What of an agent is offered or used by tasks (an operator's and a test's
        check that the account matches what runs)."""
        agent = self._agents.get(agent_id)
        return agent.allocated if agent is not None else Resources.empty()

    def _refresh(self, agent_id: str) -> None:
        """Keep the offerable index in step with one agent's free resources."""
        agent = self._agents[agent_id]
        if agent.active and self._worth_offering(agent.free):
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
            self.activate_framework(framework_id, active)
            return
        fw = _Framework(roles=tuple(roles), active=active, capabilities=frozenset(capabilities))
        self._frameworks[framework_id] = fw
        for role in fw.roles:
            self._framework_sorter(role).add(framework_id)
        self._sync_visibility(framework_id, fw)

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
                self._forget_role_if_unused(role)
        for agent_id in fw.filtered_agents:
            agent = self._agents.get(agent_id)
            if agent is not None:
                agent.filters.pop(framework_id, None)

    def _forget_role_if_unused(self, role: str) -> None:
        """A role no framework uses any more, with nothing allocated and no quota, is
        dropped (its weight is kept for when it comes back)."""
        sorter = self._framework_sorters.get(role)
        if sorter is None or len(sorter) or role in self._quotas:
            return
        if not self._roles.remove_role(role):
            return
        del self._framework_sorters[role]
        for node in self._chain(role):
            below = self._subtree.get(node)
            if below is not None and role in below:
                below.remove(role)
                if not below:
                    del self._subtree[node]

    def activate_framework(self, framework_id: str, active: bool = True) -> None:
        fw = self._frameworks.get(framework_id)
        if fw is not None:
            fw.active = active
            self._sync_visibility(framework_id, fw)

    def _sync_visibility(self, framework_id: str, fw: _Framework) -> None:
        """Only frameworks that may receive offers in a role stay in its order."""
        for role in fw.roles:
            sorter = self._framework_sorters.get(role)
            if sorter is not None:
                sorter.hide(framework_id, not fw.active or role in fw.suppressed)

    def suppress(self, framework_id: str, roles: Iterable[str] = ()) -> None:
        fw = self._frameworks.get(framework_id)
        if fw is not None:
            fw.suppressed.update(list(roles) or fw.roles)
            self._sync_visibility(framework_id, fw)

    def revive(self, framework_id: str, roles: Iterable[str] = ()) -> None:
        """Lift suppression and decline filters (Mesos clears all filters on revive)."""
        fw = self._frameworks.get(framework_id)
        if fw is None:
            return
        fw.suppressed.difference_update(list(roles) or list(fw.roles))
        self._sync_visibility(framework_id, fw)
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
        if self._hold(agent_id, resources):
            self._count_held(framework_id, role, resources.scalar_amounts())

    def allocate_many(self, held: Iterable[tuple[str, str, str, Resources]],
                      mixed: Iterable[str] = (),
                      shares: Mapping[tuple[str, str, str], Mapping[str, float]] | None = None
                      ) -> None:
        """:meth:`allocate_to` for many (framework, role, agent, resources) at once, as
        a new leader records its running tasks: each agent's share held as one by one,
        but the shares counted once per framework and role (the sorters' and role
        tree's updates per agent were a third of a takeover at 100,000 tasks). Sums of
        scalars are exact (thousandths), so the shares come out as one by one.
        ``mixed``: agents some of whose holdings were summed leaving out an entry of
        another kind (see :meth:`_hold`); ``shares``: for such a (framework, role,
        agent), the scalars its tasks hold one by one, counted in the shares as
        :meth:`allocate_to` counts them (and :meth:`recover` un-counts them), rather
        than the scalars of the sum that left an entry out."""
        per_agent: dict[str, list[tuple[Resources, int]]] = {}
        grouped: dict[tuple[str, str], list[tuple[Resources, int]]] = {}
        exact: dict[tuple[str, str], dict[str, float]] = {}
        for framework_id, role, agent_id, resources in held:
            if agent_id in self._agents:
                per_agent.setdefault(agent_id, []).append((resources, 1))
                given = None if shares is None else shares.get((framework_id, role, agent_id))
                if given is None:
                    grouped.setdefault((framework_id, role), []).append((resources, 1))
                else:
                    _add(exact.setdefault((framework_id, role), {}), given, 1)
        for agent_id, parts in per_agent.items():  # an offer and tasks: held at once
            if len(parts) == 1:
                self._hold(agent_id, parts[0][0])
                continue
            try:
                self._hold(agent_id, Resources.total(parts))
            except ResourceError:  # (see _hold)
                self._agents[agent_id].mixed = True
                self._hold(agent_id, Resources.total(parts, tolerant=True))
        for agent_id in mixed:
            if agent_id in self._agents:
                self._agents[agent_id].mixed = True
        for key in exact.keys() - grouped.keys():
            grouped[key] = []
        for (framework_id, role), parts in grouped.items():
            scalars = Resources.scalar_sum(parts)
            if (framework_id, role) in exact:
                _add(scalars, exact[(framework_id, role)], 1)
            self._count_held(framework_id, role, scalars)

    def _hold(self, agent_id: str, resources: Resources) -> bool:
        """Take ``resources`` out of an agent's free ones; False for an unknown agent."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return False
        try:
            agent.allocated = agent.allocated + resources
        except ResourceError:
            # What an agent holds is of its total's kinds (the master holds agents and
            # tasks to that where they come in), but a log written before that rule
            # must still replay: an entry of another kind is left out of the account.
            agent.allocated = Resources.total(((agent.allocated, 1), (resources, 1)),
                                              tolerant=True)
            agent.mixed = True
        if resources == agent.free:  # the common case: the whole agent was offered
            agent.free = Resources.empty()
        else:
            agent.free = agent.total.subtract_available(agent.allocated)
        self._refresh(agent_id)
        return True

    def _count_held(self, framework_id: str, role: str, scalars: Mapping[str, float]) -> None:
        """Count held scalars in the role's and the framework's shares."""
        self._roles.allocated(role, scalars)
        self._framework_sorter(role).allocated(framework_id, scalars)
        _add(self._allocated_total, scalars, 1)
        if self._quotas:
            self._update_unmet(role)

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
        # Never let accounting go negative if a caller recovers twice.
        held = None if agent is None or not resources else _releasable(agent, resources)
        if agent is not None and held is not None:
            agent.allocated = agent.allocated.minus_contained(held)
            # Derived, never accumulated: an over-committed agent (allocations
            # beyond its total) must not gain free resources it does not have.
            agent.free = agent.total.subtract_available(agent.allocated)
            if agent_id not in self._offerable:
                # (one already offerable stays so: its free resources only grew)
                self._refresh(agent_id)
            scalars = resources.scalar_amounts()
            if scalars:
                self._roles.unallocated(role, scalars)
                sorter = self._framework_sorters.get(role)
                if sorter is not None:
                    sorter.unallocated(framework_id, scalars)
                _add(self._allocated_total, scalars, -1)
            if self._quotas:
                self._update_unmet(role)
        if refuse_until is not None and resources:
            self.add_filter(framework_id, agent_id, refuse_until)

    def add_filter(self, framework_id: str, agent_id: str, until: float) -> None:
        """The framework refuses this agent until ``until`` (a decline filter)."""
        fw = self._frameworks.get(framework_id)
        agent = self._agents.get(agent_id)
        if fw is not None and agent is not None:
            agent.filters[framework_id] = max(agent.filters.get(framework_id, 0.0), until)
            fw.filtered_agents.add(agent_id)

    # ----------------------------------------------------------------- allocation
    def allocate(self, now: float) -> list[Allocation]:
        """One allocation round: quota guarantees first, then fair sharing."""
        result: list[Allocation] = []
        if not self._offerable or not self._frameworks:
            return result
        agent_ids = list(self._offerable)
        start = self._cursor % len(agent_ids)
        self._cursor += 1
        order = agent_ids[start:] + agent_ids[:start]
        if self._unmet:
            for agent_id in order:
                self._allocate_guarantees(agent_id, now, result)
        for agent_id in order:
            # An agent may be split when a cap (limit, headroom) trims an offer.
            while agent_id in self._offerable:
                allocation = self._pick(agent_id, now)
                if allocation is None:
                    break
                result.append(allocation)
                self.allocate_to(
                    allocation.framework_id, allocation.role, agent_id, allocation.resources
                )
        return result

    def _offerable_to(self, agent: _Agent, role: str) -> Resources:
        return agent.free.allocatable_to(role) if agent.has_reservations else agent.free

    def _pick(self, agent_id: str, now: float) -> Allocation | None:
        """Stage 2: the first eligible framework in the sorters' order (under DRF, the
        least served) gets what it may use here."""
        agent = self._agents[agent_id]
        quotas = bool(self._quotas)
        for role in self._roles.iter_sorted():
            offerable = self._offerable_to(agent, role)
            if quotas:
                caps = self._fair_share_caps(role)
                if caps:
                    offerable = offerable.cap_scalars(caps)
            if not self._worth_offering(offerable, role):
                continue
            framework_id = self._eligible_framework(role, agent_id, agent, now)
            if framework_id is not None:
                return Allocation(framework_id, role, agent_id, offerable)
        return None

    def _eligible_framework(self, role: str, agent_id: str, agent: _Agent,
                            now: float) -> str | None:
        sorter = self._framework_sorters.get(role)
        if sorter is None:
            return None
        filters = agent.filters
        for framework_id in sorter.iter_sorted():
            if filters:
                until = filters.get(framework_id)
                if until is not None and until > now:
                    continue
            fw = self._frameworks[framework_id]
            if not fw.active or role in fw.suppressed:
                continue
            if agent.has_gpus and GPU_CAPABILITY not in fw.capabilities:
                continue
            if filters and framework_id in filters:
                del filters[framework_id]  # expired
                fw.filtered_agents.discard(agent_id)
            return framework_id
        return None

    # ----------------------------------------------------------------- quota
    def set_quota(self, role: str, guarantee: Mapping[str, float],
                  limit: Mapping[str, float] | None = None) -> None:
        """Guarantee (held back for the role until used) and limit (never exceeded).

        Both count over the role's whole subtree, like its dominant share does.
        """
        limit = dict(limit or {})
        for name, amount in guarantee.items():
            if amount < 0 or (name in limit and limit[name] < amount):
                raise ValueError(
                    f"quota of role {role!r}: guarantee {name}:{amount:g} must be "
                    f"non-negative and within the limit"
                )
        self._quotas[role] = Quota(dict(guarantee), limit)
        self._update_unmet(role)

    def remove_quota(self, role: str) -> None:
        self._quotas.pop(role, None)
        self._unmet.pop(role, None)

    def quotas(self) -> dict[str, Quota]:
        return dict(self._quotas)

    def _chain(self, role: str) -> list[str]:
        return [*ancestors(role), role] if role != "*" else [role]

    def _update_unmet(self, role: str) -> None:
        for node in self._chain(role):
            quota = self._quotas.get(node)
            if quota is None:
                continue
            if self._unmet_amounts(node, quota):
                self._unmet[node] = None
            else:
                self._unmet.pop(node, None)

    def _unmet_amounts(self, role: str, quota: Quota) -> dict[str, float]:
        have = self._roles.allocation(role)
        return {name: round(amount - have.get(name, 0.0), 3)
                for name, amount in quota.guarantee.items()
                if amount - have.get(name, 0.0) > 0.0005}

    def _limit_caps(self, role: str) -> dict[str, float]:
        """How much more the role may take before some limit on its chain is hit."""
        caps: dict[str, float] = {}
        for node in self._chain(role):
            quota = self._quotas.get(node)
            if quota is None or not quota.limit:
                continue
            have = self._roles.allocation(node)
            for name, limit in quota.limit.items():
                room = max(0.0, limit - have.get(name, 0.0))
                caps[name] = min(caps.get(name, room), room)
        return caps

    def _fair_share_caps(self, role: str) -> dict[str, float]:
        """Limits, plus: never eat into headroom other roles' guarantees still need."""
        caps = self._limit_caps(role)
        if not self._unmet:
            return caps
        own = set(self._chain(role))
        needed: dict[str, float] = {}
        for other in self._unmet:
            if other in own or any(a in self._quotas for a in ancestors(other)):
                continue  # its own guarantee, or counted in an ancestor's
            for name, amount in self._unmet_amounts(other, self._quotas[other]).items():
                needed[name] = needed.get(name, 0.0) + amount
        for name, amount in needed.items():
            room = max(0.0, self._pool.totals.get(name, 0.0)
                       - self._allocated_total.get(name, 0.0) - amount)
            caps[name] = min(caps.get(name, room), room)
        return caps

    def _subtree_roles(self, role: str) -> list[str]:
        return self._subtree.get(role, [])

    def _allocate_guarantees(self, agent_id: str, now: float,
                             result: list[Allocation]) -> None:
        """Stage 1: give this agent to roles whose guarantee is unmet, up to it."""
        agent = self._agents[agent_id]
        for quota_role in list(self._unmet):
            if agent_id not in self._offerable:
                return
            quota = self._quotas[quota_role]
            for role in self._subtree_roles(quota_role):
                unmet = self._unmet_amounts(quota_role, quota)
                if not unmet:
                    break
                caps = self._limit_caps(role)
                for name, amount in unmet.items():
                    caps[name] = min(caps.get(name, amount), amount)
                # Up to the guarantee in the names it sets; other scalars wait for the
                # fair-share stage; ports and other non-scalars come along.
                offerable = self._offerable_to(agent, role).cap_scalars(caps)
                offerable = offerable.without_names(
                    n for n in offerable.scalar_amounts() if n not in unmet)
                if not self._worth_offering(offerable, role):
                    continue
                framework_id = self._eligible_framework(role, agent_id, agent, now)
                if framework_id is None:
                    continue
                result.append(Allocation(framework_id, role, agent_id, offerable))
                self.allocate_to(framework_id, role, agent_id, offerable)
                if agent_id not in self._offerable:
                    return

    # ----------------------------------------------------------------- introspection
    def set_min_allocatable(self, role: str,
                            alternatives: Iterable[Mapping[str, float]] | None) -> None:
        """A role's own minimum offer size (None: back to the cluster-wide default)."""
        if alternatives is None:
            self._role_min_allocatable.pop(role, None)
        else:
            self._role_min_allocatable[role] = [dict(a) for a in alternatives]

    def _worth_offering(self, resources: Resources, role: str | None = None) -> bool:
        if not resources:
            return False
        alternatives = self._min_allocatable
        if role is not None and self._role_min_allocatable:
            alternatives = self._role_min_allocatable.get(role, alternatives)
        totals = resources.scalar_amounts()
        return any(all(totals.get(name, 0.0) >= amount for name, amount in alt.items())
                   for alt in alternatives)

    def role_shares(self) -> dict[str, float]:
        return {role: self._roles.share(role) for role in self._roles.roles()}

    def role_allocation(self, role: str) -> dict[str, float]:
        return self._roles.allocation(role)

    def framework_share(self, framework_id: str, role: str) -> float:
        sorter = self._framework_sorters.get(role)
        return sorter.share(framework_id) if sorter is not None else 0.0


def _add(target: dict[str, float], scalars: Mapping[str, float], sign: int) -> None:
    for name, amount in scalars.items():
        target[name] = round(target.get(name, 0.0) + sign * amount, 3)


DEFAULT_MIN_ALLOCATABLE = ({"cpus": MIN_CPUS}, {"mem": MIN_MEM})


def parse_min_allocatable(text: str) -> list[dict[str, float]]:
    """Mesos's form ``cpus:0.01|mem:32``: alternatives separated by ``|``."""
    alternatives = []
    for part in filter(None, (p.strip() for p in text.split("|"))):
        amounts = Resources.parse(part).scalar_totals()
        if not amounts:
            raise ValueError(f"minimum allocatable {part!r} names no scalar resource")
        alternatives.append(amounts)
    if not alternatives:
        raise ValueError("minimum allocatable resources must name at least one alternative")
    return alternatives


def _releasable(agent: _Agent, resources: Resources) -> Resources | None:
    """What of ``resources`` to take out of an agent's ``allocated`` as they are given
    back, or None (given back twice: nothing).

    All of them, as a rule. But where :meth:`Allocator._hold` left an entry of another
    kind out of the account (a log written before the master refused those must
    replay), such a task's other resources are still released as it ends (else they
    stayed held for good), less the names not held as it holds them.
    """
    allocated = agent.allocated
    if allocated.contains(resources):
        return resources
    if not agent.mixed:
        return None
    kinds = {name: kind for name, _, kind, _ in allocated.entries()}
    odd = {name for name, _, kind, _ in resources.entries() if kinds.get(name) != kind}
    rest = resources.without_names(odd)
    return rest if odd and rest and allocated.contains(rest) else None
