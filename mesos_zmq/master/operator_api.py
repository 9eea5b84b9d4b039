"""Operator requests: state, task pages, weights, quota, reservations, kills, files,
drains.

Handlers of the master core seen as a :class:`~mesos_zmq.master.context.MasterContext`.
Each takes the core, the sender, the message, its request id and the time; like the
core, they are pure: effects go through the core's commit/send. Drains are in
:mod:`~mesos_zmq.master.task_book`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import structlog

from mesos_zmq.errors import ResourceError
from mesos_zmq.master import access, liveness, task_book
from mesos_zmq.master.records import (
    AgentDraining,
    AgentReactivated,
    QuotaRemoved,
    QuotaSet,
    WeightsSet,
)
from mesos_zmq.master.runtime import MAX_READ_BYTES_IN_FLIGHT, MAX_READ_LENGTH, PendingRead
from mesos_zmq.master.validation import (
    MAX_KILL_GRACE,
    check_weights,
    quota_amounts,
    reservation_problem,
)
from mesos_zmq.master.views import TASK_ORDERS, TASK_SETS, describe_cluster, task_page
from mesos_zmq.protocol import (
    MAX_TASKS_PAGE,
    DrainAgent,
    GetState,
    GetTasks,
    OperatorKill,
    OperatorReply,
    OperatorTeardown,
    ReactivateAgent,
    ReadFile,
    RemoveQuota,
    ReserveResources,
    SetQuota,
    SetWeights,
    State,
    Tasks,
    UnreserveResources,
)
from mesos_zmq.resources import Resources, validate_role

if TYPE_CHECKING:
    from mesos_zmq.master.context import MasterContext
    from mesos_zmq.master.state import TaskRecord

log = structlog.get_logger()


def shows_of(core: MasterContext) -> Callable[[str, str], bool]:
    """What the sender may see: the ACLs' view_frameworks and view_tasks, asked of the
    principal that owns each framework."""
    def shows(action: str, framework_id: str) -> bool:
        return access.may(core, action, access.framework_principal(core, framework_id))

    return shows


def get_state(core: MasterContext, peer: bytes, msg: GetState, rid: str, now: float) -> None:
    limit = msg.tasks_limit
    if limit is not None and not 0 <= limit <= MAX_TASKS_PAGE:
        core.error(peer, "invalid", f"get_state refused: tasks_limit must be within "
                   f"0..{MAX_TASKS_PAGE}, got {limit} (page through more tasks with "
                   "get_tasks)", rid)
        return
    if core.defer_read(peer, msg, rid):
        return  # built by the shell: from its read cache, or by a forked child
    core.send(peer, State(state=describe_cluster(core, now, shows_of(core), limit)), rid)


def get_tasks(core: MasterContext, peer: bytes, msg: GetTasks, rid: str, now: float) -> None:
    """A page of the task listing (Mesos's /tasks), with the listing's total; what the
    sender may not see is left out of both, as from ``state``."""
    problem = task_page_problem(msg)
    if problem is not None:
        core.error(peer, "invalid", f"get_tasks refused: {problem}", rid)
        return
    if core.defer_read(peer, msg, rid):
        return  # a page is cheap, but finding it walks every task
    # as access.may: without a principal or ACLs, everything shows (and is not asked
    # task by task)
    unrestricted = core.principal is None or core.config.acls is None
    tasks, total = task_page(core, None if unrestricted else shows_of(core), limit=msg.limit,
                             offset=msg.offset, order=msg.order,
                             framework_id=msg.framework_id, which=msg.which)
    core.send(peer, Tasks(tasks=tasks, total=total), rid)


def task_page_problem(msg: GetTasks) -> str | None:
    """Why a page request cannot be answered as asked, or None."""
    if not 0 <= msg.limit <= MAX_TASKS_PAGE:
        return f"limit must be within 0..{MAX_TASKS_PAGE}, got {msg.limit}"
    if msg.offset < 0:
        return f"offset must be at least 0, got {msg.offset}"
    if msg.order not in TASK_ORDERS:
        return f"order must be one of {', '.join(TASK_ORDERS)}, not {msg.order[:20]!r}"
    if msg.which not in TASK_SETS:
        return f"which must be one of {', '.join(TASK_SETS)}, not {msg.which[:20]!r}"
    return None


def set_weights(core: MasterContext, peer: bytes, msg: SetWeights, rid: str, now: float) -> None:
    problem = check_weights(msg.weights)
    if problem is not None:
        core.error(peer, "invalid", f"weights refused: {problem}", rid)
        return
    if not all(access.authorized(core, "update_weights", role, peer, rid)
               for role in sorted(msg.weights)):
        return
    core.commit(WeightsSet(weights=dict(msg.weights)))
    for role, weight in msg.weights.items():
        core.allocator.set_weight(role, weight)
    core.request_allocation()
    shown = ", ".join(f"{r}={w:g}" for r, w in sorted(msg.weights.items()))
    core.send(peer, OperatorReply(message=f"weights set: {shown}"), rid)


def set_quota(core: MasterContext, peer: bytes, msg: SetQuota, rid: str, now: float) -> None:
    if not access.authorized(core, "update_quotas", msg.role, peer, rid):
        return
    try:
        validate_role(msg.role)
        if msg.role == "*":
            raise ValueError("the unreserved role '*' cannot have a quota")
        guarantee = quota_amounts(msg.guarantee, "guarantee")
        limit = quota_amounts(msg.limit, "limit")
        if not msg.force:
            problem = beyond_capacity(core, msg.role, guarantee)
            if problem is not None:
                raise ValueError(problem)
        core.allocator.set_quota(msg.role, guarantee, limit)
    except (ValueError, ResourceError) as exc:
        core.error(peer, "invalid", f"quota refused: {exc}", rid)
        return
    core.commit(QuotaSet(role=msg.role, guarantee=msg.guarantee, limit=msg.limit))
    core.request_allocation()
    core.send(peer, OperatorReply(message=f"quota of role {msg.role} set"), rid)


def beyond_capacity(core: MasterContext, role: str, guarantee: dict[str, float]) -> str | None:
    """Why the cluster cannot satisfy the guarantees with ``role``'s new one, or None.

    As Mesos's capacity check: the guarantees of the top-most roles with quota must fit
    in the total resources of the registered agents, each counted as its own guarantee
    or its sub-roles' together, whichever is more (a sub-role's guarantee is part of
    its ancestor's, but may exceed it). A guarantee held for resources that do not exist would hold
    back everything else that is free, and starve every other framework."""
    guarantees = {r: quota_amounts(g, "guarantee") for r, (g, _) in core.state.quotas.items()}
    guarantees[role] = guarantee

    def parent_with_quota(r: str) -> str | None:
        parts = r.split("/")
        for cut in range(len(parts) - 1, 0, -1):
            if (up := "/".join(parts[:cut])) in guarantees:
                return up
        return None

    # What each role holds back: its own guarantee, or its sub-roles' together if more
    # (nothing stops a sub-role from asking more than its parent). Deepest roles first,
    # so that a role's sub-roles are known when it is.
    below: dict[str, dict[str, float]] = {}  # role -> its nearest quota sub-roles, summed
    asked: dict[str, float] = {}
    for r in sorted(guarantees, key=lambda r: -r.count("/")):
        own, under = guarantees[r], below.get(r, {})
        held = {n: max(own.get(n, 0.0), under.get(n, 0.0)) for n in set(own) | set(under)}
        up = parent_with_quota(r)
        into = asked if up is None else below.setdefault(up, {})
        for name, amount in held.items():
            into[name] = into.get(name, 0.0) + amount
    # summed by name, agent by agent: agents may name one resource in two kinds
    # (``foo:5`` and ``foo:[1-5]``), which Resources cannot add
    have: dict[str, float] = {}
    for agent in core.state.agents.values():
        try:
            scalars = Resources.parse(agent.resources).scalar_totals()
        except ResourceError:
            continue
        for name, amount in scalars.items():
            have[name] = have.get(name, 0.0) + amount
    short = [name for name, amount in sorted(asked.items())
             if amount > have.get(name, 0.0) + 1e-9]
    if not short:
        return None
    need = ";".join(f"{n}:{asked[n]:g}" for n in short)
    exist = ";".join(f"{n}:{have.get(n, 0.0):g}" for n in short)
    return (f"the guarantees of all roles would need {need} but the cluster's "
            f"{len(core.state.agents)} agents have {exist} in total; a guarantee the "
            "cluster cannot satisfy holds back what other roles could use (use --force "
            "to set it anyway, e.g. before the agents join)")


def remove_quota(core: MasterContext, peer: bytes, msg: RemoveQuota, rid: str, now: float) -> None:
    if not access.authorized(core, "update_quotas", msg.role, peer, rid):
        return
    if msg.role not in core.state.quotas:
        core.error(peer, "invalid", f"role {msg.role[:64]!r} has no quota", rid)
        return
    core.commit(QuotaRemoved(role=msg.role))
    core.allocator.remove_quota(msg.role)
    core.request_allocation()
    core.send(peer, OperatorReply(message=f"quota of role {msg.role} removed"), rid)


def reserve(core: MasterContext, peer: bytes, msg: ReserveResources | UnreserveResources, rid: str,
                now: float) -> None:
    reserve = isinstance(msg, ReserveResources)
    what = "reservation" if reserve else "unreservation"
    if msg.agent_id not in core.state.agents or not core.allocator.has_agent(msg.agent_id):
        core.error(peer, "invalid", f"{what} refused: no agent {msg.agent_id[:64]!r}", rid)
        return
    try:
        res = Resources.from_wire(msg.resources)
    except ResourceError as exc:
        core.error(peer, "invalid", f"{what} refused: {exc}", rid)
        return
    action = "reserve_resources" if reserve else "unreserve_resources"
    if not all(access.authorized(core, action, role, peer, rid)
               for role in sorted(res.roles() - {"*"})):
        return
    problem = reservation_problem(res, None)
    dynamic = core.dynamic_reservations(msg.agent_id)
    if problem is None and not reserve and not dynamic.contains(res):
        problem = f"{res} is not dynamically reserved on this agent"
    old, new = (res.flatten(), res) if reserve else (res, res.flatten())
    if problem is None and not core.allocator.free(msg.agent_id).contains(old):
        problem = _more_than_it_has(core, msg.agent_id, old) or (
            f"{old} is not free on agent {msg.agent_id} (offered or in use)")
    if problem is not None:
        core.error(peer, "invalid", f"{what} refused: {problem}", rid)
        return
    core.allocator.convert(msg.agent_id, old, new)
    core.set_reservations(msg.agent_id, old, new, now)
    core.request_allocation()
    done = "reserved" if reserve else "unreserved"
    core.send(peer, OperatorReply(message=f"{done} {res} on agent {msg.agent_id}"), rid)


def _more_than_it_has(core: MasterContext, agent_id: str, asked: Resources) -> str | None:
    """Say so when a request exceeds the agent's whole size, not just what is free."""
    try:
        has = Resources.parse(core.state.agents[agent_id].resources).scalar_totals()
    except ResourceError:
        return None
    over = [(name, amount) for name, amount in sorted(asked.scalar_totals().items())
            if amount > has.get(name, 0.0) + 1e-9]
    if not over:
        return None
    return ("more than the agent has: " + ", ".join(
        f"{name}:{amount:g} asked, agent {agent_id} has {name}:{has.get(name, 0.0):g} in all"
        for name, amount in over))


def drain_agent(core: MasterContext, peer: bytes, msg: DrainAgent, rid: str, now: float) -> None:
    """Mesos's DRAIN_AGENT: no offers, kill every task, DRAINED when all ended."""
    if msg.agent_id not in core.state.agents:
        core.error(peer, "invalid", f"no agent with id {msg.agent_id[:64]!r}", rid)
        return
    if msg.grace is not None and not 0 <= msg.grace <= MAX_KILL_GRACE:
        core.error(peer, "invalid", "grace must be within 0..3600 seconds", rid)
        return
    hostname = core.state.agents[msg.agent_id].hostname
    if not access.authorized(core, "drain_agents", hostname, peer, rid):
        return
    core.commit(AgentDraining(agent_id=msg.agent_id, grace=msg.grace))
    task_book.drain(core, msg.agent_id, now)
    tasks = len(core.state.active_tasks_on(msg.agent_id))
    core.send(peer, OperatorReply(
        message=f"agent {msg.agent_id} draining: {tasks} task(s) being killed"), rid)


def reactivate_agent(core: MasterContext, peer: bytes, msg: ReactivateAgent, rid: str,
                         now: float) -> None:
    if msg.agent_id not in core.state.draining:
        core.error(peer, "invalid", f"agent {msg.agent_id[:64]!r} is not draining", rid)
        return
    agent = core.state.agents.get(msg.agent_id)
    if not access.authorized(core, "drain_agents", agent.hostname if agent else "", peer, rid):
        return
    core.commit(AgentReactivated(agent_id=msg.agent_id))
    if core.agent_connected(msg.agent_id):
        core.allocator.activate_agent(msg.agent_id, True)
        core.request_allocation()
    core.send(peer, OperatorReply(message=f"agent {msg.agent_id} reactivated"), rid)


def _one_task(core: MasterContext, peer: bytes, task_id: str, framework_id: str, rid: str,
              active_only: bool) -> TaskRecord | None:
    """The task an operator request names, or None after telling why: an id used by
    several frameworks is refused with their ids rather than one picked for the user."""
    found = core.state.find_tasks(task_id, framework_id, active_only=active_only)
    frameworks = sorted({rec.framework_id for rec in found})
    if len(frameworks) > 1:
        core.error(peer, "invalid",
                    f"task id {task_id[:64]!r} is used by {len(frameworks)} frameworks "
                    f"({', '.join(f[:64] for f in frameworks[:10])}): name one with "
                    "--framework", rid)
        return None
    if not found:
        which = "active task" if active_only else "task"
        owner = f" in framework {framework_id[:64]!r}" if framework_id else ""
        core.error(peer, "invalid", f"no {which} with id {task_id[:64]!r}{owner}", rid)
        return None
    return found[0]


def operator_kill(core: MasterContext, peer: bytes, msg: OperatorKill,
                  rid: str, now: float) -> None:
    # Only an active task can be killed, so a finished namesake is no ambiguity.
    active = bool(core.state.find_tasks(msg.task_id, msg.framework_id, active_only=True))
    rec = _one_task(core, peer, msg.task_id, msg.framework_id, rid, active_only=active)
    if rec is None:
        return
    if rec.terminal:
        core.error(peer, "invalid", f"task {rec.task_id} is already {rec.state.value}", rid)
        return
    if not access.authorized(core, "kill_tasks", access.framework_principal(
            core, rec.framework_id), peer, rid):
        return
    task_book.kill_task(core, rec.framework_id, rec.task_id, now)
    core.send(peer, OperatorReply(message=f"kill of task {rec.task_id} of framework "
                                           f"{rec.framework_id} requested"), rid)


def operator_teardown(core: MasterContext, peer: bytes, msg: OperatorTeardown, rid: str,
                      now: float) -> None:
    """Mesos's /teardown: the framework's tasks are killed and it is removed for good
    (it cannot subscribe under its id again)."""
    fid = msg.framework_id
    if fid not in core.state.frameworks:
        core.error(peer, "invalid", f"no framework with id {fid[:64]!r}", rid)
        return
    if not access.authorized(core, "teardown_frameworks", access.framework_principal(
            core, fid), peer, rid):
        return
    tasks = len(core.state.active_tasks_of(fid))
    liveness.remove_framework(core, fid, "torn down by an operator", now)
    core.send(peer, OperatorReply(message=f"framework {fid} torn down: {tasks} task(s) "
                                          "being killed"), rid)


def read_file(core: MasterContext, peer: bytes, msg: ReadFile, rid: str, now: float) -> None:
    known = core.state.find_tasks(msg.task_id, msg.framework_id)
    if msg.agent_id and not known:
        # A task the master forgot (old history): the agent may still have its sandbox.
        agent_id, framework_id = msg.agent_id, msg.framework_id
        if core.principal is not None and not framework_id:
            # With keys, whose sandbox it is must be known to judge the read.
            core.error(peer, "invalid", f"task {msg.task_id[:64]!r} is not known to the "
                       "master: name its framework (--framework) to read its sandbox", rid)
            return
    else:
        rec = _one_task(core, peer, msg.task_id, msg.framework_id, rid, active_only=False)
        if rec is None:
            return
        agent_id, framework_id = msg.agent_id or rec.agent_id, rec.framework_id
    owner = access.framework_principal(core, framework_id)
    principal = core.principal
    if principal is not None and principal.kind == "framework" and owner != principal.name:
        # a sandbox may hold another framework's secrets: frameworks read their own
        core.error(peer, "unauthorized", "a framework reads only its own tasks' sandboxes",
                   rid)
        return
    if not access.authorized(core, "access_sandboxes", owner, peer, rid):
        return
    length = min(msg.length, MAX_READ_LENGTH)
    asked = core.reads.asked(peer)
    if asked + length > MAX_READ_BYTES_IN_FLIGHT:
        # Refused before the agent sends anything: a peer that asks faster than it is
        # answered would otherwise make the master hold every answer at once.
        core.count("reads_refused")
        core.error(peer, "unread_replies", f"{asked} bytes of file reads asked by this "
                   f"connection are still on their way (at most {MAX_READ_BYTES_IN_FLIGHT}):"
                   " wait for their answers, then ask again", rid)
        return
    forward_id = core.new_id()
    forwarded = replace(msg, agent_id=agent_id, framework_id=framework_id, length=length)
    if not core.send_agent(agent_id, forwarded, forward_id):
        core.error(peer, "invalid", f"agent {agent_id} is not connected", rid)
        return
    core.reads.add(forward_id, PendingRead(peer, rid, now + core.config.read_timeout, length))


def expire_reads(core: MasterContext, now: float) -> None:
    for pending in core.reads.expired(now):
        core.error(pending.peer, "invalid", "the agent did not answer in time",
                   pending.request_id)
