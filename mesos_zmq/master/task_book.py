"""The task book: what the master decides about tasks, and drains.

Recording a task's new state (through the lifecycle table), the updates the master
itself sends (informational, or reliable until acknowledged), kills, the allocator's
view of running tasks, and agent drains (which kill tasks and watch them end). A
service of the master core seen as a :class:`~mesos_zmq.master.context.MasterContext`,
below the handlers and above the state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from mesos_zmq.bounded import remember
from mesos_zmq.errors import ResourceError
from mesos_zmq.master import offers
from mesos_zmq.master.records import AgentDrained, TaskUpdated, UpdatePending
from mesos_zmq.master.state import TaskRecord
from mesos_zmq.protocol import KillTask, StatusUpdate, TaskInfo, TaskStatus
from mesos_zmq.resources import Resources
from mesos_zmq.tasks import TERMINAL, InvalidTransition, TaskState, transition

if TYPE_CHECKING:
    from mesos_zmq.master.context import MasterContext

log = structlog.get_logger()

#: kills of staging tasks remembered (see MasterContext.staging_kills)
STAGING_KILLS_LIMIT = 10_000


def allocate_task(core: MasterContext, rec: TaskRecord) -> None:
    """Count a running task in the allocator (recovery, a returning agent)."""
    try:
        res = Resources.parse(rec.task.resources)
    except ResourceError:
        return
    role = rec.task.role or "*"
    core.allocator.allocate_to(rec.framework_id, role, rec.agent_id, res)


def release_task(core: MasterContext, rec: TaskRecord) -> None:
    """Give an ended (or unreachable) task's resources back to the allocator."""
    # Its usage report is stale from here on (ended, or its agent unreachable). (Looked
    # up first: most tasks have none, and ``pop`` on the read cache's journaled map is
    # a Python call.)
    key = (rec.framework_id, rec.task_id)
    if key in core.usage:
        core.usage.pop(key, None)
    try:
        res = Resources.parse(rec.task.resources)
    except ResourceError:
        return
    core.allocator.recover(rec.framework_id, rec.task.role or "*", rec.agent_id, res)
    core.request_allocation()


def kill_task(core: MasterContext, fid: str, task_id: str, now: float,
              grace: float | None = None) -> TaskRecord | None:
    """Ask the task's agent to kill it (or say LOST of a task nobody knows)."""
    rec = core.state.task(fid, task_id)
    if rec is None:
        reply_status(core, fid, task_id, "", TaskState.LOST, "REASON_TASK_UNKNOWN",
                     "kill of a task the master does not know", now)
        return None
    if rec.terminal:
        return rec
    if rec.state == TaskState.STAGING:
        remember(core.staging_kills, (fid, task_id), None, STAGING_KILLS_LIMIT)
    drain = core.state.draining.get(rec.agent_id)
    if grace is None and drain is not None:
        grace = drain["grace"]
    if not core.send_agent(rec.agent_id, KillTask(framework_id=fid, task_id=task_id,
                                                   grace=grace)):
        log.info("kill deferred: agent not connected", task_id=task_id, agent_id=rec.agent_id)
    return rec


def reply_status(
    core: MasterContext,
    fid: str,
    task_id: str,
    agent_id: str,
    state: TaskState,
    reason: str,
    message: str,
    now: float,
    exit_code: int | None = None,
) -> None:
    """An informational update (no ack needed): reconciliation, refused launches."""
    status = TaskStatus(
        task_id=task_id, framework_id=fid, agent_id=agent_id, state=state.value, uuid="",
        timestamp=core.wall(now), source="master", reason=reason, message=message,
        exit_code=exit_code,
    )
    core.send_framework(fid, StatusUpdate(status=status))


def record_task_state(
    core: MasterContext,
    fid: str,
    task_id: str,
    state: TaskState,
    now: float,
    *,
    reason: str = "",
    message: str = "",
    exit_code: int | None = None,
) -> bool:
    """Commit a task's new state; an illegal move (by the lifecycle table of
    :mod:`mesos_zmq.tasks`) is refused, logged and not committed (False)."""
    current = core.state.task(fid, task_id)
    if current is not None:
        try:
            transition(current.state, state)
        except InvalidTransition as exc:
            core.count("illegal_transitions")
            log.warning("task state change refused", framework_id=fid, task_id=task_id,
                        error=str(exc))
            return False
    # stamped with the time commit stamps (so it need not copy the record)
    core.commit(TaskUpdated(fid, task_id, state.value, exit_code, message, reason,
                            core.wall(now)))
    return True


