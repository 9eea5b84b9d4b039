"""The agent core: what an agent decides, with processes and sockets left outside.

Theory of operation
-------------------
The shell (:mod:`mesos_zmq.agent.server`) tells the core what happened (connected to
the master, a message arrived, a process was spawned or exited, time passed) and
carries out the returned :class:`Effects`: send messages, spawn tasks, signal
process groups, checkpoint the agent id, reconnect.

Status updates are reliable and ordered per task: each task has a FIFO of updates;
only the head is in flight; it is re-sent until the master relays the framework's
acknowledgement of that uuid, then the next one goes at once. Updates queue while the
agent is not registered and flow once ``AgentRegistered`` arrives.

Back-off (issue 13; :mod:`mesos_zmq.backoff`), as Apache Mesos's agent does it, so that
10,000 agents that lost their master together neither flood the new one nor stay in
step:

* An unacknowledged head is re-sent after waits that grow: the n-th wait is drawn
  from ``[r * 2**n, r * 2**(n+1)]`` (``r`` = ``retry_interval``, by default
  ``--status-update-retry`` = 10 s, Mesos's minimum), capped at ``retry_max``
  (10 min). A head sent for the first time (a new update, the next one after an
  acknowledgement) and every head when ``AgentRegistered`` arrives (a new master knows
  nothing of what was in flight) go at once, and their back-off starts again.
* Registration: after connecting (the first connection, a new leader, or a master
  gone silent) the first attempt waits a random time in ``[0, f]`` (``f`` =
  ``--registration-backoff-factor``, 1 s), and each later one a random time in
  ``[0, f * 2**n]``, the bound capped at a minute. ``Error(not_registered)`` starts
  the same way. The randomness comes from the ``rng`` the shell gives (seeded in
  tests and the simulator).
* A master silent for the monitor's timeout is abandoned (``Effects.reconnect``) at
  once while registered. While registering it is abandoned only when a registration
  attempt is due and the previous one went unanswered for that timeout: the attempt
  then goes on the fresh connection and the back-off goes on (it does not start
  again, or a slow master would see every agent come back at once).

Kill is SIGTERM to the task's process group, then SIGKILL after the grace period;
the escalation deadline lives here so ``tick`` can enforce it.

Timers. ``tick`` looks only at what is due: each head sent and each kill started puts
its time in a heap (:class:`_Timers`), and an entry whose task has moved on since (its
head acknowledged or sent again, its kill over) is dropped when it comes up. A tick
used to walk every task twice: an agent with thousands of tasks paid for all of them
at every turn of its loop, hundreds of times a second during a burst of launches.

Task states change only along the lifecycle table of :mod:`mesos_zmq.tasks`: a move it
forbids (a task that finished never runs again) is refused, and logged.

What a task's supervisor reports (:mod:`mesos_zmq.agent.events`) comes in through
:meth:`AgentCore.supervisor_event`.

Hostile orders. The master checks what it sends, but the agent trusts no peer
(ARCHITECTURE.md, Trust): every task of a ``run_tasks`` is held to the master's own
:func:`~mesos_zmq.master.validation.task_problem` (ids, resources parsed within their
limits and of the kinds the containerizer relies on, command, environment and kill
grace sizes) before anything about it is recorded or spawned. A task that fails is
answered ``TASK_ERROR`` (``REASON_TASK_INVALID``, saying what is wrong) and never
reaches the task log, so a bad order can neither crash the agent nor stop it from
restarting on its work dir; the other tasks of the order go ahead. An
``agent_registered`` whose heartbeat settings no monitor can use is ignored (logged):
the agent keeps its monitor and registers again. :meth:`AgentCore.handle` never
raises: a handler that fails on a message it should have refused is logged as a bug,
and what it did before failing is still returned, so checkpoints stay ahead of sends.

Recovery: every update generated, every acknowledgement and every kill started is
also returned as a checkpoint record (``Effects.checkpoint``) that the shell appends to
the task's log before anything is sent. After a restart the shell folds those logs back
(:mod:`mesos_zmq.agent.checkpoint`) and hands them to :meth:`AgentCore.recover`: the
unacknowledged updates are queued again with their original uuids, so the framework
sees each exactly once; a kill in progress is started again. What a log compaction
needs of a task comes from :meth:`AgentCore.checkpoint_view`.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import re
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from mesos_zmq.agent.events import (
    CoreRecord,
    Exited,
    Failed,
    Health,
    KillStarted,
    Started,
    SupervisorEvent,
    UpdateAcked,
    UpdateRecorded,
)
from mesos_zmq.agent.flags import (
    KILL_GRACE_PERIOD,
    REGISTRATION_BACKOFF_FACTOR,
    REGISTRATION_BACKOFF_MAX,
    STATUS_UPDATE_RETRY,
    STATUS_UPDATE_RETRY_MAX,
)
from mesos_zmq.backoff import Backoff
from mesos_zmq.heartbeat import HeartbeatMonitor, settings_problem
from mesos_zmq.master.validation import MAX_KILL_GRACE, task_problem
from mesos_zmq.protocol import (
    Acknowledge,
    AgentRegistered,
    AgentStopping,
    Error,
    Heartbeat,
    KillTask,
    Message,
    ReadFile,
    RegisterAgent,
    ReregisterAgent,
    RunTasks,
    ShutdownFramework,
    StatusUpdate,
    TaskInfo,
    TaskReport,
    TaskStatus,
    TaskUsage,
    UpdateFramework,
    UsageReport,
)
from mesos_zmq.resources import Resources
from mesos_zmq.tasks import TERMINAL, TaskState, can_transition

log = structlog.get_logger()

SIGTERM = 15
SIGKILL = 9
#: the smallest bound of the wait before a registration retry (a factor of 0 makes the
#: first attempt immediate, but retries still back off)
REGISTER_RETRY_MIN = 0.1
COMPLETED_LIMIT = 1000

_SIGNAL_NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 6: "SIGABRT",
                 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV",
                 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 24: "SIGXCPU",
                 25: "SIGXFSZ"}
_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


def safe_id(value: str) -> bool:
    """Ids become directory names: a safe alphabet, never ``.`` or ``..``."""
    return bool(_ID_RE.match(value)) and value not in (".", "..")


#: a task is named by its framework and its id: task ids are unique only within a
#: framework, so two frameworks may each run a task "web-1" on one agent
TaskKey = tuple[str, str]


def signal_name(number: int) -> str:
    return _SIGNAL_NAMES.get(number, str(number))


def registration_problem(msg: AgentRegistered) -> str | None:
    """Why the agent cannot take this answer to its registration, or None.

    Its id becomes a file and a task's environment; its heartbeat settings make the
    monitor that notices a silent master: they must be numbers it can use (a zero or
    negative interval cannot even be built, a NaN or a huge one would never expire).
    """
    if not safe_id(msg.agent_id):
        return f"agent id {msg.agent_id[:64]!r} is not a safe name"
    return settings_problem(msg.heartbeat_interval, msg.missed_heartbeats)


@dataclass(slots=True)
class _Task:
    framework_id: str
    info: TaskInfo
    state: TaskState = TaskState.STAGING
    exit_code: int | None = None
    killing: bool = False
    kill_reason: str = ""
    kill_deadline: float | None = None
    kill_grace: float | None = None
    healthy: bool | None = None
    #: pending updates, head in flight
    updates: deque[TaskStatus] = field(default_factory=deque)
    #: when the head is sent again (None: not sent on this registration yet)
    retry_at: float | None = None
    #: how many times the head was sent again since its back-off started
    retries: int = 0


class _Timers:
    """Times at which tasks are due something (a head's next send, a kill's SIGKILL),
    soonest first. Entries are never removed before they come up: each names the task
    and the time it was set for, and the caller skips those whose task no longer
    holds that time."""

    __slots__ = ("_heap", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TaskKey]] = []
        self._order = itertools.count()  # equal times come up in the order set

    def set(self, at: float, key: TaskKey) -> None:
        heapq.heappush(self._heap, (at, next(self._order), key))

    def due(self, now: float) -> list[tuple[float, TaskKey]]:
        """Take out every entry whose time has come, soonest first."""
        heap = self._heap
        out: list[tuple[float, TaskKey]] = []
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            out.append((at, key))
        return out

    def __len__(self) -> int:
        return len(self._heap)

    def rebuild(self, live: list[tuple[float, TaskKey]]) -> None:
        """Keep only ``live`` entries: those dropped when they come up pile up
        meanwhile (a head acknowledged at once leaves its retry behind for 10 s or
        more), and a burst would otherwise hold them all."""
        self._heap = [(at, next(self._order), key) for at, key in sorted(live)]


@dataclass(frozen=True, slots=True)
class RecoveredTask:
    """A task found in the agent's checkpoints after a restart."""

    framework_id: str
    info: TaskInfo
    state: str  # last state reported ("" when nothing was reported yet)
    exit_code: int | None = None
    healthy: bool | None = None
    pending: list[TaskStatus] = field(default_factory=list)
    kill_reason: str | None = None


