"""Framework requests in the master: subscribe (and fail over), accept with operations,
decline, kill, acknowledge, reconcile, revive, suppress, teardown.

Functions of the master core (:class:`~mesos_zmq.master.context.MasterContext`), pure like
it. An accept is checked whole before anything is committed, and what it does is
written ahead of the messages that reveal it (ARCHITECTURE.md, principle 2).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import structlog

from mesos_zmq.errors import ResourceError
from mesos_zmq.master import access, instances, liveness, offers, task_book
from mesos_zmq.master.records import (
    FiltersCleared,
    FilterSet,
    FrameworkAdded,
    RequestDone,
    TaskAdded,
    UpdateAcked,
    copier,
)
from mesos_zmq.master.runtime import MAX_TASKS_PER_ACCEPT, FrameworkRuntime
from mesos_zmq.master.validation import (
    MAX_RECONCILE,
    check_framework,
    check_task,
    reservation_problem,
    user_problem,
)
from mesos_zmq.protocol import (
    Accept,
    Acknowledge,
    Decline,
    FrameworkInfo,
    Kill,
    Reconcile,
    Revive,
    RunTasks,
    StatusUpdate,
    Subscribe,
    Subscribed,
    Suppress,
    TaskInfo,
    Teardown,
    UpdateFramework,
)
from mesos_zmq.resources import Resources
from mesos_zmq.tasks import TaskState

if TYPE_CHECKING:
    from mesos_zmq.master.context import MasterContext

log = structlog.get_logger()

#: ``replace(task, agent_id=, role=, resources=, user=)``: what the master sets of each
#: task it launches, copied by generated code (``replace`` was 2 % of the master under
#: churn; see records.copier)
_as_launched = copier(TaskInfo, "agent_id", "role", "resources", "user")
_STAGING = TaskState.STAGING.value


def subscribe(core: MasterContext, peer: bytes, msg: Subscribe, rid: str, now: float) -> None:
    """Subscribe a framework, or fail it over to this connection.

    A framework id this master does not know is taken as a new framework under that id
    (as Mesos does for a framework re-registering with a newly elected master), and the
    answer says so (``unknown_id``) so that the scheduler can warn and reconcile.
    ``suppressed_roles`` replaces the framework's suppression: roles it lists get no
    offers until revived; a role it no longer lists is revived.
    """
    info = msg.framework
    problem = check_framework(info, core.config.roles)
    if problem is None:
        problem = suppressed_problem(info)
    if problem is not None:
        core.error(peer, "invalid", f"subscription refused: {problem}", rid)
        return
    if not all(access.authorized(core, "register_frameworks", role, peer, rid)
               for role in dict.fromkeys(info.roles or ["*"])):
        return
    bound = core.peers.get(peer)
    if not info.framework_id and (made := instances.known(core, "framework", msg.instance)) \
            and made in core.state.frameworks and (bound is None or bound.id != made):
        # This process subscribed before, on a connection it has left since (the answer
        # went there): it is the framework it was made then, not a second one beside it
        # (offered to, and removed once its silence was noticed).
        core.count("subscriptions_again")
        info = replace(info, framework_id=made)
    if (
        not info.framework_id
        and bound is not None
        and bound.kind == "framework"
        and bound.id in core.state.frameworks
    ):
        # A retry whose answer was lost; it may carry a suppression changed meanwhile.
        known = core.state.frameworks[bound.id]
        wanted = sorted(set(info.suppressed_roles))
        if wanted != known.suppressed_roles:
            core.commit(FrameworkAdded(framework=replace(known, suppressed_roles=wanted)))
            _apply_suppression(core, bound.id, known.suppressed_roles, wanted)
        core.send(peer, subscribed(core, bound.id, False), rid)
        return
    reregistered = False
    unknown = False
    if info.framework_id:
        if info.framework_id in core.state.removed_frameworks:
            core.error(
                peer,
                "framework_removed",
                f"framework {info.framework_id} was removed; subscribe without an id",
                rid,
            )
            return
        framework_id = info.framework_id
        reregistered = framework_id in core.state.frameworks
        unknown = not reregistered
        if unknown and core.principal is not None:
            # With keys, ids are the master's to give: one chosen by the client could
            # be another's id this master has not heard of yet.
            core.error(peer, "invalid", f"framework {framework_id[:64]} is unknown to this "
                       "master: subscribe without an id to register", rid)
            return
        if not access.may_use(core, "framework", framework_id, peer, rid):
            return
        if instances.stale(core, "framework", framework_id, peer, msg.instance, msg.attempt,
                           rid):
            return
        if instances.refused_displaced(core, framework_id, msg.instance, peer, rid):
            return
    else:
        framework_id = core.fresh_id("framework", core.state.frameworks)
    roles = list(dict.fromkeys(info.roles or ["*"]))
    previous = core.state.frameworks.get(framework_id)
    stored = replace(info, framework_id=framework_id, roles=roles,
                     suppressed_roles=sorted(set(info.suppressed_roles)))
    if previous != stored:
        core.commit(FrameworkAdded(framework=stored))
    access.claim(core, "framework", framework_id)
    rt = core.framework_runtimes.setdefault(framework_id, FrameworkRuntime())
    rt.deadline = None
    rt.offers_until = None
    resend = rt.recovered
    if rt.recovered:
        # Back after a master failover: the previous leader's offers still hold, and
        # are sent again below (the framework may never have received them).
        rt.recovered = False
    else:
        # A new scheduler connection (framework failover): the offers made to the
        # previous one are void. Take them back quietly.
        for offer_id in list(rt.offers):
            offers.remove_offer(core, offer_id)
    instances.displace(core, framework_id, peer, msg.instance)
    instances.note(core, "framework", framework_id, msg.instance, msg.attempt)
    core.bind(peer, "framework", framework_id, now)
    core.allocator.add_framework(framework_id, roles, info.capabilities, active=True)
    _apply_suppression(core, framework_id, previous.suppressed_roles if previous else [],
                       stored.suppressed_roles)
    core.request_allocation()
    log.info(
        "framework subscribed",
        framework_id=framework_id,
        name=info.name,
        roles=roles,
        reregistered=reregistered,
        suppressed_roles=stored.suppressed_roles,
    )
    if unknown:
        log.warning("framework subscribed with an id this master does not know: "
                    "registered as a new framework under it", framework_id=framework_id)
    core.send(peer, subscribed(core, framework_id, reregistered, unknown), rid)
    rt.update_retry = 0.0
    for uuid, (status, _) in list(rt.pending.items()):
        rt.pending[uuid] = (status, now)
        core.send(peer, StatusUpdate(status=status))
    if reregistered:
        # Updates its agents sent while it was away were not forwarded: they resend
        # them now (their back-off may have grown to minutes).
        agents = {rec.agent_id for rec in core.state.active_tasks_of(framework_id)}
        for agent_id in sorted(agents):
            core.send_agent(agent_id, UpdateFramework(framework_id=framework_id))
    if resend:
        offers.resend_offers(core, framework_id, now)


def subscribed(core: MasterContext, framework_id: str, re: bool,
               unknown: bool = False) -> Subscribed:
    return Subscribed(
        framework_id=framework_id,
        heartbeat_interval=core.config.heartbeat_interval,
        missed_heartbeats=core.config.missed_heartbeats,
        reregistered=re,
        unknown_id=unknown,
    )


def _apply_suppression(core: MasterContext, fid: str, old: list[str], new: list[str]) -> None:
    """Make the allocator suppress exactly ``new``: roles only in ``old`` are revived
    (which also clears decline filters, as any revive does)."""
    lifted = [r for r in old if r not in new]
    if lifted:
        _revive(core, fid, lifted)
    if new:
        core.allocator.suppress(fid, new)


def suppressed_problem(info: FrameworkInfo) -> str | None:
    """Suppressed roles must be roles the framework subscribes to (as in Mesos)."""
    roles = info.roles or ["*"]
    for role in info.suppressed_roles:
        if role not in roles:
            return (f"suppressed role {role[:64]!r} is not one of the framework's roles "
                    f"({', '.join(roles)})")
    return None


def release_offers(core: MasterContext, fid: str, offer_ids: list[str]) -> list[str]:
    """Return the framework's current offers among ``offer_ids`` to the pool, unfiltered.

    Done for a refused accept or decline, as Mesos does for an accept that fails
    validation: the framework must not be left holding offers it cannot use, and a
    scheduler told its request was refused has no way to know which offers are still
    good. Offers of other frameworks and unknown ids are left alone.
    """
    released = []
    for offer_id in dict.fromkeys(offer_ids):
        offer = core.offers.get(offer_id)
        if offer is not None and offer.framework_id == fid:
            offers.remove_offer(core, offer_id)
            released.append(offer_id)
    return released


def _released_note(released: list[str]) -> str:
    if not released:
        return ""
    return f" (offers {', '.join(o[:64] for o in released[:10])} returned to the pool)"


def accept(core: MasterContext, peer: bytes, msg: Accept, rid: str, now: float) -> None:
    fid = msg.framework_id
    if not core.framework_peer_ok(peer, fid, rid):
        return
    # Request ids are the client's: one framework's id must not shadow another's, so
    # they are remembered per framework (a bare id is a record from before that).
    done_key = f"{fid}/{rid}"
    if rid and (done_key in core.state.requests_done or rid in core.state.requests_done):
        core.count("duplicate_requests")
        return  # a retry of an accept already applied (maybe by a previous leader)
    problem = accept_check(core, fid, msg)
    conversions: list[tuple[Resources, Resources]] = []
    if problem is None and msg.operations:
        problem, conversions = plan_operations(core, msg)
    if problem is not None:
        released = release_offers(core, fid, msg.offer_ids[:MAX_TASKS_PER_ACCEPT])
        core.error(peer, "invalid", f"accept refused: {problem}{_released_note(released)}",
                    rid)
        for task in msg.tasks[:MAX_TASKS_PER_ACCEPT]:
            task_book.reply_status(core, fid, task.task_id, task.agent_id, TaskState.DROPPED,
                                   "REASON_INVALID_OFFERS", f"accept refused: {problem}", now)
        return
    accepted = [core.offers[o] for o in msg.offer_ids]
    agent_id = accepted[0].agent_id
    role = accepted[0].role
    offered = Resources.empty()
    for offer in accepted:
        offered = offered + offer.resources
        offers.remove_offer(core, offer.offer_id, recover=False)
    for old, new in conversions:
        offered = offered - old + new
        core.allocator.convert(agent_id, old, new, held=True)
        core.set_reservations(agent_id, old, new, now)
    remaining = offered
    framework = core.state.frameworks.get(fid)
    framework_user = framework.user if framework is not None else ""
    launched: list[TaskInfo] = []
    seen: set[str] = set()
    for task in msg.tasks:
        error = check_task(task, agent_id, seen, core.state.task(fid, task.task_id) is not None)
        needed: Resources | None = None
        if error is None:
            try:
                needed = Resources.parse(task.resources)
            except ResourceError as exc:
                error = str(exc)
        if error is None and needed is not None and not remaining.contains(needed):
            error = f"task resources {needed} do not fit in what is left of the offers"
        user = task.user or framework_user
        if error is None:
            error = user_problem(user)
        if error is None and not access.may_run_as(core, user):
            error = (f"principal {core.principal.name if core.principal else ''!r} may not "
                     f"run tasks as user {user or '(the agent user)'!r} (ACL run_tasks)")
        if error is not None or needed is None:
            task_book.master_task_error(core, fid, task, error or "invalid task", now)
            continue
        seen.add(task.task_id)
        remaining = remaining.minus_contained(needed)  # contained: checked above
        task = _as_launched(task, agent_id, role, str(needed), user)
        # stamped with the time commit stamps (so it need not copy the record)
        core.commit(TaskAdded(framework_id=fid, task=task, state=_STAGING,
                              time=core.wall(now)))
        launched.append(task)
    if rid:
        core.commit(RequestDone(request_id=done_key))
    refuse_until = now + msg.refuse_seconds if msg.refuse_seconds > 0 else None
    core.allocator.recover(fid, role, agent_id, remaining, refuse_until)
    if refuse_until is not None and remaining:
        record_filter(core, fid, agent_id, msg.refuse_seconds, now)
    core.request_allocation()
    if launched:
        info = core.state.frameworks[fid]
        core.count("tasks_launched")
        sent = core.send_agent(
            agent_id, RunTasks(framework_id=fid, tasks=launched, framework_name=info.name)
        )
        if sent:
            for task in launched:
                offers.launch_sent(core, fid, task.task_id, now)
        if not sent and agent_id not in core.state.agents:
            for task in launched:
                rec = core.state.task(fid, task.task_id)
                if rec is not None:
                    task_book.master_task_update(core, rec, TaskState.LOST, "REASON_AGENT_REMOVED",
                                                 "the agent is gone", now)
        # A known agent that is reconnecting (after a master failover, say) gets its
        # STAGING tasks when it re-registers (see agent_api.reconcile_agent).


def plan_operations(core: MasterContext,
                    msg: Accept) -> tuple[str | None, list[tuple[Resources, Resources]]]:
    """Check RESERVE/UNRESERVE against the offers; return (problem, conversions)."""
    named = [core.offers[o] for o in msg.offer_ids]
    agent_id, role = named[0].agent_id, named[0].role
    available = Resources.empty()
    for offer in named:
        available = available + offer.resources
    dynamic = core.dynamic_reservations(agent_id)
    conversions = []
    for op in msg.operations:
        try:
            res = Resources.from_wire(op.resources)
        except ResourceError as exc:
            return f"{op.kind}: {exc}", []
        problem = reservation_problem(res, role)
        if problem is not None:
            return f"{op.kind}: {problem}", []
        action = {"RESERVE": "reserve_resources", "UNRESERVE": "unreserve_resources"}.get(
            op.kind)
        principal = core.principal
        for reserved_role in sorted(res.roles() - {"*"}):
            if action is not None and not access.may(core, action, reserved_role):
                who = principal.name if principal is not None else ""
                return (f"{op.kind}: principal {who!r} is not allowed to "
                        f"{action.replace('_', ' ')} for {reserved_role!r} (ACL {action})"), []
        if op.kind == "RESERVE":
            old, new = res.flatten(), res
        elif op.kind == "UNRESERVE":
            old, new = res, res.flatten()
            if not dynamic.contains(res):
                return f"UNRESERVE: {res} is not dynamically reserved on this agent", []
            dynamic = dynamic - res
        else:
            return f"unknown operation {op.kind[:32]!r} (use RESERVE or UNRESERVE)", []
        if not available.contains(old):
            return f"{op.kind}: {old} is not in the offers", []
        available = available - old + new
        conversions.append((old, new))
    return None, conversions


def accept_check(core: MasterContext, fid: str, msg: Accept) -> str | None:
    if not msg.offer_ids:
        return "no offer ids given"
    if len(set(msg.offer_ids)) != len(msg.offer_ids):
        return "an offer id is repeated"
    if len(msg.tasks) > MAX_TASKS_PER_ACCEPT:
        return f"more than {MAX_TASKS_PER_ACCEPT} tasks in one accept"
    if not 0 <= msg.refuse_seconds <= 10**9:
        return "refuse_seconds must be between 0 and 1e9"
    agents = set()
    roles = set()
    for offer_id in msg.offer_ids:
        offer = core.offers.get(offer_id)
        if offer is None:
            return (
                f"offer {offer_id[:64]!r} is not valid "
                "(unknown, used, declined or rescinded)"
            )
        if offer.framework_id != fid:
            return f"offer {offer_id} was not made to framework {fid}"
        agents.add(offer.agent_id)
        roles.add(offer.role)
    if len(agents) > 1:
        return "offers from different agents cannot be combined"
    if len(roles) > 1:
        return "offers for different roles cannot be combined"
    return None


def decline(core: MasterContext, peer: bytes, msg: Decline, rid: str, now: float) -> None:
    if not core.framework_peer_ok(peer, msg.framework_id, rid):
        return
    if not 0 <= msg.refuse_seconds <= 10**9:
        # Declined all the same, without a filter: the framework meant to give them up.
        released = release_offers(core, msg.framework_id, msg.offer_ids)
        core.error(peer, "invalid", "decline refused: refuse_seconds must be between 0 "
                    f"and 1e9{_released_note(released)}", rid)
        return
    refuse_until = now + msg.refuse_seconds if msg.refuse_seconds > 0 else None
    for offer_id in msg.offer_ids:
        offer = core.offers.get(offer_id)
        if offer is None or offer.framework_id != msg.framework_id:
            continue  # already gone: declining twice is harmless
        offers.remove_offer(core, offer_id, recover=False)
        core.allocator.recover(
            offer.framework_id, offer.role, offer.agent_id, offer.resources, refuse_until
        )
        if refuse_until is not None:
            record_filter(core, offer.framework_id, offer.agent_id, msg.refuse_seconds, now)
    core.request_allocation()


def record_filter(core: MasterContext, fid: str, agent_id: str, seconds: float, now: float) -> None:
    """Decline filters are logged so that a new leader keeps honouring them."""
    core.commit(FilterSet(framework_id=fid, agent_id=agent_id, seconds=seconds))


def kill_request(core: MasterContext, peer: bytes, msg: Kill, rid: str, now: float) -> None:
    if not core.framework_peer_ok(peer, msg.framework_id, rid):
        return
    task_book.kill_task(core, msg.framework_id, msg.task_id, now)


def acknowledge(core: MasterContext, peer: bytes, msg: Acknowledge, rid: str, now: float) -> None:
    if not core.framework_peer_ok(peer, msg.framework_id, rid):
        return
    rt = core.framework_runtimes.get(msg.framework_id)
    if rt is not None and rt.pending.pop(msg.uuid, None) is not None:
        rt.update_retry = 0.0  # it listens: the rest go at the first interval again
        core.commit(UpdateAcked(uuid=msg.uuid))
        return
    if msg.agent_id:
        core.send_agent(msg.agent_id, msg)


def reconcile(core: MasterContext, peer: bytes, msg: Reconcile, rid: str, now: float) -> None:
    fid = msg.framework_id
    if not core.framework_peer_ok(peer, fid, rid):
        return
    if len(msg.tasks) > MAX_RECONCILE:
        # each id costs an update back: 250,000 unknown ids a message grew the master
        # by gigabytes of replies a framework need not read
        core.error(peer, "invalid", f"a reconcile may name at most {MAX_RECONCILE} tasks, "
                   f"not {len(msg.tasks)}: send them in several", rid)
        return
    if not msg.tasks:
        for rec in core.state.active_tasks_of(fid):
            task_book.reply_status(core, fid, rec.task_id, rec.agent_id, rec.state,
                                   "REASON_RECONCILIATION", rec.message, now, rec.exit_code)
        return
    for item in msg.tasks:
        found = core.state.task(fid, item.task_id)
        if found is None:
            task_book.reply_status(core, fid, item.task_id, item.agent_id, TaskState.LOST,
                                   "REASON_RECONCILIATION", "task unknown to the master", now)
        else:
            task_book.reply_status(core, fid, found.task_id, found.agent_id, found.state,
                                   "REASON_RECONCILIATION", found.message, now, found.exit_code)


def revive(core: MasterContext, peer: bytes, msg: Revive, rid: str, now: float) -> None:
    if core.framework_peer_ok(peer, msg.framework_id, rid):
        _revive(core, msg.framework_id, msg.roles)
        _set_suppressed(core, msg.framework_id, msg.roles, False, now)


def _revive(core: MasterContext, fid: str, roles: list[str]) -> None:
    """Lift suppression of ``roles`` (all when empty) and clear every decline filter."""
    core.allocator.revive(fid, roles)
    if any(f == fid for f, _ in core.state.filters):
        core.commit(FiltersCleared(framework_id=fid))
    core.request_allocation()


def suppress(core: MasterContext, peer: bytes, msg: Suppress, rid: str, now: float) -> None:
    if core.framework_peer_ok(peer, msg.framework_id, rid):
        core.allocator.suppress(msg.framework_id, msg.roles)
        _set_suppressed(core, msg.framework_id, msg.roles, True, now)


def _set_suppressed(core: MasterContext, fid: str, roles: list[str], on: bool,
                    now: float) -> None:
    """Keep the logged FrameworkInfo's ``suppressed_roles`` in step with the allocator.

    Suppression is part of what a new leader knows of the framework, and what a
    re-subscription is compared with (a role no longer listed is revived).
    """
    info = core.state.frameworks.get(fid)
    if info is None:
        return
    named = {r for r in (roles or info.roles) if r in info.roles}
    current = set(info.suppressed_roles)
    wanted = sorted(current | named if on else current - named)
    if wanted != info.suppressed_roles:
        stored = replace(info, suppressed_roles=wanted)
        core.commit(FrameworkAdded(framework=stored))


def teardown(core: MasterContext, peer: bytes, msg: Teardown, rid: str, now: float) -> None:
    if core.framework_peer_ok(peer, msg.framework_id, rid):
        liveness.remove_framework(core, msg.framework_id, "framework tore itself down", now)
        core.unbind_peer(peer)
