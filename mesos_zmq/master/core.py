"""The master core: messages and time in, a :class:`Ready` batch out.

Theory of operation
-------------------
The core is a plain object. The shell feeds it decoded messages with the identity of
the connection they came from (:meth:`MasterCore.handle`) and the passage of time
(:meth:`MasterCore.tick`); each call returns a :class:`Ready` holding durable
records and outgoing messages. The shell MUST append ``records`` to the log (one
write for the whole batch) before it sends any of ``messages``: a message may reveal
a change (an agent id, a launched task, a terminal state) that must not be forgotten
by a master that crashes right after saying it.

Durable state lives in :class:`~mesos_zmq.master.state.MasterState` and changes only
through records (:meth:`_commit`). Connections, offers, heartbeats, pending
master-generated status updates and forwarded file reads are runtime state, rebuilt
when peers reconnect after a master restart.

Rules worth knowing:

* A connection is bound to one agent or one framework by its (re)registration; any
  other message from an unbound connection gets ``Error(not_registered)`` so the
  client re-registers (this is how clients notice a restarted master).
* Status updates from agents are recorded, then forwarded; the framework's
  acknowledgement goes back to the agent, which retries until it gets one. Updates
  the master itself generates (LOST on agent loss, ERROR for invalid tasks) are
  retried by the master until acknowledged.
* Offered resources count as allocated until declined, used or rescinded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import structlog

from mesos_zmq.allocator.allocator import Allocator
from mesos_zmq.errors import ResourceError
from mesos_zmq.heartbeat import HeartbeatMonitor
from mesos_zmq.master import agents, operator
from mesos_zmq.master.operator import PendingRead
from mesos_zmq.master.runtime import (
    MAX_TASKS_PER_ACCEPT,
    AgentRuntime,
    FrameworkRuntime,
    OfferRec,
    Peer,
)
from mesos_zmq.master.state import MasterState, Record, TaskRecord
from mesos_zmq.master.validation import (
    check_framework,
    check_task,
    quota_amounts,
    reservation_problem,
)
from mesos_zmq.master.views import describe_cluster
from mesos_zmq.protocol import (
    Accept,
    Acknowledge,
    Decline,
    DrainAgent,
    Error,
    FileData,
    GetState,
    Heartbeat,
    Kill,
    KillTask,
    Message,
    Offer,
    Offers,
    OperatorKill,
    ReactivateAgent,
    ReadFile,
    Reconcile,
    RegisterAgent,
    RemoveQuota,
    ReregisterAgent,
    Rescind,
    ReserveResources,
    Revive,
    RunTasks,
    SetQuota,
    SetWeights,
    ShutdownFramework,
    StatusUpdate,
    Subscribe,
    Subscribed,
    Suppress,
    TaskInfo,
    TaskStatus,
    TaskUsage,
    Teardown,
    UnreserveResources,
    UsageReport,
    to_plain,
)
from mesos_zmq.resources import Resources
from mesos_zmq.tasks import TERMINAL, TaskState

log = structlog.get_logger()
#: frameworks with this capability hear TASK_UNREACHABLE rather than TASK_LOST
PARTITION_AWARE = "PARTITION_AWARE"



@dataclass(frozen=True, slots=True)
class MasterCoreConfig:
    master_id: str = "master"
    heartbeat_interval: float = 2.0
    missed_heartbeats: int = 5
    allocation_interval: float = 1.0
    #: how long agents and frameworks known from the log may take to come back
    reregister_timeout: float = 600.0
    status_update_retry: float = 2.0
    #: None accepts any valid role; otherwise the only roles frameworks may use
    roles: tuple[str, ...] | None = None
    weights: tuple[tuple[str, float], ...] = ()
    read_timeout: float = 10.0
    #: rescind offers a framework has held this long (None: never)
    offer_timeout: float | None = None
    #: resource names left out of dominant shares (e.g. gpus)
    fair_sharing_excluded: tuple[str, ...] = ()
    #: alternatives an offer must reach, e.g. ({"cpus": 0.01}, {"mem": 32})
    min_allocatable: tuple[tuple[tuple[str, float], ...], ...] | None = None
    #: per-role overrides of min_allocatable
    role_min_allocatable: tuple[tuple[str, tuple[tuple[tuple[str, float], ...], ...]], ...] = ()


@dataclass(slots=True)
class Ready:
    """One batch of effects. Persist ``records`` first, then send ``messages``."""

    records: list[Record] = field(default_factory=list)
    #: (connection identity, message, request id)
    messages: list[tuple[bytes, Message, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.records or self.messages)


class MasterCore:
    """Single-master logic; see the module docstring for the contract."""

    def __init__(
        self,
        config: MasterCoreConfig,
        new_id: Callable[[], str],
        state: MasterState | None = None,
        now: float = 0.0,
    ) -> None:
        self.config = config
        self._new_id = new_id
        self.state = state if state is not None else MasterState()
        self.allocator = Allocator(
            dict(config.weights),
            excluded=config.fair_sharing_excluded,
            min_allocatable=None if config.min_allocatable is None
            else [dict(alt) for alt in config.min_allocatable],
        )
        for role, alternatives in config.role_min_allocatable:
            self.allocator.set_min_allocatable(role, [dict(alt) for alt in alternatives])
        self._peers: dict[bytes, Peer] = {}
        self._frameworks: dict[str, FrameworkRuntime] = {}
        self._agents: dict[str, AgentRuntime] = {}
        self._offers: dict[str, OfferRec] = {}
        self._reads: dict[str, PendingRead] = {}
        self._ready = Ready()
        self._allocate_pending = False
        self._last_allocation = now
        self.started_at = now
        self.counters: dict[str, int] = {}
        #: last usage each agent reported per active task (framework_id, task_id)
        self.usage: dict[tuple[str, str], TaskUsage] = {}
        self._handlers: dict[type[Message], Callable[[bytes, Any, str, float], None]] = {
            RegisterAgent: partial(agents.register_agent, self),
            ReregisterAgent: partial(agents.reregister_agent, self),
            Heartbeat: self._on_heartbeat,
            UsageReport: partial(agents.usage, self),
            StatusUpdate: partial(agents.status_update, self),
            FileData: partial(agents.file_data, self),
            Error: self._on_error,
            Subscribe: self._on_subscribe,
            Accept: self._on_accept,
            Decline: self._on_decline,
            Kill: self._on_kill,
            Acknowledge: self._on_acknowledge,
            Reconcile: self._on_reconcile,
            Revive: self._on_revive,
            Suppress: self._on_suppress,
            Teardown: self._on_teardown,
            GetState: partial(operator.get_state, self),
            OperatorKill: partial(operator.operator_kill, self),
            DrainAgent: partial(operator.drain_agent, self),
            ReactivateAgent: partial(operator.reactivate_agent, self),
            SetWeights: partial(operator.set_weights, self),
            SetQuota: partial(operator.set_quota, self),
            RemoveQuota: partial(operator.remove_quota, self),
            ReserveResources: partial(operator.reserve, self),
            UnreserveResources: partial(operator.reserve, self),
            ReadFile: partial(operator.read_file, self),
        }
        for role, weight in self.state.weights.items():
            self.allocator.set_weight(role, weight)
        for role, (guarantee, limit) in self.state.quotas.items():
            self.allocator.set_quota(role, quota_amounts(guarantee, "guarantee"),
                                     quota_amounts(limit, "limit"))
        self._recover(now)

    # ================================================================= plumbing
    def _take(self) -> Ready:
        ready, self._ready = self._ready, Ready()
        return ready

    def _commit(self, record: Record) -> None:
        self.state.apply(record)
        self._ready.records.append(record)

    def _send(self, peer: bytes, msg: Message, request_id: str = "") -> None:
        self._ready.messages.append((peer, msg, request_id))

    def _error(self, peer: bytes, code: str, message: str, request_id: str) -> None:
        self._count(f"error_{code}")
        self._send(peer, Error(code=code, message=message, in_reply_to=request_id), request_id)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _send_framework(self, framework_id: str, msg: Message, request_id: str = "") -> bool:
        rt = self._frameworks.get(framework_id)
        if rt is None or rt.peer is None:
            return False
        self._send(rt.peer, msg, request_id)
        return True

    def _send_agent(self, agent_id: str, msg: Message, request_id: str = "") -> bool:
        rt = self._agents.get(agent_id)
        if rt is None or rt.peer is None:
            return False
        self._send(rt.peer, msg, request_id)
        return True

    def _bind(self, peer: bytes, kind: str, ident: str, now: float) -> None:
        """Bind a connection to an agent/framework, unbinding any older connection."""
        old = self._peers.get(peer)
        if old is not None and (old.kind, old.id) != (kind, ident):
            self._unbind_peer(peer)
        monitor = HeartbeatMonitor(self.config.heartbeat_interval, self.config.missed_heartbeats)
        monitor.reset(now)
        self._peers[peer] = Peer(kind, ident, monitor)
        rt: FrameworkRuntime | AgentRuntime
        rt = self._frameworks[ident] if kind == "framework" else self._agents[ident]
        if rt.peer is not None and rt.peer != peer:
            self._peers.pop(rt.peer, None)
        rt.peer = peer

    def _unbind_peer(self, peer: bytes) -> None:
        info = self._peers.pop(peer, None)
        if info is None:
            return
        rt = (self._frameworks if info.kind == "framework" else self._agents).get(info.id)
        if rt is not None and rt.peer == peer:
            rt.peer = None

    # ================================================================= entry points
    def handle(self, peer: bytes, msg: Message, request_id: str, now: float) -> Ready:
        """Process one decoded message from connection ``peer``."""
        info = self._peers.get(peer)
        if info is not None:
            info.monitor.received(now)
        handler = self._handlers.get(type(msg))
        if handler is None:
            self._error(peer, "unexpected", f"the master does not accept {msg.TYPE}", request_id)
        else:
            handler(peer, msg, request_id, now)
        return self._take()

    def tick(self, now: float) -> Ready:
        """Advance time: heartbeats, expiries, retries, allocation."""
        self._check_peers(now)
        self._check_deadlines(now)
        self._retry_master_updates(now)
        operator.expire_reads(self, now)
        self._expire_offers(now)
        if self._allocate_pending or now - self._last_allocation >= self.config.allocation_interval:
            self._allocate(now)
        return self._take()

    def request_allocation(self) -> None:
        self._allocate_pending = True

    # ================================================================= recovery
    def _recover(self, now: float) -> None:
        """Rebuild runtime state after replaying the log: everyone must come back."""
        deadline = now + self.config.reregister_timeout
        for agent in self.state.agents.values():
            self._agents[agent.agent_id] = AgentRuntime(deadline=deadline)
            try:
                total = self._agent_total(agent.agent_id, Resources.parse(agent.resources))
            except ResourceError:
                total = Resources.empty()
            self.allocator.add_agent(agent.agent_id, total)
            self.allocator.activate_agent(agent.agent_id, False)
        for info in self.state.frameworks.values():
            grace = max(info.failover_timeout, self.config.reregister_timeout)
            self._frameworks[info.framework_id] = FrameworkRuntime(
                deadline=now + grace, recovered=True
            )
            self.allocator.add_framework(
                info.framework_id, info.roles, info.capabilities, active=False
            )
        for (fid, agent_id), seconds in self.state.filters.items():
            if fid in self._frameworks and self.allocator.has_agent(agent_id):
                # The old leader's clock is not ours: each filter runs its full length
                # again from the take-over (a filter is a hint; erring long is safe).
                self.allocator.add_filter(fid, agent_id, now + seconds)
        for status in self.state.pending_updates.values():
            fw_rt = self._frameworks.get(status.framework_id)
            if fw_rt is not None:
                fw_rt.pending[status.uuid] = (status, now)  # resent once it re-subscribes
        for offer_id, offer in self.state.offers.items():
            fw_rt = self._frameworks.get(offer["framework_id"])
            ag_rt = self._agents.get(offer["agent_id"])
            try:
                resources = Resources.parse(offer["resources"])
            except ResourceError:
                continue
            if fw_rt is None or ag_rt is None:
                continue
            # The offer keeps its id; its expiry restarts from the take-over.
            self._offers[offer_id] = OfferRec(offer_id, offer["framework_id"],
                                               offer["agent_id"], offer["role"], resources, now)
            fw_rt.offers.add(offer_id)
            ag_rt.offers.add(offer_id)
            self.allocator.allocate_to(offer["framework_id"], offer["role"], offer["agent_id"],
                                       resources)
        for rec in self.state.tasks.values():
            if rec.state != TaskState.UNREACHABLE and rec.agent_id in self.state.agents:
                self._allocate_task(rec)

    def _allocate_task(self, rec: TaskRecord) -> None:
        try:
            res = Resources.parse(rec.task.resources)
        except ResourceError:
            return
        role = rec.task.role or "*"
        self.allocator.allocate_to(rec.framework_id, role, rec.agent_id, res)

    def _release_task(self, rec: TaskRecord) -> None:
        try:
            res = Resources.parse(rec.task.resources)
        except ResourceError:
            return
        self.allocator.recover(rec.framework_id, rec.task.role or "*", rec.agent_id, res)
        self._allocate_pending = True

    # ================================================================= agents
    def _on_heartbeat(self, peer: bytes, msg: Heartbeat, rid: str, now: float) -> None:
        if peer not in self._peers:
            self._error(peer, "not_registered", "unknown connection: register first", rid)

    def _require(self, peer: bytes, kind: str, rid: str, ident: str | None = None) -> bool:
        info = self._peers.get(peer)
        if info is None or info.kind != kind:
            what = "register as an agent" if kind == "agent" else "subscribe"
            self._error(peer, "not_registered", f"unknown connection: {what} first", rid)
            return False
        if ident is not None and info.id != ident:
            self._error(
                peer, "invalid", f"this connection belongs to {kind} {info.id}, not {ident}", rid
            )
            return False
        return True

    def _on_error(self, peer: bytes, msg: Error, rid: str, now: float) -> None:
        pending = self._reads.pop(msg.in_reply_to, None)
        if pending is not None:
            self._send(
                pending.peer,
                Error(code=msg.code, message=msg.message, in_reply_to=pending.request_id),
                pending.request_id,
            )
            return
        info = self._peers.get(peer)
        log.info("peer reported an error", code=msg.code, message=msg.message[:200],
                 peer_kind=info.kind if info else "unknown", peer_id=info.id if info else "")

    # ================================================================= frameworks
    def _on_subscribe(self, peer: bytes, msg: Subscribe, rid: str, now: float) -> None:
        info = msg.framework
        problem = check_framework(info, self.config.roles)
        if problem is not None:
            self._error(peer, "invalid", f"subscription refused: {problem}", rid)
            return
        bound = self._peers.get(peer)
        if (
            not info.framework_id
            and bound is not None
            and bound.kind == "framework"
            and bound.id in self.state.frameworks
        ):
            self._send(peer, self._subscribed(bound.id, False), rid)  # lost reply, retry
            return
        reregistered = False
        if info.framework_id:
            if info.framework_id in self.state.removed_frameworks:
                self._error(
                    peer,
                    "framework_removed",
                    f"framework {info.framework_id} was removed; subscribe without an id",
                    rid,
                )
                return
            framework_id = info.framework_id
            reregistered = framework_id in self.state.frameworks
        else:
            framework_id = self._fresh_id("framework", self.state.frameworks)
        roles = list(dict.fromkeys(info.roles or ["*"]))
        stored = replace(info, framework_id=framework_id, roles=roles)
        if self.state.frameworks.get(framework_id) != stored:
            self._commit(
                {"op": "framework_added", "framework": to_plain(stored), "time": now}
            )
        rt = self._frameworks.setdefault(framework_id, FrameworkRuntime())
        rt.deadline = None
        if rt.recovered:
            # Back after a master failover: the previous leader's offers still hold.
            rt.recovered = False
        else:
            # A new scheduler connection (framework failover): the offers made to the
            # previous one are void. Take them back quietly.
            for offer_id in list(rt.offers):
                self._remove_offer(offer_id)
        self._bind(peer, "framework", framework_id, now)
        self.allocator.add_framework(framework_id, roles, info.capabilities, active=True)
        self._allocate_pending = True
        log.info(
            "framework subscribed",
            framework_id=framework_id,
            name=info.name,
            roles=roles,
            reregistered=reregistered,
        )
        self._send(peer, self._subscribed(framework_id, reregistered), rid)
        for uuid, (status, _) in list(rt.pending.items()):
            rt.pending[uuid] = (status, now)
            self._send(peer, StatusUpdate(status=status))

    def _subscribed(self, framework_id: str, re: bool) -> Subscribed:
        return Subscribed(
            framework_id=framework_id,
            heartbeat_interval=self.config.heartbeat_interval,
            missed_heartbeats=self.config.missed_heartbeats,
            reregistered=re,
        )

    def _framework_peer_ok(self, peer: bytes, framework_id: str, rid: str) -> bool:
        return self._require(peer, "framework", rid, framework_id)

    def _on_accept(self, peer: bytes, msg: Accept, rid: str, now: float) -> None:
        fid = msg.framework_id
        if not self._framework_peer_ok(peer, fid, rid):
            return
        if rid and rid in self.state.requests_done:
            self._count("duplicate_requests")
            return  # a retry of an accept already applied (maybe by a previous leader)
        problem = self._accept_check(fid, msg)
        conversions: list[tuple[Resources, Resources]] = []
        if problem is None and msg.operations:
            problem, conversions = self._plan_operations(msg)
        if problem is not None:
            self._error(peer, "invalid", f"accept refused: {problem}", rid)
            for task in msg.tasks[:MAX_TASKS_PER_ACCEPT]:
                self._reply_status(fid, task.task_id, task.agent_id, TaskState.DROPPED,
                                   "REASON_INVALID_OFFERS", f"accept refused: {problem}", now)
            return
        offers = [self._offers[o] for o in msg.offer_ids]
        agent_id = offers[0].agent_id
        role = offers[0].role
        offered = Resources.empty()
        for offer in offers:
            offered = offered + offer.resources
            self._remove_offer(offer.offer_id, recover=False)
        for old, new in conversions:
            offered = offered - old + new
            self.allocator.convert(agent_id, old, new, held=True)
            self._set_reservations(agent_id, old, new, now)
        remaining = offered
        launched: list[TaskInfo] = []
        seen: set[str] = set()
        for task in msg.tasks:
            error = check_task(task, agent_id, seen, self.state.task(fid, task.task_id) is not None)
            needed: Resources | None = None
            if error is None:
                try:
                    needed = Resources.parse(task.resources)
                except ResourceError as exc:
                    error = str(exc)
            if error is None and needed is not None and not remaining.contains(needed):
                error = f"task resources {needed} do not fit in what is left of the offers"
            if error is not None or needed is None:
                self._master_task_error(fid, task, error or "invalid task", now)
                continue
            seen.add(task.task_id)
            remaining = remaining - needed
            task = replace(task, agent_id=agent_id, role=role, resources=str(needed))
            self._commit(
                {
                    "op": "task_added",
                    "framework_id": fid,
                    "task": to_plain(task),
                    "state": TaskState.STAGING.value,
                    "time": now,
                }
            )
            launched.append(task)
        if rid:
            self._commit({"op": "request_done", "request_id": rid})
        refuse_until = now + msg.refuse_seconds if msg.refuse_seconds > 0 else None
        self.allocator.recover(fid, role, agent_id, remaining, refuse_until)
        if refuse_until is not None and remaining:
            self._record_filter(fid, agent_id, msg.refuse_seconds, now)
        self._allocate_pending = True
        if launched:
            info = self.state.frameworks[fid]
            self._count("tasks_launched")
            sent = self._send_agent(
                agent_id, RunTasks(framework_id=fid, tasks=launched, framework_name=info.name)
            )
            if not sent and agent_id not in self.state.agents:
                for task in launched:
                    rec = self.state.task(fid, task.task_id)
                    if rec is not None:
                        self._master_task_update(rec, TaskState.LOST, "REASON_AGENT_REMOVED",
                                                 "the agent is gone", now)
            # A known agent that is reconnecting (after a master failover, say) gets its
            # STAGING tasks when it re-registers (see _reconcile_agent).

    def _plan_operations(
        self, msg: Accept
    ) -> tuple[str | None, list[tuple[Resources, Resources]]]:
        """Check RESERVE/UNRESERVE against the offers; return (problem, conversions)."""
        offers = [self._offers[o] for o in msg.offer_ids]
        agent_id, role = offers[0].agent_id, offers[0].role
        available = Resources.empty()
        for offer in offers:
            available = available + offer.resources
        dynamic = self._dynamic(agent_id)
        conversions = []
        for op in msg.operations:
            try:
                res = Resources.parse(op.resources)
            except ResourceError as exc:
                return f"{op.kind}: {exc}", []
            problem = reservation_problem(res, role)
            if problem is not None:
                return f"{op.kind}: {problem}", []
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

    def _dynamic(self, agent_id: str) -> Resources:
        try:
            return Resources.parse(self.state.reservations.get(agent_id, ""))
        except ResourceError:
            return Resources.empty()

    def _agent_total(self, agent_id: str, static: Resources) -> Resources:
        """The agent's resources with its dynamic reservations applied."""
        dynamic = self._dynamic(agent_id)
        if dynamic and static.contains(dynamic.flatten()):
            return static - dynamic.flatten() + dynamic
        return static

    def _set_reservations(self, agent_id: str, old: Resources, new: Resources,
                          now: float) -> None:
        """Record a conversion: ``new`` reserved (RESERVE) or ``old`` released (UNRESERVE)."""
        dynamic = self._dynamic(agent_id)
        dynamic = dynamic + new if new.roles() - {"*"} else dynamic - old
        self._commit({"op": "reservations_set", "agent_id": agent_id,
                      "reserved": str(dynamic), "time": now})

    def _accept_check(self, fid: str, msg: Accept) -> str | None:
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
            offer = self._offers.get(offer_id)
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

    def _on_decline(self, peer: bytes, msg: Decline, rid: str, now: float) -> None:
        if not self._framework_peer_ok(peer, msg.framework_id, rid):
            return
        if not 0 <= msg.refuse_seconds <= 10**9:
            self._error(peer, "invalid", "refuse_seconds must be between 0 and 1e9", rid)
            return
        refuse_until = now + msg.refuse_seconds if msg.refuse_seconds > 0 else None
        for offer_id in msg.offer_ids:
            offer = self._offers.get(offer_id)
            if offer is None or offer.framework_id != msg.framework_id:
                continue  # already gone: declining twice is harmless
            self._remove_offer(offer_id, recover=False)
            self.allocator.recover(
                offer.framework_id, offer.role, offer.agent_id, offer.resources, refuse_until
            )
            if refuse_until is not None:
                self._record_filter(offer.framework_id, offer.agent_id, msg.refuse_seconds, now)
        self._allocate_pending = True

    def _record_filter(self, fid: str, agent_id: str, seconds: float, now: float) -> None:
        """Decline filters are logged so that a new leader keeps honouring them."""
        self._commit({"op": "filter_set", "framework_id": fid, "agent_id": agent_id,
                      "seconds": seconds, "time": now})

    def _on_kill(self, peer: bytes, msg: Kill, rid: str, now: float) -> None:
        if not self._framework_peer_ok(peer, msg.framework_id, rid):
            return
        self._kill(msg.framework_id, msg.task_id, now)

    def _kill(self, fid: str, task_id: str, now: float,
              grace: float | None = None) -> TaskRecord | None:
        rec = self.state.task(fid, task_id)
        if rec is None:
            self._reply_status(fid, task_id, "", TaskState.LOST, "REASON_TASK_UNKNOWN",
                               "kill of a task the master does not know", now)
            return None
        if rec.terminal:
            return rec
        drain = self.state.draining.get(rec.agent_id)
        if grace is None and drain is not None:
            grace = drain["grace"]
        if not self._send_agent(rec.agent_id, KillTask(framework_id=fid, task_id=task_id,
                                                       grace=grace)):
            log.info("kill deferred: agent not connected", task_id=task_id, agent_id=rec.agent_id)
        return rec

    def _on_acknowledge(self, peer: bytes, msg: Acknowledge, rid: str, now: float) -> None:
        if not self._framework_peer_ok(peer, msg.framework_id, rid):
            return
        rt = self._frameworks.get(msg.framework_id)
        if rt is not None and rt.pending.pop(msg.uuid, None) is not None:
            self._commit({"op": "update_acked", "uuid": msg.uuid})
            return
        if msg.agent_id:
            self._send_agent(msg.agent_id, msg)

    def _on_reconcile(self, peer: bytes, msg: Reconcile, rid: str, now: float) -> None:
        fid = msg.framework_id
        if not self._framework_peer_ok(peer, fid, rid):
            return
        if not msg.tasks:
            for rec in list(self.state.tasks.values()):
                if rec.framework_id == fid:
                    self._reply_status(fid, rec.task_id, rec.agent_id, rec.state,
                                       "REASON_RECONCILIATION", rec.message, now, rec.exit_code)
            return
        for item in msg.tasks:
            found = self.state.task(fid, item.task_id)
            if found is None:
                self._reply_status(fid, item.task_id, item.agent_id, TaskState.LOST,
                                   "REASON_RECONCILIATION", "task unknown to the master", now)
            else:
                self._reply_status(fid, found.task_id, found.agent_id, found.state,
                                   "REASON_RECONCILIATION", found.message, now, found.exit_code)

    def _on_revive(self, peer: bytes, msg: Revive, rid: str, now: float) -> None:
        if self._framework_peer_ok(peer, msg.framework_id, rid):
            self.allocator.revive(msg.framework_id, msg.roles)
            if any(f == msg.framework_id for f, _ in self.state.filters):
                self._commit({"op": "filters_cleared", "framework_id": msg.framework_id})
            self._allocate_pending = True

    def _on_suppress(self, peer: bytes, msg: Suppress, rid: str, now: float) -> None:
        if self._framework_peer_ok(peer, msg.framework_id, rid):
            self.allocator.suppress(msg.framework_id, msg.roles)

    def _on_teardown(self, peer: bytes, msg: Teardown, rid: str, now: float) -> None:
        if self._framework_peer_ok(peer, msg.framework_id, rid):
            self._remove_framework(msg.framework_id, "framework tore itself down", now)
            self._unbind_peer(peer)

    # ================================================================= statuses
    def _reply_status(
        self,
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
            timestamp=now, source="master", reason=reason, message=message, exit_code=exit_code,
        )
        self._send_framework(fid, StatusUpdate(status=status))

    def _record_task_state(
        self,
        fid: str,
        task_id: str,
        state: TaskState,
        now: float,
        *,
        reason: str = "",
        message: str = "",
        exit_code: int | None = None,
    ) -> None:
        self._commit(
            {
                "op": "task_updated",
                "framework_id": fid,
                "task_id": task_id,
                "state": state.value,
                "exit_code": exit_code,
                "message": message,
                "reason": reason,
                "time": now,
            }
        )

    def _master_task_update(
        self, rec: TaskRecord, state: TaskState, reason: str, message: str, now: float
    ) -> None:
        """The master decides a task's fate (agent lost...): record it, tell reliably."""
        self._record_task_state(rec.framework_id, rec.task_id, state, now, reason=reason,
                                message=message)
        if state in TERMINAL:
            self._release_task(rec)
            operator.check_drained(self, rec.agent_id)
        self._reliable_update(rec.framework_id, rec.task_id, rec.agent_id, state, reason,
                              message, now)

    def _reliable_update(
        self, fid: str, task_id: str, agent_id: str, state: TaskState, reason: str,
        message: str, now: float,
    ) -> None:
        """An update from the master itself, resent until the framework acknowledges it."""
        status = TaskStatus(
            task_id=task_id, framework_id=fid, agent_id=agent_id, state=state.value,
            uuid=self._new_id(), timestamp=now, source="master", reason=reason,
            message=message,
        )
        rt = self._frameworks.get(fid)
        if rt is not None:
            rt.pending[status.uuid] = (status, now)
            # Durable until acknowledged, so a new leader keeps resending it.
            self._commit({"op": "update_pending", "status": to_plain(status)})
        self._send_framework(fid, StatusUpdate(status=status))

    def _master_task_error(self, fid: str, task: TaskInfo, message: str, now: float) -> None:
        self._count("tasks_refused")
        self._reliable_update(fid, task.task_id, task.agent_id, TaskState.ERROR,
                              "REASON_TASK_INVALID", message, now)

    def _retry_master_updates(self, now: float) -> None:
        retry = self.config.status_update_retry
        for rt in self._frameworks.values():
            if not rt.pending or rt.peer is None:
                continue
            for uuid, (status, sent) in list(rt.pending.items()):
                if now - sent >= retry:
                    rt.pending[uuid] = (status, now)
                    self._send(rt.peer, StatusUpdate(status=status))

    # ================================================================= offers
    def _allocate(self, now: float) -> None:
        self._allocate_pending = False
        self._last_allocation = now
        by_framework: dict[str, list[Offer]] = {}
        for alloc in self.allocator.allocate(now):
            agent = self.state.agents.get(alloc.agent_id)
            fw_rt = self._frameworks.get(alloc.framework_id)
            if agent is None or fw_rt is None or fw_rt.peer is None:
                self.allocator.recover(alloc.framework_id, alloc.role, alloc.agent_id,
                                       alloc.resources)
                continue
            offer_id = self._new_id()
            self._offers[offer_id] = OfferRec(
                offer_id, alloc.framework_id, alloc.agent_id, alloc.role, alloc.resources, now
            )
            # Write ahead: the offer is in the log before the framework hears of it.
            self._commit({"op": "offer_made", "offer_id": offer_id,
                          "framework_id": alloc.framework_id, "agent_id": alloc.agent_id,
                          "role": alloc.role, "resources": str(alloc.resources), "time": now})
            fw_rt.offers.add(offer_id)
            self._agents[alloc.agent_id].offers.add(offer_id)
            by_framework.setdefault(alloc.framework_id, []).append(
                Offer(
                    offer_id=offer_id,
                    framework_id=alloc.framework_id,
                    agent_id=alloc.agent_id,
                    hostname=agent.hostname,
                    role=alloc.role,
                    resources=str(alloc.resources),
                    attributes=agent.attributes,
                )
            )
        for fid, offers in by_framework.items():
            self._count("offers")
            self._send_framework(fid, Offers(offers=offers))

    def _expire_offers(self, now: float) -> None:
        """Rescind offers held past the offer timeout (oldest first: dicts keep order)."""
        timeout = self.config.offer_timeout
        if timeout is None:
            return
        expired = []
        for offer_id, offer in self._offers.items():
            if offer.created + timeout > now:
                break
            expired.append(offer_id)
        for offer_id in expired:
            self._count("offers_timed_out")
            self._rescind(offer_id)

    def _remove_offer(self, offer_id: str, recover: bool = True) -> OfferRec | None:
        offer = self._offers.pop(offer_id, None)
        if offer is None:
            return None
        self._commit({"op": "offer_removed", "offer_id": offer_id})
        fw_rt = self._frameworks.get(offer.framework_id)
        if fw_rt is not None:
            fw_rt.offers.discard(offer_id)
        ag_rt = self._agents.get(offer.agent_id)
        if ag_rt is not None:
            ag_rt.offers.discard(offer_id)
        if recover:
            self.allocator.recover(offer.framework_id, offer.role, offer.agent_id, offer.resources)
            self._allocate_pending = True
        return offer

    def _rescind(self, offer_id: str) -> None:
        offer = self._remove_offer(offer_id)
        if offer is not None:
            self._count("offers_rescinded")
            self._send_framework(offer.framework_id, Rescind(offer_id=offer_id))

    # ================================================================= liveness
    def _check_peers(self, now: float) -> None:
        for peer, info in list(self._peers.items()):
            if info.monitor.expired(now):
                self._peer_lost(peer, info, now)
            elif info.monitor.send_due(now):
                info.monitor.sent(now)
                self._send(peer, Heartbeat())

    def _peer_lost(self, peer: bytes, info: Peer, now: float) -> None:
        self._unbind_peer(peer)
        if info.kind == "agent":
            log.warning("agent missed heartbeats", agent_id=info.id)
            self._remove_agent(info.id, "agent missed its heartbeats", now)
        else:
            self._framework_disconnected(info.id, now)

    def _framework_disconnected(self, fid: str, now: float) -> None:
        info = self.state.frameworks.get(fid)
        rt = self._frameworks.get(fid)
        if info is None or rt is None:
            return
        rt.peer = None
        for offer_id in list(rt.offers):
            self._remove_offer(offer_id)
        self.allocator.activate_framework(fid, False)
        rt.deadline = now + info.failover_timeout
        log.warning("framework disconnected", framework_id=fid,
                    failover_timeout=info.failover_timeout)

    def _check_deadlines(self, now: float) -> None:
        for fid, rt in list(self._frameworks.items()):
            if rt.peer is None and rt.deadline is not None and rt.deadline <= now:
                self._remove_framework(fid, "framework failover timeout elapsed", now)
        for aid, art in list(self._agents.items()):
            if art.peer is None and art.deadline is not None and art.deadline <= now:
                self._remove_agent(aid, "agent did not re-register after master failover", now)

    def _remove_agent(self, agent_id: str, why: str, now: float) -> None:
        if agent_id not in self.state.agents:
            return
        rt = self._agents.pop(agent_id, AgentRuntime())
        if rt.peer is not None:
            self._peers.pop(rt.peer, None)
        for offer_id in list(rt.offers):
            self._rescind(offer_id)
        for rec in self.state.active_tasks_on(agent_id):
            if rec.state == TaskState.UNREACHABLE:
                continue
            if self._partition_aware(rec.framework_id):
                # It may well still run: say so, and free its resources until it is back.
                self._master_task_update(rec, TaskState.UNREACHABLE,
                                         "REASON_AGENT_UNREACHABLE", why, now)
                self._release_task(rec)
            else:
                self._master_task_update(rec, TaskState.LOST, "REASON_AGENT_REMOVED", why, now)
        self._commit({"op": "agent_removed", "agent_id": agent_id, "reason": why, "time": now})
        self.allocator.remove_agent(agent_id)
        log.warning("agent removed", agent_id=agent_id, reason=why)

    def _partition_aware(self, fid: str) -> bool:
        info = self.state.frameworks.get(fid)
        return info is not None and PARTITION_AWARE in info.capabilities

    def _remove_framework(self, fid: str, why: str, now: float) -> None:
        if fid not in self.state.frameworks:
            return
        rt = self._frameworks.pop(fid, FrameworkRuntime())
        for offer_id in list(rt.offers):
            self._remove_offer(offer_id)
        agents: set[str] = set()
        for rec in [r for r in self.state.tasks.values() if r.framework_id == fid]:
            agents.add(rec.agent_id)
            self._record_task_state(fid, rec.task_id, TaskState.KILLED, now,
                                    reason="REASON_FRAMEWORK_REMOVED", message=why)
            self._release_task(rec)
        for agent_id in agents:
            self._send_agent(agent_id, ShutdownFramework(framework_id=fid))
        self._commit({"op": "framework_removed", "framework_id": fid, "reason": why, "time": now})
        if rt.peer is not None:
            self._peers.pop(rt.peer, None)
        self.allocator.remove_framework(fid)
        log.info("framework removed", framework_id=fid, reason=why)

    # ================================================================= helpers
    def _fresh_id(self, kind: str, taken: dict[str, Any]) -> str:
        prefix = "S" if kind == "agent" else "F"
        while True:
            candidate = f"{self.config.master_id}-{prefix}-{self._new_id()[:12]}"
            if candidate not in taken:
                return candidate

    def describe(self, now: float) -> dict[str, Any]:
        """The operator's view of the cluster (plain data for the State message)."""
        return describe_cluster(self, now)

    def runtime_of_framework(self, framework_id: str) -> tuple[bool, int]:
        """(connected, outstanding offers) of a framework, for the operator's view."""
        rt = self._frameworks.get(framework_id)
        return (rt is not None and rt.peer is not None, len(rt.offers) if rt else 0)

    def agent_connected(self, agent_id: str) -> bool:
        rt = self._agents.get(agent_id)
        return rt is not None and rt.peer is not None