@dataclass(frozen=True, slots=True)
class TaskView:
    """What a checkpoint of a live task needs from the core (see ``checkpoint_view``)."""

    state: str  # last state reported
    exit_code: int | None
    healthy: bool | None
    pending: tuple[TaskStatus, ...]  # updates not yet acknowledged, head first
    kill_reason: str | None  # the kill in progress, if any


@dataclass(slots=True)
class Effects:
    """What the shell must do, in this order: checkpoint, spawn, signal, send."""

    messages: list[tuple[Message, str]] = field(default_factory=list)
    launch: list[tuple[str, TaskInfo]] = field(default_factory=list)  # (framework_id, task)
    signal: list[tuple[TaskKey, int]] = field(default_factory=list)  # (task, signal number)
    read_file: list[tuple[ReadFile, str]] = field(default_factory=list)  # (request, rid)
    #: (task, record) to append to the task's log before any message is sent
    checkpoint: list[tuple[TaskKey, CoreRecord]] = field(default_factory=list)
    #: tasks whose last update was acknowledged: their checkpoints can go
    forget: list[TaskKey] = field(default_factory=list)
    #: tasks killed before they started: the shell keeps each from starting if it still
    #: can, and then tells :meth:`AgentCore.killed_unstarted`
    cancel: list[TaskKey] = field(default_factory=list)
    checkpoint_agent_id: str | None = None
    reconnect: bool = False

    def __bool__(self) -> bool:
        return bool(self.messages or self.launch or self.signal or self.read_file
                    or self.checkpoint or self.forget or self.cancel
                    or self.checkpoint_agent_id or self.reconnect)

    def extend(self, other: Effects) -> None:
        self.messages.extend(other.messages)
        self.launch.extend(other.launch)
        self.signal.extend(other.signal)
        self.read_file.extend(other.read_file)
        self.checkpoint.extend(other.checkpoint)
        self.forget.extend(other.forget)
        self.cancel.extend(other.cancel)
        self.checkpoint_agent_id = other.checkpoint_agent_id or self.checkpoint_agent_id
        self.reconnect = self.reconnect or other.reconnect


