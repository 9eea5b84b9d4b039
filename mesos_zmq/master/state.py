"""The master's durable state and the records that change it.

Every durable change is a typed record (:mod:`mesos_zmq.master.records`). The core
never mutates durable state directly: it builds a record, applies it here, and hands
it to the shell for the log. Recovery replays the same records through the same
:meth:`MasterState.apply`, so the live path and the replay path cannot disagree.

What lives here is what must survive a master restart: frameworks, agents, tasks and
their last known states, role weights. Connections, offers and timers are the core's
runtime business and are rebuilt when peers reconnect.

Completed-task history
----------------------
Finished tasks are remembered, newest last, within :class:`HistoryLimits` (flags of
the same names in :mod:`mesos_zmq.master.flags`): at most ``per_framework`` per
framework and ``total`` in all (the oldest are forgotten first), none older than
``age`` seconds, and of removed frameworks only the newest ``frameworks`` keep theirs.
Trimming is part of :meth:`MasterState.apply`, so the log replays to the same history:
counts are trimmed when a task ends, ages whenever a record with a ``time`` is applied
(the record's own wall-clock time: the state has no clock), removed frameworks' tasks
when a framework is removed. A snapshot holds what is left; restoring it under the
same limits keeps all of it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from mesos_zmq.bounded import remember
from mesos_zmq.errors import LogError
from mesos_zmq.master import flags
from mesos_zmq.master import records as r
from mesos_zmq.master.records import PlainRecord, StateRecord, fast_init, record_from_plain
from mesos_zmq.protocol import FrameworkInfo, TaskInfo, TaskStatus, from_plain, to_plain
from mesos_zmq.tasks import TERMINAL, TaskState, task_state

#: a record as the log holds it (a map with an ``op`` tag)

#: How many removed framework and agent ids the master remembers (their ids stay
#: refused, and owned, while remembered).
REMOVED_LIMIT = 1_000
#: scheduler processes remembered as failed over from (see MasterState.failed_over)
FAILED_OVER_LIMIT = 4_096
#: how many applied request ids are remembered for deduplication
REQUESTS_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class HistoryLimits:
    """How much completed-task history the state keeps (see the module docstring);
    defaults are the master flags' (``--max-completed-tasks-per-framework``,
    ``--max-completed-tasks``, ``--max-completed-task-age``,
    ``--max-completed-frameworks``)."""

    per_framework: int = flags.MAX_COMPLETED_TASKS_PER_FRAMEWORK
    total: int = flags.MAX_COMPLETED_TASKS
    #: seconds, against the wall-clock times of the records applied
    age: float = flags.MAX_COMPLETED_TASK_AGE
    #: removed frameworks (the newest) whose completed tasks are kept
    frameworks: int = flags.MAX_COMPLETED_FRAMEWORKS


@dataclass(frozen=True, slots=True)
class AgentRecord:
    agent_id: str
    hostname: str
    resources: str
    attributes: str
    registered_at: float


@fast_init  # built at every change of a task's state (see records.fast_init)
@dataclass(frozen=True, slots=True)
class TaskRecord:
    framework_id: str
    task: TaskInfo
    state: TaskState
    updated_at: float
    exit_code: int | None = None
    message: str = ""
    reason: str = ""

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def agent_id(self) -> str:
        return self.task.agent_id

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


TaskKey = tuple[str, str]  # (framework_id, task_id)



class MasterState:
    """Frameworks, agents and tasks, changed only through :meth:`apply`."""

    def __init__(self, history: HistoryLimits | None = None) -> None:
        self.history = history if history is not None else HistoryLimits()
        self.frameworks: dict[str, FrameworkInfo] = {}
        self.removed_frameworks: OrderedDict[str, float] = OrderedDict()
        self.agents: dict[str, AgentRecord] = {}
        self.removed_agents: OrderedDict[str, float] = OrderedDict()
        self.tasks: dict[TaskKey, TaskRecord] = {}
        #: finished tasks, in the order they ended (see "Completed-task history")
        self.completed: OrderedDict[TaskKey, TaskRecord] = OrderedDict()
        # Secondary index of ``completed``: framework id -> its keys, in the same order.
        self._completed_of: dict[str, OrderedDict[TaskKey, None]] = {}
        # The removed frameworks whose completed tasks are kept: the newest
        # ``history.frameworks`` of ``removed_frameworks`` (derived, never logged).
        self._kept_removed: set[str] = set()
        self.weights: dict[str, float] = {}
        #: role -> (guarantee text, limit text)
        self.quotas: dict[str, tuple[str, str]] = {}
        #: agent id -> its dynamic reservations (resource text, reserved form)
        self.reservations: dict[str, str] = {}
        #: outstanding offers, so that a new leader honours what the old one offered:
        #: offer id -> {framework_id, agent_id, role, resources}
        self.offers: dict[str, dict[str, str]] = {}
        #: decline filters: (framework_id, agent_id) -> refuse seconds (latest one wins)
        self.filters: dict[tuple[str, str], float] = {}
        #: updates the master itself sent (LOST on agent loss...) awaiting an ack, by uuid
        self.pending_updates: dict[str, TaskStatus] = {}
        #: request ids of accepts already applied, so a retry has no second effect
        self.requests_done: OrderedDict[str, None] = OrderedDict()
        # Secondary index: agent_id -> keys of its active tasks.
        self.tasks_by_agent: dict[str, set[TaskKey]] = {}
        #: framework id -> keys of its active tasks, in the order of ``tasks`` (a dict:
        #: the order commits follow must not depend on hashing); a framework's
        #: re-subscription, implicit reconciliation and removal looked at every task
        self.tasks_by_framework: dict[str, dict[TaskKey, None]] = {}
        #: agents being drained: agent id -> {"grace", "drained", "since"}
        self.draining: dict[str, dict[str, Any]] = {}
        #: (kind, id) -> the principal that created that framework or agent id
        self.owners: dict[tuple[str, str], str] = {}
        #: framework id -> the scheduler process (``instance``) driving it, and the
        #: (framework id, instance) of processes it failed over from, oldest first
        #: (bounded): see master.instances
        self.schedulers: dict[str, str] = {}
        self.failed_over: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._ops: dict[type[Any], Callable[[Any], None]] = {
            r.FrameworkAdded: self._framework_added,
            r.FrameworkRemoved: self._framework_removed,
            r.AgentAdded: self._agent_added,
            r.AgentRemoved: self._agent_removed,
            r.AgentDraining: self._agent_draining,
            r.AgentDrained: self._agent_drained,
            r.AgentReactivated: self._agent_reactivated,
            r.TaskAdded: self._task_added,
            r.TaskUpdated: self._task_updated,
            r.WeightsSet: self._weights_set,
            r.QuotaSet: self._quota_set,
            r.QuotaRemoved: self._quota_removed,
            r.ReservationsSet: self._reservations_set,
            r.OfferMade: self._offer_made,
            r.OfferRemoved: self._offer_removed,
            r.RequestDone: self._request_done,
            r.UpdatePending: self._update_pending,
            r.FilterSet: self._filter_set,
            r.FiltersCleared: self._filters_cleared,
            r.OwnerSet: self._owner_set,
            r.SchedulerChanged: self._scheduler_changed,
            r.UpdateAcked: self._update_acked,
        }

    # ----------------------------------------------------------------- apply
    def apply(self, record: StateRecord) -> None:
        """Apply one typed record (what is read back from a log is decoded first, by
        :func:`replay`)."""
        self._ops[type(record)](record)
        when = getattr(record, "time", None)
        if when and self.completed:
            self._expire_completed(when)

    def _framework_added(self, record: r.FrameworkAdded) -> None:
        info = record.framework
        self.frameworks[info.framework_id] = info
        if self.removed_frameworks.pop(info.framework_id, None) is not None:
            self._keep_removed_history()

    def _framework_removed(self, record: r.FrameworkRemoved) -> None:
        framework_id = record.framework_id
        self.frameworks.pop(framework_id, None)
        for uuid in [u for u, s in self.pending_updates.items()
                     if s.framework_id == framework_id]:
            del self.pending_updates[uuid]
        for key in [k for k in self.filters if k[0] == framework_id]:
            del self.filters[key]
        self.removed_frameworks[framework_id] = record.time
        if self.schedulers.pop(framework_id, None) is not None:
            for key in [k for k in self.failed_over if k[0] == framework_id]:
                del self.failed_over[key]
        while len(self.removed_frameworks) > REMOVED_LIMIT:
            gone, _ = self.removed_frameworks.popitem(last=False)
            self.owners.pop(("framework", gone), None)
        self._keep_removed_history(framework_id)

    def _keep_removed_history(self, just_removed: str = "") -> None:
        """Recompute which removed frameworks keep their completed tasks (the newest
        ``history.frameworks``); the others lose them (one added again is no longer
        removed: it keeps them)."""
        removed = self.removed_frameworks
        kept = set(islice(reversed(removed), self.history.frameworks))
        losing = self._kept_removed - kept
        if just_removed and just_removed not in kept:
            losing.add(just_removed)
        for framework_id in losing:
            if framework_id in removed:
                for key in self._completed_of.pop(framework_id, {}):
                    del self.completed[key]
        self._kept_removed = kept

    def _agent_added(self, record: r.AgentAdded) -> None:
        agent = AgentRecord(
            agent_id=record.agent_id,
            hostname=record.hostname,
            resources=record.resources,
            attributes=record.attributes,
            registered_at=record.time,
        )
        self.agents[agent.agent_id] = agent
        self.removed_agents.pop(agent.agent_id, None)
        self.tasks_by_agent.setdefault(agent.agent_id, set())

    def _agent_draining(self, record: r.AgentDraining) -> None:
        self.draining[record.agent_id] = {"grace": record.grace, "drained": False,
                                          "since": record.time}

    def _agent_drained(self, record: r.AgentDrained) -> None:
        drain = self.draining.get(record.agent_id)
        if drain is not None:
            drain["drained"] = True

    def _agent_reactivated(self, record: r.AgentReactivated) -> None:
        self.draining.pop(record.agent_id, None)

    def _agent_removed(self, record: r.AgentRemoved) -> None:
        agent_id = record.agent_id
        self.agents.pop(agent_id, None)
        for key in [k for k in self.filters if k[1] == agent_id]:
            del self.filters[key]
        self.removed_agents[agent_id] = record.time
        # the owner stays while the id is remembered: a removed agent's id is not
        # free for another principal to re-register under
        while len(self.removed_agents) > REMOVED_LIMIT:
            gone, _ = self.removed_agents.popitem(last=False)
            self.owners.pop(("agent", gone), None)

    def _task_added(self, record: r.TaskAdded) -> None:
        task = record.task
        key = (record.framework_id, task.task_id)
        state = task_state(record.state)
        self._forget_completed(key)
        rec = TaskRecord(record.framework_id, task, state, record.time)
        if rec.terminal:
            self._complete(key, rec)
        else:
            before = self.tasks.get(key)
            if before is not None and before.agent_id != task.agent_id:
                # (never logged by this master: a task id is refused while active)
                self.tasks_by_agent.get(before.agent_id, set()).discard(key)
            self.tasks[key] = rec
            self.tasks_by_agent.setdefault(task.agent_id, set()).add(key)
            self.tasks_by_framework.setdefault(record.framework_id, {})[key] = None

    def _task_updated(self, record: r.TaskUpdated) -> None:
        key = (record.framework_id, record.task_id)
        current = self.tasks.get(key) or self.completed.get(key)
        if current is None:
            return
        # the constructor, not ``dataclasses.replace``: a map of every field built and
        # unpacked cost twice as much, on each of a task's updates
        updated = TaskRecord(
            current.framework_id, current.task, task_state(record.state),
            record.time if record.time is not None else current.updated_at,
            record.exit_code, record.message, record.reason,
        )
        if updated.terminal:
            self.tasks.pop(key, None)
            keys = self.tasks_by_agent.get(updated.agent_id)
            if keys is not None:
                keys.discard(key)
            of_framework = self.tasks_by_framework.get(updated.framework_id)
            if of_framework is not None:
                of_framework.pop(key, None)
                if not of_framework:
                    del self.tasks_by_framework[updated.framework_id]
            self._complete(key, updated)
        else:
            self._forget_completed(key)
            tasks = self.tasks
            indexed = key in tasks  # (an update does not move a task: indexed as it is)
            tasks[key] = updated
            if not indexed:
                self.tasks_by_agent.setdefault(updated.agent_id, set()).add(key)
                self.tasks_by_framework.setdefault(updated.framework_id, {})[key] = None

    def _complete(self, key: TaskKey, rec: TaskRecord) -> None:
        """Remember a finished task (newest last), within the history's limits."""
        framework_id = rec.framework_id
        if framework_id in self.removed_frameworks and framework_id not in self._kept_removed:
            self._forget_completed(key)  # a long-removed framework keeps no history
            return
        limits = self.history
        completed = self.completed
        # A key new to a map goes to its end: it is moved there only if it was in it
        # already (a move of a new key changed nothing, but cost a call, and one more
        # note in the read cache's journal, at each task's end).
        again = key in completed
        completed[key] = rec
        if again:
            completed.move_to_end(key)
        mine = self._completed_of.get(framework_id)
        if mine is None:
            mine = self._completed_of[framework_id] = OrderedDict()
        if key in mine:
            mine.move_to_end(key)
        else:
            mine[key] = None
        while len(mine) > limits.per_framework:
            old, _ = mine.popitem(last=False)
            del completed[old]
        if not mine:
            del self._completed_of[framework_id]
        while len(completed) > limits.total:
            old, _ = completed.popitem(last=False)
            self._unindex_completed(old)

    def _expire_completed(self, now: float) -> None:
        """Forget finished tasks that ended more than ``history.age`` seconds before
        ``now`` (a record's time), oldest first."""
        cutoff = now - self.history.age
        completed = self.completed
        while completed:
            key, rec = next(iter(completed.items()))
            if rec.updated_at >= cutoff:
                return
            del completed[key]
            self._unindex_completed(key)

    def _forget_completed(self, key: TaskKey) -> None:
        # looked up first: at each launch and update of an active task the key is not
        # there, and ``pop`` on the read cache's journaled map is a Python call
        if key in self.completed:
            del self.completed[key]
            self._unindex_completed(key)

    def _unindex_completed(self, key: TaskKey) -> None:
        mine = self._completed_of.get(key[0])
        if mine is not None:
            mine.pop(key, None)
            if not mine:
                del self._completed_of[key[0]]

    def _weights_set(self, record: r.WeightsSet) -> None:
        self.weights.update({str(k): float(v) for k, v in record.weights.items()})

    def _quota_set(self, record: r.QuotaSet) -> None:
        self.quotas[record.role] = (record.guarantee, record.limit)

    def _quota_removed(self, record: r.QuotaRemoved) -> None:
        self.quotas.pop(record.role, None)

    def _offer_made(self, record: r.OfferMade) -> None:
        self.offers[record.offer_id] = {
            "framework_id": record.framework_id, "agent_id": record.agent_id,
            "role": record.role, "resources": record.resources,
        }

    def _offer_removed(self, record: r.OfferRemoved) -> None:
        self.offers.pop(record.offer_id, None)

    def _filter_set(self, record: r.FilterSet) -> None:
        self.filters[(record.framework_id, record.agent_id)] = float(record.seconds)

    def _scheduler_changed(self, record: r.SchedulerChanged) -> None:
        fid = record.framework_id
        if record.previous:
            remember(self.failed_over, (fid, record.previous), None, FAILED_OVER_LIMIT)
        self.failed_over.pop((fid, record.instance), None)
        self.schedulers[fid] = record.instance

    def _owner_set(self, record: r.OwnerSet) -> None:
        if record.kind not in ("framework", "agent"):
            raise ValueError(f"owner_set of unknown kind {record.kind[:20]!r}")
        self.owners[(record.kind, record.ident)] = record.principal

    def owner(self, kind: str, ident: str) -> str | None:
        """The principal that created this framework or agent id (None: nobody)."""
        return self.owners.get((kind, ident))

    def _filters_cleared(self, record: r.FiltersCleared) -> None:
        for key in [k for k in self.filters if k[0] == record.framework_id]:
            del self.filters[key]

    def _update_pending(self, record: r.UpdatePending) -> None:
        self.pending_updates[record.status.uuid] = record.status

    def _update_acked(self, record: r.UpdateAcked) -> None:
        self.pending_updates.pop(record.uuid, None)

    def _request_done(self, record: r.RequestDone) -> None:
        self.requests_done[record.request_id] = None
        while len(self.requests_done) > REQUESTS_LIMIT:
            self.requests_done.popitem(last=False)

    def _reservations_set(self, record: r.ReservationsSet) -> None:
        if record.reserved:
            self.reservations[record.agent_id] = record.reserved
        else:
            self.reservations.pop(record.agent_id, None)

    # ----------------------------------------------------------------- queries
    def task(self, framework_id: str, task_id: str) -> TaskRecord | None:
        key = (framework_id, task_id)
        return self.tasks.get(key) or self.completed.get(key)

    def active_tasks_on(self, agent_id: str) -> list[TaskRecord]:
        return [self.tasks[k] for k in self.tasks_by_agent.get(agent_id, ()) if k in self.tasks]

    def active_tasks_of(self, framework_id: str) -> list[TaskRecord]:
        """One framework's active tasks, in the order of ``tasks``."""
        tasks = self.tasks
        return [tasks[k] for k in self.tasks_by_framework.get(framework_id, ()) if k in tasks]

    def completed_of(self, framework_id: str) -> list[TaskRecord]:
        """One framework's finished tasks, in the order they ended."""
        completed = self.completed
        return [completed[k] for k in self._completed_of.get(framework_id, ())]

    def find_tasks(self, task_id: str, framework_id: str = "",
                   active_only: bool = False) -> list[TaskRecord]:
        """Tasks with this id (operator requests name a task by id alone, and task ids
        are unique only within a framework): active ones first."""
        if framework_id:
            rec = self.tasks.get((framework_id, task_id))
            if rec is None and not active_only:
                rec = self.completed.get((framework_id, task_id))
            return [rec] if rec is not None else []
        stores = (self.tasks,) if active_only else (self.tasks, self.completed)
        found = []
        for store in stores:
            found += [rec for (_, tid), rec in store.items() if tid == task_id]
        return found

    # ----------------------------------------------------------------- snapshot
    def snapshot(self) -> dict[str, Any]:
        def task_plain(rec: TaskRecord) -> dict[str, Any]:
            return {
                "framework_id": rec.framework_id,
                "task": to_plain(rec.task),
                "state": rec.state.value,
                "updated_at": rec.updated_at,
                "exit_code": rec.exit_code,
                "message": rec.message,
                "reason": rec.reason,
            }

        return {
            "version": 1,
            "frameworks": [to_plain(f) for f in self.frameworks.values()],
            "removed_frameworks": list(self.removed_frameworks.items()),
            "agents": [to_plain(a) for a in self.agents.values()],
            "removed_agents": list(self.removed_agents.items()),
            "tasks": [task_plain(r) for r in self.tasks.values()],
            "completed": [task_plain(r) for r in self.completed.values()],
            "weights": dict(self.weights),
            "quotas": {role: list(q) for role, q in self.quotas.items()},
            "reservations": dict(self.reservations),
            "offers": {k: dict(v) for k, v in self.offers.items()},
            "requests_done": list(self.requests_done),
            "pending_updates": [to_plain(u) for u in self.pending_updates.values()],
            "filters": [[f, a, s] for (f, a), s in self.filters.items()],
            "draining": {k: dict(v) for k, v in self.draining.items()},
            # absent without owners (a cluster without keys), so that such a cluster's
            # snapshots read exactly as before
            **({"owners": [[k, i, p] for (k, i), p in self.owners.items()]}
               if self.owners else {}),
            # absent when no scheduler said which process it is (older SDKs, older logs)
            **({"schedulers": dict(self.schedulers),
                "failed_over": [list(k) for k in self.failed_over]}
               if self.schedulers or self.failed_over else {}),
        }

    @classmethod
    def restore(cls, data: dict[str, Any], history: HistoryLimits | None = None) -> MasterState:
        """The state a snapshot holds (``history``: the limits it is kept within from
        now on; a snapshot taken under larger ones is trimmed to these)."""
        state = cls(history)
        for plain in data.get("frameworks", []):
            info = from_plain(FrameworkInfo, plain)
            state.frameworks[info.framework_id] = info
        state.removed_frameworks.update((k, v) for k, v in data.get("removed_frameworks", []))
        state._keep_removed_history()
        for plain in data.get("agents", []):
            state.agents[plain["agent_id"]] = AgentRecord(**plain)
            state.tasks_by_agent.setdefault(plain["agent_id"], set())
        state.removed_agents.update((k, v) for k, v in data.get("removed_agents", []))
        tasks, by_agent, by_framework = state.tasks, state.tasks_by_agent, state.tasks_by_framework
        for plain in data.get("tasks", []) + data.get("completed", []):
            rec = TaskRecord(
                plain["framework_id"],
                from_plain(TaskInfo, plain["task"]),
                task_state(plain["state"]),
                plain["updated_at"],
                plain["exit_code"],
                plain["message"],
                plain["reason"],
            )
            task = rec.task
            key = (rec.framework_id, task.task_id)
            if rec.state in TERMINAL:
                state._complete(key, rec)
            else:
                tasks[key] = rec
                by_agent.setdefault(task.agent_id, set()).add(key)
                by_framework.setdefault(rec.framework_id, {})[key] = None
        state.weights.update(data.get("weights", {}))
        state.quotas.update({r: (q[0], q[1]) for r, q in data.get("quotas", {}).items()})
        state.reservations.update(data.get("reservations", {}))
        state.draining.update({k: dict(v) for k, v in data.get("draining", {}).items()})
        state.owners.update(((k, i), p) for k, i, p in data.get("owners", []))
        state.schedulers.update(data.get("schedulers", {}))
        state.failed_over.update(((f, i), None) for f, i in data.get("failed_over", []))
        state.offers.update(data.get("offers", {}))
        state.requests_done.update((r, None) for r in data.get("requests_done", []))
        for framework_id, agent_id, seconds in data.get("filters", []):
            state.filters[(framework_id, agent_id)] = float(seconds)
        for plain in data.get("pending_updates", []):
            update = from_plain(TaskStatus, plain)
            state.pending_updates[update.uuid] = update
        return state


def replay(state: MasterState, records: list[PlainRecord]) -> None:
    """Decode records read back from a log and apply them in order.

    The log stores the codec's plain form; this is the one place it becomes typed again.
    """
    for number, record in enumerate(records):
        try:
            state.apply(record_from_plain(record))
        except (ValueError, KeyError, TypeError) as exc:
            raise LogError(f"cannot replay record {number} of the log ({exc}): the log is "
                           "damaged or was written by a newer version") from None


def state_from(snapshot: dict[str, Any] | None, records: list[PlainRecord],
               history: HistoryLimits | None = None) -> MasterState:
    """Replay a log (snapshot, then records) into a fresh state that keeps completed
    tasks within ``history`` (the master's flags; None: their defaults)."""
    state = (MasterState.restore(snapshot, history) if snapshot is not None
             else MasterState(history))
    replay(state, records)
    return state
