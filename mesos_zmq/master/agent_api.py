"""Agent life cycle in the master: registration, re-registration and reconciliation,
status updates, usage reports and file reads coming back.

Functions of the master core (:class:`~mesos_zmq.master.context.MasterContext`), pure like
it. Agents are the truth for what runs (ARCHITECTURE.md, principle 5): a re-registering
agent's report is reconciled against the log here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import structlog

from mesos_zmq.errors import ResourceError
from mesos_zmq.master import access, instances, liveness, offers, task_book
from mesos_zmq.master.records import AgentAdded, TaskAdded
from mesos_zmq.master.runtime import MAX_TASKS_PER_ACCEPT, AgentRuntime
from mesos_zmq.master.validation import (
    MAX_STATUS_MESSAGE,
    check_agent,
    status_problem,
    task_problem,
    valid_id,
)
from mesos_zmq.protocol import (
    Acknowledge,
    AgentRegistered,
    AgentStopping,
    FileData,
    KillTask,
    RegisterAgent,
    ReregisterAgent,
    RunTasks,
    ShutdownFramework,
    StatusUpdate,
    TaskInfo,
    TaskReport,
    TaskStatus,
    UsageReport,
)
from mesos_zmq.resources import Resources
from mesos_zmq.tasks import TERMINAL, TaskState, can_transition, task_state

if TYPE_CHECKING:
    from mesos_zmq.master.context import MasterContext

log = structlog.get_logger()


def register_agent(core: MasterContext, peer: bytes, msg: RegisterAgent,
                   rid: str, now: float) -> None:
    bound = core.peers.get(peer)
    if bound is not None and bound.kind == "agent" and bound.id in core.state.agents:
        # A retry whose reply was lost: same answer, no new agent.
        core.send(peer, agent_registered(core, peer, bound.id, False), rid)
        return
    problem = check_agent(msg.resources, msg.attributes, msg.hostname)
    if problem is not None:
        core.error(peer, "invalid", f"agent registration refused: {problem}", rid)
        return
    known = instances.known(core, "agent", msg.instance)
    if known is not None and known in core.state.agents:
        # The same process asked before, on a connection it has left since (the answer
        # went there): it is the agent it was made then, not another one beside it
        # (offered, and its tasks lost once its silence was noticed).
        core.count("registrations_again")
        reregister_agent(core, peer, ReregisterAgent(
            agent_id=known, hostname=msg.hostname, resources=msg.resources,
            attributes=msg.attributes, version=msg.version, instance=msg.instance,
            attempt=msg.attempt), rid, now)
        return
    agent_id = core.fresh_id("agent", core.state.agents)
    core.commit(AgentAdded(agent_id=agent_id, hostname=msg.hostname,
                           resources=str(Resources.parse(msg.resources)),
                           attributes=msg.attributes))
    access.claim(core, "agent", agent_id)
    core.agent_runtimes[agent_id] = AgentRuntime()
    instances.note(core, "agent", agent_id, msg.instance, msg.attempt)
    core.bind(peer, "agent", agent_id, now)
    core.allocator.add_agent(agent_id, Resources.parse(msg.resources))
    core.request_allocation()
    log.info("agent registered", agent_id=agent_id, hostname=msg.hostname)
    core.send(peer, agent_registered(core, peer, agent_id, False), rid)


def agent_stopping(core: MasterContext, peer: bytes, msg: AgentStopping, rid: str,
                   now: float) -> None:
    """A planned stop: nothing more is offered on or sent to the agent at once (rather
    than after its heartbeats are missed). Its tasks stay; if it is not back within the
    heartbeat limit it is removed as a silent agent would be."""
    bound = core.peers.get(peer)
    if bound is None or bound.kind != "agent" or bound.id != msg.agent_id:
        core.error(peer, "not_registered",
                    f"this connection is not agent {msg.agent_id[:64]!r}", rid)
        return
    rt = core.agent_runtimes.get(msg.agent_id)
    core.unbind_peer(peer)
    if rt is None:
        return
    for offer_id in list(rt.offers):
        offers.rescind(core, offer_id)
    core.allocator.activate_agent(msg.agent_id, False)
    limit = core.config.heartbeat_interval * core.config.missed_heartbeats
    rt.deadline = now + limit
    core.schedule_deadline("agent", msg.agent_id, rt.deadline)
    rt.away = f"agent stopped ({msg.reason[:64] or 'planned'}) and did not come back"
    core.count("agents_stopping")
    log.info("agent stopping", agent_id=msg.agent_id, reason=msg.reason[:64],
             back_within_s=limit)


def agent_registered(core: MasterContext, peer: bytes, agent_id: str,
                     re: bool) -> AgentRegistered:
    """The answer to a (re-)registration, with the interval the master's monitor of this
    connection expects (it grows with the cluster: ``agent_beat_interval``)."""
    info = core.peers.get(peer)
    return AgentRegistered(
        agent_id=agent_id,
        heartbeat_interval=(info.monitor.interval if info is not None
                            else core.agent_beat_interval()),
        missed_heartbeats=core.config.missed_heartbeats,
        reregistered=re,
    )


def reregister_agent(core: MasterContext, peer: bytes, msg: ReregisterAgent, rid: str,
                     now: float) -> None:
    if not valid_id(msg.agent_id):
        core.error(peer, "invalid", f"invalid agent id {msg.agent_id[:64]!r}", rid)
        return
    problem = check_agent(msg.resources, msg.attributes, msg.hostname)
    if problem is not None:
        core.error(peer, "invalid", f"agent re-registration refused: {problem}", rid)
        return
    agent_id = msg.agent_id
    if repeated_reregistration(core, peer, agent_id):
        answer_repeat(core, peer, agent_id, rid)
        return
    if not access.may_use(core, "agent", agent_id, peer, rid):
        return
    if instances.stale(core, "agent", agent_id, peer, msg.instance, msg.attempt, rid):
        return
    static = Resources.parse(msg.resources)
    total = core.agent_total(agent_id, static)
    known = core.state.agents.get(agent_id)
    if known is None or known.resources != str(static):
        problem = _kinds_held(core, agent_id, total)
        if problem is not None:
            core.error(peer, "invalid", f"agent re-registration refused: {problem}", rid)
            return
    if known is None or known.resources != str(static) or known.hostname != msg.hostname:
        # New to this master (removed earlier, or its log was lost) or changed.
        core.commit(AgentAdded(agent_id=agent_id, hostname=msg.hostname,
                               resources=str(static), attributes=msg.attributes))
        if core.allocator.has_agent(agent_id):
            reset_agent_allocation(core, agent_id, total)
        else:
            core.allocator.add_agent(agent_id, total)
            for rec in core.state.active_tasks_on(agent_id):
                task_book.allocate_task(core, rec)
    access.claim(core, "agent", agent_id)
    rt = core.agent_runtimes.setdefault(agent_id, AgentRuntime())
    rt.deadline = None
    instances.note(core, "agent", agent_id, msg.instance, msg.attempt)
    core.bind(peer, "agent", agent_id, now)
    core.allocator.activate_agent(agent_id, True)
    reconcile_agent(core, agent_id, msg, now, total)
    if agent_id in core.state.draining:
        task_book.drain(core, agent_id, now)  # kills sent while it was away never arrived
    core.request_allocation()
    # At info one line per tick names the agents back (log_reregistered): a line per
    # agent cost ~17 us of the 83 us a re-registration takes a new leader, on the
    # thread that must answer 10,000 of them at once.
    log.debug("agent reregistered", agent_id=agent_id, tasks=len(msg.tasks))
    core.reregistered.append(agent_id)
    core.send(peer, agent_registered(core, peer, agent_id, True), rid)


#: agent ids one "agents reregistered" line names at most
REREGISTERED_PER_LINE = 1000


def _kinds_held(core: MasterContext, agent_id: str, total: Resources) -> str | None:
    """Why an agent back with ``total`` cannot hold the tasks the master has on it, or
    None: a name now of another kind than a task holds (``foo:[1-5]`` where a task
    holds ``foo:1``) cannot be counted one within the other. Refused, the agent can
    come back as it was, or under a new id (a new work dir)."""
    for rec in core.state.active_tasks_on(agent_id):
        try:
            held = Resources.parse(rec.task.resources)
        except ResourceError:
            continue
        conflict = total.kind_conflict(held)
        if conflict is not None:
            return (f"task {rec.task_id} of framework {rec.framework_id} holds "
                    f"{str(held)[:100]}, of another kind than the agent's resources now "
                    f"({conflict}); restart the agent with the resources it had, or "
                    "with a new work dir")
    return None


def log_reregistered(core: MasterContext) -> None:
    """Name the agents re-registered since the last tick: one info line for up to
    REREGISTERED_PER_LINE of them (their ids in ``agent_ids``, in the order they came
    back), rather than a line each. An operator finds one agent's re-registration by
    its id in that list; at debug each also has its own "agent reregistered" line."""
    done = core.reregistered
    if not done:
        return
    core.reregistered = []
    for start in range(0, len(done), REREGISTERED_PER_LINE):
        chunk = done[start:start + REREGISTERED_PER_LINE]
        log.info("agents reregistered", count=len(chunk), agent_ids=chunk)


def repeated_reregistration(core: MasterContext, peer: bytes, agent_id: str) -> bool:
    """A re-registration on the connection already bound to ``agent_id``: the agent's
    retry, sent before the answer to its first attempt arrived (after a failover,
    10,000 agents sent 31,000 while the new leader worked through them).

    The first one reconciled the agent's tasks, and what changed on the agent since
    travels as status updates; the same connection is the same agent process (a
    restarted agent, or one with other resources, connects anew). So a repeat changes
    nothing and is answered again, the same answer.
    """
    bound = core.peers.get(peer)
    if bound is None or bound.kind != "agent" or bound.id != agent_id:
        return False
    rt = core.agent_runtimes.get(agent_id)
    return (rt is not None and rt.peer == peer and rt.deadline is None
            and agent_id in core.state.agents)


def answer_repeat(core: MasterContext, peer: bytes, agent_id: str, rid: str) -> None:
    core.count("repeated_reregistrations")
    core.send(peer, agent_registered(core, peer, agent_id, True), rid)


def reset_agent_allocation(core: MasterContext, agent_id: str, total: Resources) -> None:
    """An agent came back with different resources: rebuild its accounting."""
    for offer_id in list(core.agent_runtimes.get(agent_id, AgentRuntime()).offers):
        offers.rescind(core, offer_id)
    for rec in core.state.active_tasks_on(agent_id):
        task_book.release_task(core, rec)
    core.allocator.remove_agent(agent_id)
    core.allocator.add_agent(agent_id, total)
    for rec in core.state.active_tasks_on(agent_id):
        task_book.allocate_task(core, rec)


def _unused(total: Resources, reports: list[TaskReport]) -> Resources:
    """What of ``total`` the tasks an agent reports running leave (never negative)."""
    free = total
    for report in reports:
        if report.state not in TERMINAL:
            try:
                free = free.subtract_available(Resources.parse(report.task.resources))
            except ResourceError:
                pass
    return free


def _adopt(core: MasterContext, agent_id: str, msg: ReregisterAgent,
           unknown: list[TaskReport], total: Resources) -> None:
    """Adopt the tasks an agent reports that this master does not know while their
    framework lives (Mesos does: the log that knew them was lost), each only if it is
    a task this master would have accepted there: valid (what is logged must replay),
    in a role of its framework, of the agent's kinds and within what the agent has
    left once the tasks the master knows on it are counted (those it already told
    their framework were lost too: they run until the kill sent for them lands). A
    report is the agent's word: believed beyond that, it could book any amount in any
    role.

    The agent's outstanding offers are rescinded first: what they offer is what an
    adopted task holds, and both accepted would book it twice. Running tasks are
    adopted before ended ones (one that ended holds nothing for long, and must not
    crowd out one that runs); a running one refused is killed, since what it holds
    is offered again.
    """
    master_state = core.state
    task_of = master_state.task
    rt = core.agent_runtimes.get(agent_id)
    if rt is not None:
        for offer_id in list(rt.offers):
            offers.rescind(core, offer_id)
    free = _unused(total, [r for r in msg.tasks
                           if (rec := task_of(r.framework_id, r.task.task_id)) is not None
                           and rec.agent_id == agent_id])
    ordered = sorted(unknown, key=lambda r: r.state in TERMINAL)
    for report in ordered[MAX_TASKS_PER_ACCEPT:]:  # beyond what one report may adopt
        if report.state not in TERMINAL:
            core.send_agent(agent_id, KillTask(framework_id=report.framework_id,
                                               task_id=report.task.task_id))
    for report in ordered[:MAX_TASKS_PER_ACCEPT]:
        # (one that ended is adopted too: its update, which follows, tells the framework)
        framework_id = report.framework_id
        task_id = report.task.task_id
        info = master_state.frameworks[framework_id]
        why = task_problem(report.task) if valid_id(framework_id) else "invalid framework id"
        if why is None and (report.task.role or "*") not in info.roles:
            why = f"role {report.task.role[:64]!r} is not one of its framework's"
        if why is None:
            needs = Resources.parse(report.task.resources)
            why = free.kind_conflict(needs) or (
                None if free.contains(needs) else "it does not fit in what the agent "
                f"has left ({str(free)[:100]})")
        if why is not None:
            running = report.state not in TERMINAL
            log.warning("refused a task an agent reported", agent_id=agent_id,
                        task_id=task_id[:64], why=why, killed=running)
            if running:
                core.send_agent(agent_id, KillTask(framework_id=framework_id,
                                                   task_id=task_id))
            core.count("adoptions_refused")
            continue
        free = free.minus_contained(needs)
        task = replace(report.task, agent_id=agent_id)
        core.commit(TaskAdded(framework_id=framework_id, task=task,
                              state=TaskState.STAGING.value))
        new_rec = task_of(framework_id, task_id)
        if new_rec is not None:
            task_book.allocate_task(core, new_rec)


def reconcile_agent(core: MasterContext, agent_id: str, msg: ReregisterAgent, now: float,
                    total: Resources) -> None:
    """Agents are the truth for what runs: align the log with their report.

    Tasks committed for the agent but never delivered are delivered now, as long as
    they fit in what the agent has (it may have come back smaller): one that no longer
    fits never ran, and is reported as lost rather than overbooking the agent.
    """
    # The names below are looked up once, not per report: a re-registration reports
    # ten tasks or more, and 10,000 agents re-register at once after a failover.
    master_state = core.state
    frameworks = master_state.frameworks
    task_of = master_state.task
    reported: set[tuple[str, str]] = set()
    unknown: list[TaskReport] = []
    for report in msg.tasks:
        framework_id = report.framework_id
        task_id = report.task.task_id
        rec = task_of(framework_id, task_id)
        if rec is not None and rec.agent_id != agent_id:
            # Another agent's task: an agent speaks for its own tasks only (a report
            # believed here would move a task it does not run).
            log.warning("ignored a task an agent reported: it is another agent's",
                        agent_id=agent_id, task_id=task_id[:64], its_agent=rec.agent_id)
            continue
        if (framework_id, task_id) in reported:
            continue  # named twice in one report: the first entry stands
        reported.add((framework_id, task_id))
        if framework_id not in frameworks:
            core.send_agent(agent_id, ShutdownFramework(framework_id=framework_id))
            continue
        if rec is None:
            unknown.append(report)
        elif rec.terminal and report.state not in TERMINAL:
            # We already told the framework it is gone (LOST): it must not run.
            core.send_agent(agent_id, KillTask(framework_id=framework_id, task_id=task_id))
        elif rec.state == TaskState.UNREACHABLE and report.state in (
                TaskState.RUNNING.value, TaskState.KILLING.value):
            # A partition-aware framework heard UNREACHABLE: now it hears the truth.
            # (A task that ended meanwhile is told by the agent's own update.)
            task_book.master_task_update(core, rec, TaskState(report.state),
                                         "REASON_AGENT_REREGISTERED",
                                         "agent re-registered after being unreachable", now)
    if unknown:
        _adopt(core, agent_id, msg, unknown, total)
    relaunch: dict[str, list[TaskInfo]] = {}
    free: Resources | None = None  # worked out for the first undelivered task only
    for rec in master_state.active_tasks_on(agent_id):
        if (rec.framework_id, rec.task.task_id) in reported:
            continue
        if rec.state == TaskState.STAGING and (rec.framework_id,
                                               rec.task.task_id) in core.staging_kills:
            # Killed before it started, and the agent came back without it (it restarted
            # before it recorded the launch, or the kill): it must never start now.
            task_book.master_task_update(core, rec, TaskState.KILLED,
                                         "REASON_TASK_KILLED_DURING_LAUNCH",
                                         "killed before it was started", now)
            continue
        if rec.state == TaskState.STAGING:
            try:
                needs = Resources.parse(rec.task.resources)
            except ResourceError:
                needs = None
            if free is None:
                free = _unused(total, msg.tasks)
            if needs is not None and free.contains(needs):
                # Committed but never delivered (the previous leader died between its
                # commit and its send): deliver it now. The agent ignores task ids it
                # already knows, so this cannot launch anything twice.
                free = free - needs
                relaunch.setdefault(rec.framework_id, []).append(rec.task)
                continue
            state = (TaskState.DROPPED if liveness.partition_aware(core, rec.framework_id)
                     else TaskState.LOST)
            task_book.master_task_update(core, rec, state, "REASON_AGENT_RESTARTED",
                                         "the agent came back with fewer resources than "
                                         "this task needs; it never started", now)
            continue
        task_book.master_task_update(core, rec, TaskState.LOST, "REASON_AGENT_RESTARTED",
                                     "Task is unknown to the agent after it re-registered",
                                     now)
    for framework_id, tasks in relaunch.items():
        info = core.state.frameworks.get(framework_id)
        core.send_agent(agent_id, RunTasks(framework_id=framework_id, tasks=tasks,
                                            framework_name=info.name if info else ""))
        for task in tasks:
            offers.launch_sent(core, framework_id, task.task_id, now)


def usage(core: MasterContext, peer: bytes, msg: UsageReport, rid: str, now: float) -> None:
    """Usage is a measurement, not state: kept in memory for views, never logged."""
    if not core.require(peer, "agent", rid, msg.agent_id):
        return
    for usage in msg.tasks[:MAX_TASKS_PER_ACCEPT]:
        key = (usage.framework_id, usage.task_id)
        rec = core.state.tasks.get(key)
        if rec is not None and rec.agent_id == msg.agent_id:
            core.usage[key] = usage


def status_update(core: MasterContext, peer: bytes, msg: StatusUpdate,
                  rid: str, now: float) -> None:
    status = msg.status
    if not core.require(peer, "agent", rid, status.agent_id):
        return
    try:
        new_state = task_state(status.state)
    except ValueError:
        core.error(peer, "bad_field", f"unknown task state {status.state[:40]!r}", rid)
        return
    problem = status_problem(status)
    if problem is not None:
        core.error(peer, "bad_field", problem, rid)
        return
    if len(status.message) > MAX_STATUS_MESSAGE:
        # text for people: cut (the log, the state and the framework get the same)
        status = replace(status, message=status.message[:MAX_STATUS_MESSAGE])
        msg = StatusUpdate(status=status)
    rec = core.state.task(status.framework_id, status.task_id)
    if rec is None or status.framework_id not in core.state.frameworks \
            or rec.agent_id != status.agent_id:
        # Nobody to tell: acknowledge so the agent stops retrying.
        core.send(peer, _ack_of(status))
        return
    if rec.state != new_state:
        if not can_transition(rec.state, new_state):
            log.info(
                "ignoring stale status update",
                task_id=status.task_id,
                have=rec.state.value,
                got=new_state.value,
            )
            core.send(peer, _ack_of(status))
            return
        task_book.record_task_state(core, status.framework_id, status.task_id, new_state,
                                    now, reason=status.reason, message=status.message,
                                    exit_code=status.exit_code)
        if new_state in TERMINAL:
            task_book.release_task(core, rec)
            task_book.check_drained(core, rec.agent_id)
    core.count("status_updates")
    # Forward even a repeated update: the agent retries because no ack reached it.
    # (The message as it came: records are immutable.)
    core.send_framework(status.framework_id, msg)


def _ack_of(status: TaskStatus) -> Acknowledge:
    """The master's own acknowledgement of an update no framework will answer."""
    return Acknowledge(framework_id=status.framework_id, agent_id=status.agent_id,
                       task_id=status.task_id, uuid=status.uuid)


def file_data(core: MasterContext, peer: bytes, msg: FileData, rid: str, now: float) -> None:
    pending = core.reads.pop(rid)
    if pending is not None:
        core.send(pending.peer, msg, pending.request_id)