def master_task_update(
    core: MasterContext, rec: TaskRecord, state: TaskState, reason: str, message: str, now: float
) -> None:
    """The master decides a task's fate (agent lost...): record it, tell reliably."""
    if not record_task_state(core, rec.framework_id, rec.task_id, state, now,
                             reason=reason, message=message):
        # No caller asks for an illegal move today; one that does is a bug to see.
        log.error("master task update refused", framework_id=rec.framework_id,
                  task_id=rec.task_id, state=state.value)
        return
    if state in TERMINAL:
        release_task(core, rec)
        check_drained(core, rec.agent_id)
    _reliable_update(core, rec.framework_id, rec.task_id, rec.agent_id, state, reason,
                     message, now)


def _reliable_update(
    core: MasterContext, fid: str, task_id: str, agent_id: str, state: TaskState, reason: str,
    message: str, now: float,
) -> None:
    """An update from the master itself, resent until the framework acknowledges it."""
    status = TaskStatus(
        task_id=task_id, framework_id=fid, agent_id=agent_id, state=state.value,
        uuid=core.new_id(), timestamp=core.wall(now), source="master", reason=reason,
        message=message,
    )
    rt = core.framework_runtimes.get(fid)
    if rt is not None:
        rt.pending[status.uuid] = (status, now)
        # Durable until acknowledged, so a new leader keeps resending it.
        core.commit(UpdatePending(status=status))
    core.send_framework(fid, StatusUpdate(status=status))


def master_task_error(core: MasterContext, fid: str, task: TaskInfo, message: str,
                      now: float) -> None:
    core.count("tasks_refused")
    _reliable_update(core, fid, task.task_id, task.agent_id, TaskState.ERROR,
                     "REASON_TASK_INVALID", message, now)


#: the longest wait between resends of the master's own updates to a framework
MAX_UPDATE_RETRY = 600.0


def retry_master_updates(core: MasterContext, now: float) -> None:
    """Send again the master's own updates that their framework has not acknowledged.

    ``pending`` is kept in the order the updates were last sent, so only those due are
    looked at (an agent lost with 10,000 tasks leaves 10,000 of them). A framework that
    acknowledges none of a round is waited for twice as long before the next, up to
    MAX_UPDATE_RETRY; an acknowledgement or a re-subscription starts again from
    ``status_update_retry``.
    """
    for rt in core.framework_runtimes.values():
        if not rt.pending or rt.peer is None:
            continue
        wait = max(rt.update_retry, core.config.status_update_retry)
        sent_any = False
        while rt.pending:
            uuid, (status, sent) = next(iter(rt.pending.items()))
            if now - sent < wait:
                break  # the rest were sent later
            rt.pending[uuid] = (status, now)
            rt.pending.move_to_end(uuid)
            core.send(rt.peer, StatusUpdate(status=status))
            sent_any = True
        if sent_any:
            rt.update_retry = min(MAX_UPDATE_RETRY, wait * 2)


def drain(core: MasterContext, agent_id: str, now: float) -> None:
    """(Re)apply a drain: also after the agent re-registers or a new leader starts."""
    core.allocator.activate_agent(agent_id, False)
    runtime = core.agent_runtimes.get(agent_id)
    for offer_id in list(runtime.offers if runtime is not None else ()):
        offers.rescind(core, offer_id)
    for rec in core.state.active_tasks_on(agent_id):
        if rec.state != TaskState.UNREACHABLE:
            kill_task(core, rec.framework_id, rec.task_id, now)
    check_drained(core, agent_id)


def check_drained(core: MasterContext, agent_id: str) -> None:
    drain = core.state.draining.get(agent_id)
    if drain is None or drain["drained"]:
        return
    if not core.state.active_tasks_on(agent_id):
        core.commit(AgentDrained(agent_id=agent_id))
        log.info("agent drained", agent_id=agent_id)
