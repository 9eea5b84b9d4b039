"""Liveness: heartbeats, lost peers, deadlines, and removing agents and frameworks.

A service of the master core seen as a :class:`~mesos_zmq.master.context.MasterContext`
(the core's ``tick`` runs :func:`check_peers` and :func:`check_deadlines`; handlers
remove a framework that tears itself down), below the handlers.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

import structlog

from mesos_zmq.heartbeat import HeartbeatMonitor
from mesos_zmq.master import instances, offers, task_book
from mesos_zmq.master.records import AgentRemoved, FrameworkRemoved
from mesos_zmq.master.runtime import AgentRuntime, FrameworkRuntime, Peer
from mesos_zmq.protocol import Heartbeat, ShutdownFramework
from mesos_zmq.tasks import TaskState

if TYPE_CHECKING:
    from mesos_zmq.master.context import MasterContext

log = structlog.get_logger()
#: frameworks with this capability hear TASK_UNREACHABLE rather than TASK_LOST
PARTITION_AWARE = "PARTITION_AWARE"


#: the one heartbeat the master sends (frozen): the shell encodes it once per flush
HEARTBEAT = Heartbeat()


def check_peers(core: MasterContext, now: float, heard_until: float | None = None) -> None:
    """Heartbeat every peer that is due one; a silent one is lost.

    Only peers whose next heartbeat or expiry has come are looked at (a heap of due
    times), so a tick costs nothing for the thousands of peers not yet due. An entry is
    a lower bound: a peer heard from since is looked at, found alive, and put back at
    its new due time.

    Silence is judged at ``heard_until`` (default ``now``), the last moment the master
    had read all that had arrived: a heartbeat still queued unread is not a silence.
    """
    judged = now if heard_until is None else heard_until
    timers = core.peer_timers
    due = []
    while timers and timers[0][0] <= now:
        due.append(heapq.heappop(timers))
    for _, _, peer, info in due:
        if core.peers.get(peer) is not info:
            continue  # unbound, or bound anew (with an entry of its own)
        monitor = info.monitor
        if monitor.expired(judged):
            _peer_lost(core, peer, info, now)
            continue
        wanted = core.agent_beat_interval() if info.kind == "agent" else monitor.interval
        if wanted != monitor.interval:
            _retune(core, peer, monitor, wanted, now)
        elif monitor.send_due(now):
            monitor.sent(now)
            core.send(peer, HEARTBEAT)
        again = min(monitor.last_sent + monitor.interval,
                    monitor.last_received + monitor.timeout)
        # behind on reading, an expiry already past is looked at again a little later
        core.schedule_peer(peer, info, again if again > now else now + monitor.interval / 4)


def _retune(core: MasterContext, peer: bytes, monitor: HeartbeatMonitor, interval: float,
            now: float) -> None:
    """Tell an agent the interval it beats at from now on (the cluster grew or shrank).

    The master's monitor takes the new interval at once. Longer, it is only more
    lenient. Shorter, the agent beat at the old one until it hears this: its silence is
    counted from now, so it is not lost for beats it was never asked to send sooner.
    """
    if interval < monitor.interval:
        monitor.received(now)
    monitor.interval = interval
    monitor.sent(now)
    core.send(peer, Heartbeat(interval=interval))
    core.count("agent_heartbeat_retunes")


def _peer_lost(core: MasterContext, peer: bytes, info: Peer, now: float) -> None:
    core.unbind_peer(peer)
    if info.kind == "agent":
        log.warning("agent missed heartbeats", agent_id=info.id)
        remove_agent(core, info.id, "agent missed its heartbeats", now)
    else:
        _framework_disconnected(core, info.id, now)


def _framework_disconnected(core: MasterContext, fid: str, now: float) -> None:
    info = core.state.frameworks.get(fid)
    rt = core.framework_runtimes.get(fid)
    if info is None or rt is None:
        return
    rt.peer = None
    for offer_id in list(rt.offers):
        offers.remove_offer(core, offer_id)
    core.allocator.activate_framework(fid, False)
    rt.deadline = now + info.failover_timeout
    core.schedule_deadline("framework", fid, rt.deadline)
    log.warning("framework disconnected", framework_id=fid,
                failover_timeout=info.failover_timeout)


def check_deadlines(core: MasterContext, now: float, heard_until: float | None = None
                    ) -> None:
    """Remove what stayed away too long: frameworks past their failover timeout,
    agents past their re-registration (or planned stop) deadline.

    Whoever sets a deadline also schedules a reminder (``schedule_deadline``); only
    reminders whose time has come are looked at, against the runtime as it is now (a
    deadline cleared or moved since makes the reminder a no-op), so a tick costs
    nothing for the agents and frameworks that are connected.

    As silence (:func:`check_peers`), a deadline is judged at ``heard_until`` (default
    ``now``): a scheduler that failed over in time, whose subscription is still unread
    (a backlog; a master that stood still), is not removed for it.
    """
    judged = now if heard_until is None else min(now, heard_until)
    timers = core.deadline_timers
    due = []
    while timers and timers[0][0] <= judged:
        due.append(heapq.heappop(timers))
    for _, _, kind, ident in due:
        if kind == "agent":
            art = core.agent_runtimes.get(ident)
            if (art is not None and art.peer is None and art.deadline is not None
                    and art.deadline <= judged):
                remove_agent(core, ident, art.away, now)
            continue
        rt = core.framework_runtimes.get(ident)
        if rt is None or rt.peer is not None:
            continue
        if kind == "offers":
            if rt.offers_until is not None and rt.offers_until <= judged:
                # Recovered from the log and not back: its offers go back to the pool.
                rt.offers_until = None
                for offer_id in list(rt.offers):
                    offers.remove_offer(core, offer_id)
        elif rt.deadline is not None and rt.deadline <= judged:
            remove_framework(core, ident, "framework failover timeout elapsed", now)


def remove_agent(core: MasterContext, agent_id: str, why: str, now: float) -> None:
    """The agent is gone: its tasks become UNREACHABLE (partition-aware frameworks)
    or LOST, its offers are rescinded."""
    if agent_id not in core.state.agents:
        return
    rt = core.agent_runtimes.pop(agent_id, AgentRuntime())
    if rt.peer is not None:
        core.peers.pop(rt.peer, None)
    instances.forget(core, "agent", agent_id, rt)
    for offer_id in list(rt.offers):
        offers.rescind(core, offer_id)
    for rec in core.state.active_tasks_on(agent_id):
        if rec.state == TaskState.UNREACHABLE:
            continue
        if partition_aware(core, rec.framework_id):
            # It may well still run: say so, and free its resources until it is back.
            task_book.master_task_update(core, rec, TaskState.UNREACHABLE,
                                         "REASON_AGENT_UNREACHABLE", why, now)
            task_book.release_task(core, rec)
        else:
            task_book.master_task_update(core, rec, TaskState.LOST,
                                         "REASON_AGENT_REMOVED", why, now)
    core.commit(AgentRemoved(agent_id=agent_id, reason=why))
    core.allocator.remove_agent(agent_id)
    log.warning("agent removed", agent_id=agent_id, reason=why)


def partition_aware(core: MasterContext, fid: str) -> bool:
    """Whether the framework hears TASK_UNREACHABLE rather than TASK_LOST."""
    info = core.state.frameworks.get(fid)
    return info is not None and PARTITION_AWARE in info.capabilities


def remove_framework(core: MasterContext, fid: str, why: str, now: float) -> None:
    """Forget a framework: its tasks are killed, its agents told to shut it down."""
    if fid not in core.state.frameworks:
        return
    rt = core.framework_runtimes.pop(fid, FrameworkRuntime())
    instances.forget(core, "framework", fid, rt)
    for offer_id in list(rt.offers):
        offers.remove_offer(core, offer_id)
    agents: set[str] = set()
    for rec in core.state.active_tasks_of(fid):
        agents.add(rec.agent_id)
        task_book.record_task_state(core, fid, rec.task_id, TaskState.KILLED, now,
                                    reason="REASON_FRAMEWORK_REMOVED", message=why)
        task_book.release_task(core, rec)
    for agent_id in agents:
        core.send_agent(agent_id, ShutdownFramework(framework_id=fid))
    core.commit(FrameworkRemoved(framework_id=fid, reason=why))
    if rt.peer is not None:
        core.peers.pop(rt.peer, None)
    core.allocator.remove_framework(fid)
    log.info("framework removed", framework_id=fid, reason=why)