class AgentCore:
    def __init__(
        self,
        hostname: str,
        resources: Resources,
        attributes: str,
        agent_id: str | None,
        new_id: Callable[[], str],
        kill_grace: float = KILL_GRACE_PERIOD,
        retry_interval: float = STATUS_UPDATE_RETRY,
        *,
        retry_max: float = STATUS_UPDATE_RETRY_MAX,
        registration_backoff_factor: float = REGISTRATION_BACKOFF_FACTOR,
        registration_backoff_max: float = REGISTRATION_BACKOFF_MAX,
        rng: random.Random | None = None,
        instance: str = "",
    ) -> None:
        """``retry_interval``..``registration_backoff_max``: the back-off rules of the
        module docstring; ``rng``: where their jitter comes from (seed it for a replay;
        by default one seeded by the system, so that agents differ); ``instance``: the
        name of this process in its re-registrations (by default a new uuid)."""
        self.hostname = hostname
        self.resources = resources
        self.attributes = attributes
        self.agent_id = agent_id
        self._new_id = new_id
        self.kill_grace = kill_grace
        self.retry_interval = retry_interval
        self.registered = False
        self.monitor = HeartbeatMonitor(1.0, 10)
        self._rng = rng if rng is not None else random.Random()
        #: waits between sends of an unacknowledged update
        self.update_backoff = Backoff(retry_interval, max(retry_max, retry_interval))
        #: the wait before the first registration attempt on a connection...
        self.registration_backoff = Backoff(registration_backoff_factor,
                                            max(registration_backoff_max,
                                                registration_backoff_factor))
        #: ...and the waits between attempts (never bounded by less than the minimum)
        self._register_retry = Backoff(max(registration_backoff_factor, REGISTER_RETRY_MIN),
                                       max(registration_backoff_max, REGISTER_RETRY_MIN))
        #: attempts since the registration back-off started
        self._register_attempts = 0
        #: this process's (re-)registrations, numbered: the master ignores an attempt
        #: numbered below one it already took from this ``instance`` (it came late, on
        #: a connection left behind: see ``mesos_zmq.master.instances``)
        self.instance = instance or uuid.uuid4().hex
        self._attempts_sent = 0
        #: when the next registration attempt goes (None: not registering)
        self._register_due: float | None = None
        #: when the last attempt went on this connection (None: none yet)
        self._register_sent: float | None = None
        #: set when this core asked for the reconnection: the back-off goes on
        self._resume_registering = False
        self.tasks: dict[TaskKey, _Task] = {}
        #: when each head in flight is sent again, and when each kill escalates
        #: (see "Timers" in the module docstring)
        self.retry_timers = _Timers()
        self.kill_timers = _Timers()
        #: recently completed (forgotten) tasks, oldest first
        self.completed: OrderedDict[TaskKey, None] = OrderedDict()
        #: set by shutdown(): tasks that arrive afterwards are not started
        self.shutting_down = False
        #: wall clock minus ``now``'s clock (kept by the shell): update timestamps are
        #: wall-clock UTC, as frameworks and operators read them; timers use ``now``
        self.wall_offset = 0.0
        #: inbound message type -> handler(msg, request id, now, effects)
        self._inbound: dict[type[Message], Callable[[Any, str, float, Effects], None]] = {
            AgentRegistered: lambda m, rid, now, fx: self._on_registered(m, now, fx),
            Error: self._on_error,
            Heartbeat: lambda m, rid, now, fx: self._on_heartbeat(m),
            RunTasks: lambda m, rid, now, fx: self._on_run(m, now, fx),
            KillTask: self._on_kill,
            ShutdownFramework: self._on_shutdown,
            Acknowledge: lambda m, rid, now, fx: self._on_ack(m, now, fx),
            ReadFile: self._on_read,
            UpdateFramework: lambda m, rid, now, fx: fx.extend(
                self.resume_updates(m.framework_id, now)),
        }

    # ----------------------------------------------------------------- connection
    def connected(self, now: float) -> Effects:
        """A connection to a master is up (the first one, a new leader, or a fresh one
        after silence): register once the back-off says so (module docstring)."""
        self.registered = False
        self.monitor.reset(now)
        self._register_sent = None
        if self._resume_registering and self._register_due is not None:
            self._resume_registering = False  # the attempt that was due goes now
        else:
            self._start_registering(now)
        return self._register_when_due(now)

    def _start_registering(self, now: float) -> None:
        """Start the registration back-off: the first attempt within [0, factor]."""
        self._resume_registering = False
        self._register_attempts = 0
        self._register_due = now + self.registration_backoff.full_jitter(0, self._rng)

    def _register_when_due(self, now: float) -> Effects:
        """The registration attempt whose time has come, and the wait before the next."""
        if self.registered or self._register_due is None or now < self._register_due:
            return Effects()
        self._register_attempts += 1
        self._register_due = now + self._register_retry.full_jitter(self._register_attempts,
                                                                    self._rng)
        return self._register(now)

    def _register(self, now: float) -> Effects:
        fx = Effects()
        self._register_sent = now
        self.monitor.sent(now)
        self._attempts_sent += 1
        if self.agent_id is None:
            msg: Message = RegisterAgent(hostname=self.hostname, resources=str(self.resources),
                                         attributes=self.attributes, instance=self.instance,
                                         attempt=self._attempts_sent)
        else:
            reports = [
                TaskReport(task=t.info, framework_id=t.framework_id, state=t.state.value,
                           exit_code=t.exit_code)
                for t in self.tasks.values()
            ]
            msg = ReregisterAgent(agent_id=self.agent_id, hostname=self.hostname,
                                  resources=str(self.resources), attributes=self.attributes,
                                  tasks=reports, instance=self.instance,
                                  attempt=self._attempts_sent)
        fx.messages.append((msg, self._new_id()))
        return fx

    def tick(self, now: float) -> Effects:
        fx = Effects()
        if self.registered and self.monitor.expired(now):
            fx.reconnect = True  # connected() then starts registering afresh
            return fx
        if not self.registered:
            if self._abandon_connection(now):
                fx.reconnect = True
                self._resume_registering = True  # connected() sends the attempt due
                return fx
            fx.extend(self._register_when_due(now))
        else:
            # Every head was sent when the registration came (and each new head as it
            # came): what is left to do is the retries whose time has come.
            for at, key in self.retry_timers.due(now):
                task = self.tasks.get(key)
                if task is not None and task.updates and task.retry_at == at:
                    task.retries += 1
                    self._send_head(task, now, fx, retry=True)
            if self.monitor.send_due(now):
                self.monitor.sent(now)
                fx.messages.append((Heartbeat(), ""))
        for at, key in self.kill_timers.due(now):
            task = self.tasks.get(key)
            if task is not None and task.kill_deadline == at:
                task.kill_deadline = None
                fx.signal.append((key, SIGKILL))
        self._trim_timers()
        return fx

    def _trim_timers(self) -> None:
        """Drop the entries of tasks that moved on once they outnumber the tasks by
        far (a look at every task, paid for by the sends that left them behind)."""
        bound = 4 * len(self.tasks) + 1024
        if len(self.retry_timers) > bound:
            self.retry_timers.rebuild([(t.retry_at, key) for key, t in self.tasks.items()
                                       if t.updates and t.retry_at is not None])
        if len(self.kill_timers) > bound:
            self.kill_timers.rebuild([(t.kill_deadline, key) for key, t in self.tasks.items()
                                      if t.kill_deadline is not None])

    def _abandon_connection(self, now: float) -> bool:
        """While registering: a registration attempt is due, and the master has said
        nothing since the previous one, sent at least the monitor's timeout ago."""
        due = self._register_due
        sent = self._register_sent
        return (due is not None and now >= due and sent is not None
                and now - sent > self.monitor.timeout and self.monitor.expired(now))

    # ----------------------------------------------------------------- messages
    def handle(self, msg: Message, request_id: str, now: float) -> Effects:
        """One message from the master, dispatched by type (as the master and driver
        cores do); heartbeats and newer message types need no handler.

        Never raises: handlers refuse what they cannot use, and one that fails anyway
        (a bug) is logged, and its effects so far are returned. A master re-sends
        a launch it got no answer for, so an exception here would be a crash loop.
        """
        self.monitor.received(now)
        fx = Effects()
        handler = self._inbound.get(type(msg))
        if handler is not None:
            try:
                handler(msg, request_id, now, fx)
            except Exception:
                log.exception("bug: a master message could not be handled",
                              message_type=type(msg).__name__)
        return fx

    def _on_error(self, msg: Error, request_id: str, now: float, fx: Effects) -> None:
        """``not_registered``: the master does not know us (it lost or restarted
        without us): register again, with the back-off of a new master. While already
        registering, its timer suffices (a burst of these starts no burst of
        registrations)."""
        if msg.code == "not_registered" and self.registered:
            self.registered = False
            self._register_sent = None
            self._start_registering(now)
            fx.extend(self._register_when_due(now))

    def _on_kill(self, msg: KillTask, request_id: str, now: float, fx: Effects) -> None:
        reason = "REASON_TASK_KILLED" if msg.grace is None else "REASON_AGENT_DRAINING"
        cap = msg.grace
        if cap is not None and not math.isfinite(cap):
            # A NaN deadline never comes: the task would never get its SIGKILL.
            log.error("kill with a grace period that is not a number: the task's own is "
                      "used", task_id=msg.task_id[:64], grace=str(cap))
            cap = None
        elif cap is not None:
            cap = min(max(cap, 0.0), MAX_KILL_GRACE)
        self._kill((msg.framework_id, msg.task_id), now, fx, reason, grace_cap=cap)

    def _on_shutdown(self, msg: ShutdownFramework, request_id: str, now: float,
                     fx: Effects) -> None:
        for key, task in list(self.tasks.items()):
            if task.framework_id == msg.framework_id:
                self._kill(key, now, fx, "REASON_FRAMEWORK_REMOVED")

    def _on_read(self, msg: ReadFile, request_id: str, now: float, fx: Effects) -> None:
        fx.read_file.append((msg, request_id))

    def _on_registered(self, msg: AgentRegistered, now: float, fx: Effects) -> None:
        problem = registration_problem(msg)
        if problem is not None:
            # Ignored whole: the old monitor stays, and the agent registers again.
            log.error("registration answer ignored", problem=problem,
                      agent_id=msg.agent_id[:64])
            return
        if self.agent_id != msg.agent_id:
            self.agent_id = msg.agent_id
            fx.checkpoint_agent_id = msg.agent_id
        self.registered = True
        self._register_due = None
        self._register_attempts = 0
        self._resume_registering = False
        self.monitor = HeartbeatMonitor(msg.heartbeat_interval, msg.missed_heartbeats)
        self.monitor.reset(now)
        # This master may know nothing of what was in flight: every head goes now, and
        # its back-off starts again.
        for task in self.tasks.values():
            if task.updates:
                self._send_head(task, now, fx)

    def _on_heartbeat(self, msg: Heartbeat) -> None:
        """A master's heartbeat with an ``interval`` retunes ours (its cluster grew or
        shrank); one the monitor could not use is ignored, the old interval stays."""
        if not msg.interval or not self.registered or msg.interval == self.monitor.interval:
            return
        problem = settings_problem(msg.interval, self.monitor.missed)
        if problem is not None:
            log.error("heartbeat interval ignored", problem=problem)
            return
        self.monitor.interval = msg.interval

    def _on_run(self, msg: RunTasks, now: float, fx: Effects) -> None:
        """Launch each task, or refuse it with TASK_ERROR before anything about it is
        recorded (see the module docstring); the others go ahead either way."""
        for info in msg.tasks:
            key = (msg.framework_id, info.task_id)
            if key in self.tasks or key in self.completed:
                continue  # a retried launch: it already happened
            if not safe_id(info.task_id) or not safe_id(msg.framework_id):
                self._refuse(msg.framework_id, info, "task or framework id is not a safe name",
                             now, fx)
                continue
            problem = task_problem(info)
            if problem is not None:
                self._refuse(msg.framework_id, info, problem, now, fx)
                continue
            task = _Task(framework_id=msg.framework_id, info=info)
            self.tasks[key] = task
            if self.shutting_down:
                # It would be orphaned (or killed at once): say it never ran here.
                self._update(task, TaskState.LOST, now, fx, reason="REASON_AGENT_SHUTDOWN",
                             message="the agent is shutting down and starts no new task")
                continue
            fx.launch.append((msg.framework_id, info))

    def _refuse(self, framework_id: str, info: TaskInfo, problem: str, now: float,
                fx: Effects) -> None:
        """Answer a task that cannot run here with TASK_ERROR. It is kept (until the
        update is acknowledged) without its command, environment or resources: they
        are what was wrong, and a re-registration reports the task back to the master."""
        log.error("task refused", framework_id=framework_id[:64], task_id=info.task_id[:64],
                  problem=problem)
        task = _Task(framework_id=framework_id,
                     info=TaskInfo(task_id=info.task_id, agent_id=self.agent_id or "",
                                   resources=""))
        self.tasks[(framework_id, info.task_id)] = task
        self._update(task, TaskState.ERROR, now, fx, reason="REASON_TASK_INVALID",
                     message=problem)

    def _kill(self, key: TaskKey, now: float, fx: Effects,
              reason: str, grace_cap: float | None = None) -> None:
        task = self.tasks.get(key)
        if task is None:
            if key in self.completed:
                return
            framework_id, task_id = key
            ghost = _Task(framework_id=framework_id,
                          info=TaskInfo(task_id=task_id, agent_id=self.agent_id or "",
                                        resources=""))
            self.tasks[key] = ghost
            self._update(ghost, TaskState.LOST, now, fx, reason="REASON_TASK_UNKNOWN",
                         message="kill of a task this agent does not know")
            return
        if task.state in TERMINAL or task.killing:
            return
        task.killing = True
        task.kill_reason = reason
        fx.checkpoint.append((key, KillStarted(reason)))
        grace = task.info.kill_grace_period
        grace = self.kill_grace if grace is None else grace
        if grace_cap is not None:
            grace = min(grace, grace_cap)
        task.kill_grace = grace
        if task.state == TaskState.STAGING:
            # Not started yet: the shell keeps it from starting if it can (the launch is
            # still queued, or its supervisor has not begun it); if not, task_spawned
            # sees `killing` and stops it.
            fx.cancel.append(key)
            return
        fx.signal.append((key, SIGTERM))
        task.kill_deadline = now + grace
        self.kill_timers.set(task.kill_deadline, key)

    def _on_ack(self, msg: Acknowledge, now: float, fx: Effects) -> None:
        key = (msg.framework_id, msg.task_id)
        task = self.tasks.get(key)
        if task is None or not task.updates or task.updates[0].uuid != msg.uuid:
            return
        task.updates.popleft()
        task.retry_at = None
        task.retries = 0
        fx.checkpoint.append((key, UpdateAcked(msg.uuid)))
        if task.updates:
            self._send_head(task, now, fx)
        elif task.state in TERMINAL:
            del self.tasks[key]
            fx.forget.append(key)
            self.completed[key] = None
            while len(self.completed) > COMPLETED_LIMIT:
                self.completed.popitem(last=False)

    # ----------------------------------------------------------------- processes
    def supervisor_event(self, key: TaskKey, event: SupervisorEvent, now: float, *,
                         oom: bool = False) -> Effects:
        """What the task's supervisor recorded; ``oom`` when the shell found that the
        memory limit ended the task (for an exit the supervisor could not tell)."""
        if isinstance(event, Started):
            return self.task_spawned(key, now)
        if isinstance(event, Failed):
            return self.spawn_failed(key, event.error, now)
        if isinstance(event, Health):
            return self.task_health(key, event.healthy, event.message, now)
        if isinstance(event, Exited):
            return self.task_exited(key, event.exit_code, event.signal, now,
                                    oom=not event.killed and not event.disk
                                    and (event.oom or oom),
                                    killed=event.killed, disk=event.disk)
        return Effects()  # Supervising, or a kind this agent does not know

    def task_spawned(self, key: TaskKey, now: float) -> Effects:
        fx = Effects()
        task = self.tasks.get(key)
        if task is None or not self._update(task, TaskState.RUNNING, now, fx):
            return fx
        if task.killing:
            task.killing = False
            self._kill(key, now, fx, task.kill_reason, grace_cap=task.kill_grace)
        return fx

    def spawn_failed(self, key: TaskKey, error: str, now: float) -> Effects:
        """The task did not start: failed, or killed if a kill was asked meanwhile (the
        shell wrote it off for the kill: see :meth:`killed_unstarted`)."""
        fx = Effects()
        task = self.tasks.get(key)
        if task is not None and task.killing:
            self._update(task, TaskState.KILLED, now, fx, reason=self._launch_kill_reason(task),
                         message=f"killed before it was started ({error})")
        elif task is not None:
            self._update(task, TaskState.FAILED, now, fx,
                         reason="REASON_COMMAND_EXECUTOR_FAILED",
                         message=f"failed to start the task: {error}")
        return fx

    def killed_unstarted(self, key: TaskKey, now: float) -> Effects:
        """A task killed while its launch was still queued here, taken off the queue:
        ``TASK_KILLED``, never started (Mesos: ``REASON_TASK_KILLED_DURING_LAUNCH``)."""
        fx = Effects()
        task = self.tasks.get(key)
        if task is not None and task.state == TaskState.STAGING and task.killing:
            self._update(task, TaskState.KILLED, now, fx, reason=self._launch_kill_reason(task),
                         message="killed before it was started")
        return fx

    @staticmethod
    def _launch_kill_reason(task: _Task) -> str:
        """The reason of a kill that came before the start: the kill's own, but for a
        plain kill, which Mesos reports as killed during launch."""
        if task.kill_reason == "REASON_TASK_KILLED":
            return "REASON_TASK_KILLED_DURING_LAUNCH"
        return task.kill_reason

    def task_exited(self, key: TaskKey, exit_code: int | None, signal: int | None,
                    now: float, *, oom: bool = False, killed: str = "",
                    disk: str = "") -> Effects:
        """The task ended; ``oom`` when its memory limit killed it, ``killed`` when its
        supervisor did (a failing health check), ``disk`` when its supervisor did for
        outgrowing its disk (what it measured). A limit that ended the task is what
        failed it, even during a kill: the framework learns why it is gone."""
        fx = Effects()
        task = self.tasks.get(key)
        if task is None or task.state in TERMINAL:
            return fx
        task.kill_deadline = None
        code_of = 128 + signal if signal is not None else exit_code
        if disk:
            self._update(task, TaskState.FAILED, now, fx,
                         reason="REASON_CONTAINER_LIMITATION_DISK", message=disk,
                         exit_code=code_of)
            return fx
        if oom:
            self._update(task, TaskState.FAILED, now, fx,
                         reason="REASON_CONTAINER_LIMITATION_MEMORY",
                         message="memory limit exceeded: the task was killed by the OOM killer",
                         exit_code=code_of)
            return fx
        if killed:
            task.healthy = False
            self._update(task, TaskState.KILLED, now, fx,
                         reason="REASON_TASK_HEALTH_CHECK_STATUS_UPDATED", message=killed,
                         exit_code=code_of)
            return fx
        if signal is not None:
            code = 128 + signal
            message = f"Command terminated with signal {signal_name(signal)}"
            if task.killing:
                self._update(task, TaskState.KILLED, now, fx, reason=task.kill_reason,
                             message=message, exit_code=code)
            else:
                self._update(task, TaskState.FAILED, now, fx,
                             reason="REASON_COMMAND_EXECUTOR_FAILED", message=message,
                             exit_code=code)
            return fx
        code = exit_code if exit_code is not None else 0
        message = f"Command exited with status {code}"
        if task.killing:
            self._update(task, TaskState.KILLED, now, fx, reason=task.kill_reason,
                         message=message, exit_code=code)
        elif code == 0:
            self._update(task, TaskState.FINISHED, now, fx, message=message, exit_code=0)
        else:
            self._update(task, TaskState.FAILED, now, fx,
                         reason="REASON_COMMAND_EXECUTOR_FAILED", message=message,
                         exit_code=code)
        return fx

    def task_health(self, key: TaskKey, healthy: bool, message: str, now: float) -> Effects:
        """A health check result worth reporting (first result, or a change)."""
        fx = Effects()
        task = self.tasks.get(key)
        if task is None or task.state != TaskState.RUNNING:
            return fx
        task.healthy = healthy
        self._update(task, TaskState.RUNNING, now, fx,
                     reason="REASON_TASK_HEALTH_CHECK_STATUS_UPDATED", message=message)
        return fx

    def supervisor_lost(self, key: TaskKey, now: float) -> Effects:
        """The task's supervisor died without recording how the task ended."""
        fx = Effects()
        task = self.tasks.get(key)
        if task is None or task.state in TERMINAL:
            return fx
        task.kill_deadline = None
        if task.killing:
            self._update(task, TaskState.KILLED, now, fx, reason=task.kill_reason,
                         message="the task's supervisor ended while it was being killed")
        else:
            self._update(task, TaskState.FAILED, now, fx, reason="REASON_EXECUTOR_TERMINATED",
                         message="the task's supervisor died; the task was killed")
        return fx

    def recover(self, tasks: list[RecoveredTask], now: float) -> Effects:
        """Take back the tasks checkpointed before a restart (before registering)."""
        fx = Effects()
        for rt in tasks:
            state = TaskState(rt.state) if rt.state else TaskState.STAGING
            key = (rt.framework_id, rt.info.task_id)
            task = _Task(framework_id=rt.framework_id, info=rt.info, state=state,
                         exit_code=rt.exit_code, healthy=rt.healthy,
                         updates=deque(rt.pending))
            self.tasks[key] = task
            if state in TERMINAL and not task.updates:
                del self.tasks[key]
                fx.forget.append(key)
                continue
            if rt.kill_reason is not None and state not in TERMINAL:
                if state == TaskState.STAGING:
                    task.killing = True
                    task.kill_reason = rt.kill_reason
                else:
                    self._kill(key, now, fx, rt.kill_reason)
        return fx

    def resume_updates(self, framework_id: str, now: float) -> Effects:
        """Send the unacknowledged head of each of ``framework_id``'s tasks at once, and
        start its back-off again: that framework's scheduler is back (it failed over),
        and a back-off grown to minutes would keep from it what it missed meanwhile.

        Mesos's agent does this when its master tells it of a framework's failover
        (``UpdateFrameworkMessage``); here, :class:`UpdateFramework`. Nothing while not
        registered (registration sends every head anyway)."""
        fx = Effects()
        if not self.registered:
            return fx
        for task in self.tasks.values():
            if task.framework_id == framework_id and task.updates:
                self._send_head(task, now, fx)
        return fx

    def report_usage(self, usage: dict[TaskKey, tuple[float, int, int]]) -> Effects:
        """Tell the master what running tasks use: task -> (cpu s, rss, peak)."""
        fx = Effects()
        if not self.registered or self.agent_id is None:
            return fx
        entries = [TaskUsage(framework_id=key[0], task_id=key[1],
                             cpu_seconds=cpu, rss_bytes=rss, peak_bytes=peak)
                   for key, (cpu, rss, peak) in usage.items()
                   if (task := self.tasks.get(key)) is not None
                   and task.state not in TERMINAL]
        if entries:
            fx.messages.append((UsageReport(agent_id=self.agent_id, tasks=entries), ""))
        return fx

    def shutdown(self, now: float) -> Effects:
        """Kill every task (the agent is going away for good) and start no new one."""
        fx = Effects()
        self.shutting_down = True
        for key in list(self.tasks):
            self._kill(key, now, fx, "REASON_AGENT_SHUTDOWN")
        return fx

    def stopping(self, reason: str) -> Effects:
        """The agent is about to exit on purpose: tell the master at once, so that it
        offers nothing more here and sends no task until this agent is back (waiting
        for missed heartbeats would leave ~10 s of launches into the void)."""
        fx = Effects()
        if self.registered and self.agent_id is not None:
            fx.messages.append((AgentStopping(agent_id=self.agent_id, reason=reason), ""))
        self.registered = False
        self.shutting_down = True
        return fx

    def running_tasks(self) -> list[TaskKey]:
        return [key for key, t in self.tasks.items() if t.state not in TERMINAL]

    def knows(self, key: TaskKey) -> bool:
        """Whether the task is here or recently completed here."""
        return key in self.tasks or key in self.completed

    def is_terminal(self, key: TaskKey) -> bool:
        task = self.tasks.get(key)
        return task is None or task.state in TERMINAL

    def checkpoint_view(self, key: TaskKey) -> TaskView | None:
        """What a compacted checkpoint must keep of the task (None: not here)."""
        task = self.tasks.get(key)
        if task is None:
            return None
        return TaskView(state=task.state.value, exit_code=task.exit_code,
                        healthy=task.healthy, pending=tuple(task.updates),
                        kill_reason=task.kill_reason if task.killing else None)

    # ----------------------------------------------------------------- updates
    def _update(self, task: _Task, state: TaskState, now: float, fx: Effects, *,
                reason: str = "", message: str = "", exit_code: int | None = None) -> bool:
        """Move the task to ``state`` and report it; False (nothing changed) when the
        lifecycle forbids the move."""
        if not can_transition(task.state, state):
            log.warning("illegal task state change refused", task_id=task.info.task_id,
                        framework_id=task.framework_id, state=task.state.value,
                        refused=state.value, reason=reason)
            return False
        task.state = state
        task.exit_code = exit_code
        status = TaskStatus(
            task_id=task.info.task_id, framework_id=task.framework_id,
            agent_id=self.agent_id or "", state=state.value, uuid=self._new_id(),
            timestamp=now + self.wall_offset, source="agent", reason=reason, message=message,
            exit_code=exit_code, healthy=task.healthy,
        )
        task.updates.append(status)
        fx.checkpoint.append(((task.framework_id, task.info.task_id),
                              UpdateRecorded(status)))
        if len(task.updates) == 1 and self.registered:
            self._send_head(task, now, fx)
        return True

    def _send_head(self, task: _Task, now: float, fx: Effects, retry: bool = False) -> None:
        """Send the head update; unless this is a ``retry``, its back-off starts again
        (a new head, or a registration). The wait before the next send grows from
        ``retry_interval`` (see :meth:`Backoff.floored_jitter`)."""
        head = task.updates[0]
        if not head.agent_id and self.agent_id:
            head = replace(head, agent_id=self.agent_id)
            task.updates[0] = head
        if not retry:
            task.retries = 0
        task.retry_at = now + self.update_backoff.floored_jitter(task.retries, self._rng)
        self.retry_timers.set(task.retry_at, (task.framework_id, task.info.task_id))
        fx.messages.append((StatusUpdate(status=head), ""))
        # A sign of life to the master as good as a heartbeat (its monitor counts every
        # message): the next heartbeat is due an interval from now.
        self.monitor.sent(now)
