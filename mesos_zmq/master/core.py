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
through records (:meth:`MasterCore.commit`). Connections, offers, heartbeats, pending
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
* Offered resources count as allocated until declined, used or rescinded. An offer is
  sent again (same id) to its framework when it re-subscribes after a failover and
  every ``offer_resend_interval`` while unanswered; the SDK answers a repeated offer
  with what it already decided, so nothing is held for good by a lost message. A
  framework recovered from the log that does not come back within the heartbeat limit
  loses its offers, as a disconnected one does.
* A task sent to its agent is sent again, with back-off, while the agent says nothing
  of it (STAGING): the agent ignores a (framework, task) it knows, so this launches
  nothing twice.

This module is the façade: the dispatch table, ``handle``, ``tick`` and recovery, and
the plumbing (commit, send, bind). The services handlers share are modules below them:
:mod:`~mesos_zmq.master.offers`, :mod:`~mesos_zmq.master.task_book` (task states,
kills, drains) and :mod:`~mesos_zmq.master.liveness`. The handlers
live by peer kind: :mod:`~mesos_zmq.master.agent_api`,
:mod:`~mesos_zmq.master.scheduler_api` and :mod:`~mesos_zmq.master.operator_api`;
they see the core only through :class:`~mesos_zmq.master.context.MasterContext`.
Runtime records are in :mod:`~mesos_zmq.master.runtime`, flag defaults in
:mod:`~mesos_zmq.master.flags`.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog

from mesos_zmq.allocator.allocator import Allocator
from mesos_zmq.allocator.sorter import sorter_factory
from mesos_zmq.auth.acls import Acls
from mesos_zmq.auth.principal import Principal
from mesos_zmq.auth.rate_limits import RateLimits
from mesos_zmq.errors import ResourceError
from mesos_zmq.heartbeat import HeartbeatMonitor, scaled_interval
from mesos_zmq.master import (
    agent_api,
    flags,
    instances,
    liveness,
    offers,
    operator_api,
    scheduler_api,
    task_book,
)
from mesos_zmq.master.records import (
    ReservationsSet,
    StateRecord,
    stamped,
)
from mesos_zmq.master.runtime import (
    AgentRuntime,
    FrameworkRuntime,
    OfferRec,
    Peer,
    ReadBook,
)
from mesos_zmq.master.state import MasterState
from mesos_zmq.master.validation import (
    quota_amounts,
)
from mesos_zmq.master.views import describe_cluster
from mesos_zmq.protocol import (
    Accept,
    Acknowledge,
    AgentStopping,
    Decline,
    DrainAgent,
    Error,
    FileData,
    GetState,
    GetTasks,
    Heartbeat,
    Kill,
    Message,
    OperatorKill,
    OperatorTeardown,
    ReactivateAgent,
    ReadFile,
    Reconcile,
    RegisterAgent,
    RemoveQuota,
    ReregisterAgent,
    ReserveResources,
    Revive,
    SetQuota,
    SetWeights,
    StatusUpdate,
    Subscribe,
    Suppress,
    TaskUsage,
    Teardown,
    UnreserveResources,
    UsageReport,
)
from mesos_zmq.resources import Resources
from mesos_zmq.tasks import TaskState

log = structlog.get_logger()



@dataclass(frozen=True, slots=True)
class MasterCoreConfig:
    master_id: str = "master"
    heartbeat_interval: float = flags.HEARTBEAT_INTERVAL
    missed_heartbeats: int = flags.MISSED_HEARTBEATS
    #: agent heartbeats a second to aim at (heartbeat.scaled_interval); 0: no scaling
    max_agent_heartbeats: float = flags.MAX_AGENT_HEARTBEATS
    allocation_interval: float = flags.ALLOCATION_INTERVAL
    #: how long agents and frameworks known from the log may take to come back
    reregister_timeout: float = flags.REREGISTER_TIMEOUT
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
    #: an offer still unanswered after this long is sent again (same id): a message
    #: lost on a broken connection must not hold resources for good
    offer_resend_interval: float = 10.0
    #: a launched task with no word from its agent after this long is sent again
    #: (doubling up to a minute); the agent ignores task ids it already knows
    launch_retry: float = 10.0
    #: drf | random (see mesos_zmq.allocator.sorter)
    allocator_sorter: str = flags.ALLOCATOR_SORTER
    #: who may do what (None: anything a principal's kind may send)
    acls: Acls | None = None
    #: messages a second per principal (None: unlimited); state kept by the core
    rate_limits: RateLimits | None = None
    #: build large operator reads (the state) off the loop: handlers hand them over as
    #: ``Ready.reads`` (the server does; tests and the simulator answer inline)
    defer_reads: bool = False


@dataclass(frozen=True, slots=True)
class DeferredRead:
    """A read admitted (authenticated, authorized, within its rate) whose answer is
    built elsewhere: by :meth:`MasterCore.answer_read` on an image of this core."""

    peer: bytes
    message: Message
    request_id: str
    principal: Principal | None


@dataclass(slots=True)
class Ready:
    """One batch of effects. Persist ``records`` first, then send ``messages``;
    ``reads`` are answered off the loop (see :mod:`mesos_zmq.master.forked_reads`)."""

    records: list[StateRecord] = field(default_factory=list)
    #: (connection identity, message, request id)
    messages: list[tuple[bytes, Message, str]] = field(default_factory=list)
    reads: list[DeferredRead] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.records or self.messages or self.reads)

    def extend(self, other: Ready) -> None:
        """Append a later batch (its records and messages come after these)."""
        self.records.extend(other.records)
        self.messages.extend(other.messages)
        self.reads.extend(other.reads)


#: which kinds of principal may send what (with keys; without, anyone may send anything)
_AGENT = frozenset({"agent"})
_FRAMEWORK = frozenset({"framework"})
_OPERATOR = frozenset({"operator"})
SENDERS: dict[type[Message], frozenset[str]] = {
    **dict.fromkeys((RegisterAgent, ReregisterAgent, AgentStopping, UsageReport,
                     StatusUpdate, FileData), _AGENT),
    **dict.fromkeys((Subscribe, Accept, Decline, Kill, Acknowledge, Reconcile, Revive,
                     Suppress, Teardown), _FRAMEWORK),
    **dict.fromkeys((OperatorKill, OperatorTeardown, DrainAgent, ReactivateAgent,
                     SetWeights, SetQuota,
                     RemoveQuota, ReserveResources, UnreserveResources), _OPERATOR),
    # a framework reads its own sandboxes and the state (what it may see of them is the
    # ACLs' to say); an operator reads any
    GetState: _FRAMEWORK | _OPERATOR,
    GetTasks: _FRAMEWORK | _OPERATOR,
    ReadFile: _FRAMEWORK | _OPERATOR,
}


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
        self.new_id = new_id
        self.state = state if state is not None else MasterState()
        self.allocator = Allocator(
            dict(config.weights),
            excluded=config.fair_sharing_excluded,
            min_allocatable=None if config.min_allocatable is None
            else [dict(alt) for alt in config.min_allocatable],
            sorter_factory=sorter_factory(config.allocator_sorter),
        )
        for role, alternatives in config.role_min_allocatable:
            self.allocator.set_min_allocatable(role, [dict(alt) for alt in alternatives])
        self.peers: dict[bytes, Peer] = {}
        #: heap of (due, sequence, connection, its Peer) for heartbeats and expiries:
        #: a tick looks only at peers whose time has come (see liveness.check_peers)
        self.peer_timers: list[tuple[float, int, bytes, Peer]] = []
        self._timer_seq = itertools.count()
        #: the interval agents beat at (grows with their number: agent_beat_interval)
        self._agent_interval = config.heartbeat_interval
        #: heap of (due, sequence, kind, id) of away agents' and frameworks' deadlines
        #: (kind "agent", "framework" or "offers": a recovered framework's offers)
        self.deadline_timers: list[tuple[float, int, str, str]] = []
        self.framework_runtimes: dict[str, FrameworkRuntime] = {}
        self.agent_runtimes: dict[str, AgentRuntime] = {}
        self.offers: dict[str, OfferRec] = {}
        self.reads = ReadBook()
        self.reregistered: list[str] = []
        self.instances: dict[tuple[str, str], str] = {}
        self.displaced: OrderedDict[bytes, str] = OrderedDict()
        self.staging_kills: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._ready = Ready()
        #: building the answer of a deferred read (see answer_read)
        self._answering = False
        #: offer id -> when it is next due to be sent again (in due order)
        self.offer_resends: OrderedDict[str, float] = OrderedDict()
        #: (due, interval, framework id, task id) of launches awaiting word from agents
        self.launch_retries: list[tuple[float, float, str, str]] = []
        self._allocate_pending = False
        #: who sent the message being handled (None without keys)
        self.principal: Principal | None = None
        self._last_allocation = now
        self.started_at = now
        #: wall clock minus ``now``'s clock, kept up to date by the shell: ``now`` drives
        #: timers; what is shown to people or written down is wall-clock UTC
        self.wall_offset = 0.0
        self._wall_now = now
        #: the ``now`` of the call being handled (what ``send`` stamps on a peer)
        self._now = now
        #: facts only the shell knows (pid, address, epoch, standbys), shown in ``state``
        self.facts: dict[str, Any] = {}
        self.counters: dict[str, int] = {}
        #: last usage each agent reported per active task (framework_id, task_id)
        self.usage: dict[tuple[str, str], TaskUsage] = {}
        self._handlers: dict[type[Message], Callable[[bytes, Any, str, float], None]] = {
            RegisterAgent: partial(agent_api.register_agent, self),
            ReregisterAgent: partial(agent_api.reregister_agent, self),
            AgentStopping: partial(agent_api.agent_stopping, self),
            Heartbeat: self._on_heartbeat,
            UsageReport: partial(agent_api.usage, self),
            StatusUpdate: partial(agent_api.status_update, self),
            FileData: partial(agent_api.file_data, self),
            Error: self._on_error,
            Subscribe: partial(scheduler_api.subscribe, self),
            Accept: partial(scheduler_api.accept, self),
            Decline: partial(scheduler_api.decline, self),
            Kill: partial(scheduler_api.kill_request, self),
            Acknowledge: partial(scheduler_api.acknowledge, self),
            Reconcile: partial(scheduler_api.reconcile, self),
            Revive: partial(scheduler_api.revive, self),
            Suppress: partial(scheduler_api.suppress, self),
            Teardown: partial(scheduler_api.teardown, self),
            GetState: partial(operator_api.get_state, self),
            GetTasks: partial(operator_api.get_tasks, self),
            OperatorKill: partial(operator_api.operator_kill, self),
            OperatorTeardown: partial(operator_api.operator_teardown, self),
            DrainAgent: partial(operator_api.drain_agent, self),
            ReactivateAgent: partial(operator_api.reactivate_agent, self),
            SetWeights: partial(operator_api.set_weights, self),
            SetQuota: partial(operator_api.set_quota, self),
            RemoveQuota: partial(operator_api.remove_quota, self),
            ReserveResources: partial(operator_api.reserve, self),
            UnreserveResources: partial(operator_api.reserve, self),
            ReadFile: partial(operator_api.read_file, self),
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

    def commit(self, record: StateRecord) -> None:
        # Durable times are wall-clock (UTC seconds): a log outlives the process and the
        # machine whose monotonic clock measured ``now``.
        record = stamped(record, self._wall_now)
        self.state.apply(record)
        self._ready.records.append(record)

    def wall(self, now: float) -> float:
        """``now`` (the timers' clock) as wall-clock UTC seconds."""
        return now + self.wall_offset

    def send(self, peer: bytes, msg: Message, request_id: str = "") -> None:
        self._ready.messages.append((peer, msg, request_id))
        info = self.peers.get(peer)
        if info is not None:
            # Anything the master says is a sign of life to its peer (their monitors
            # count every message): no heartbeat is due for another interval. Under
            # load this spares most heartbeats, a fifth of the messages at 10,000 agents.
            info.monitor.last_sent = self._now

    def error(self, peer: bytes, code: str, message: str, request_id: str) -> None:
        self.count(f"error_{code}")
        self.send(peer, Error(code=code, message=message, in_reply_to=request_id), request_id)

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def send_framework(self, framework_id: str, msg: Message, request_id: str = "") -> bool:
        rt = self.framework_runtimes.get(framework_id)
        if rt is None or rt.peer is None:
            return False
        self.send(rt.peer, msg, request_id)
        return True

    def send_agent(self, agent_id: str, msg: Message, request_id: str = "") -> bool:
        rt = self.agent_runtimes.get(agent_id)
        if rt is None or rt.peer is None:
            return False
        self.send(rt.peer, msg, request_id)
        return True

    @property
    def agent_heartbeat_interval(self) -> float:
        """The interval agents were last told to beat at (for operators' views)."""
        return self._agent_interval

    def agent_beat_interval(self) -> float:
        """The interval agents beat at now: ``--heartbeat-interval``, longer in a cluster
        of more agents than ``--max-agent-heartbeats`` x interval (heartbeat.scaled_interval);
        counted over every agent the master knows, connected or not, so a new leader
        tells re-registering agents the interval of the whole cluster at once."""
        self._agent_interval = scaled_interval(
            self.config.heartbeat_interval, len(self.state.agents),
            self.config.max_agent_heartbeats, self._agent_interval)
        return self._agent_interval

    def bind(self, peer: bytes, kind: str, ident: str, now: float) -> None:
        """Bind a connection to an agent/framework, unbinding any older connection."""
        old = self.peers.get(peer)
        if old is not None and (old.kind, old.id) != (kind, ident):
            self.unbind_peer(peer)
        interval = (self.agent_beat_interval() if kind == "agent"
                    else self.config.heartbeat_interval)
        monitor = HeartbeatMonitor(interval, self.config.missed_heartbeats)
        monitor.reset(now)
        self.displaced.pop(peer, None)  # subscribed again: its own choice
        info = Peer(kind, ident, monitor,
                    None if self.principal is None else self.principal.name)
        self.peers[peer] = info
        self.schedule_peer(peer, info, now + monitor.interval)
        rt: FrameworkRuntime | AgentRuntime
        rt = self.framework_runtimes[ident] if kind == "framework" else self.agent_runtimes[ident]
        if rt.peer is not None and rt.peer != peer:
            self.peers.pop(rt.peer, None)
        rt.peer = peer

    def schedule_deadline(self, kind: str, ident: str, due: float) -> None:
        """Look at ``kind`` ``ident``'s deadline at ``due`` (``liveness.check_deadlines``
        re-checks the runtime then: an entry is only a reminder)."""
        heapq.heappush(self.deadline_timers, (due, next(self._timer_seq), kind, ident))

    def schedule_peer(self, peer: bytes, info: Peer, due: float) -> None:
        """Look at ``peer`` again at ``due`` (an entry whose Peer is no longer bound to
        the connection is dropped when it comes up)."""
        heapq.heappush(self.peer_timers, (due, next(self._timer_seq), peer, info))

    def unbind_peer(self, peer: bytes) -> None:
        info = self.peers.pop(peer, None)
        if info is None:
            return
        table = self.framework_runtimes if info.kind == "framework" else self.agent_runtimes
        rt = table.get(info.id)
        if rt is not None and rt.peer == peer:
            rt.peer = None

    # ================================================================= entry points
    def handle(self, peer: bytes, msg: Message, request_id: str, now: float,
               principal: Principal | None = None) -> Ready:
        """Process one decoded message from connection ``peer``.

        ``principal`` is who the handshake proved the sender to be (None on a master
        without keys). A connection id the sender chose cannot borrow another
        principal's binding: a message from another principal unbinds it first.
        """
        self._wall_now = self.wall(now)
        self._now = now
        self.principal = principal
        info = self.peers.get(peer)
        if info is not None and principal is not None and info.principal != principal.name:
            self.unbind_peer(peer)
            info = None
        if info is not None:
            info.monitor.received(now)
        allowed = SENDERS.get(type(msg))
        limits = self.config.rate_limits
        # Frameworks and operators are limited (as Mesos limits frameworks); agents are
        # not: their updates are what the cluster runs on. Errors count too (they are
        # logged), heartbeats never.
        if (principal is not None and limits is not None and principal.kind != "agent"
                and (allowed is not None or type(msg) is Error)):
            wait = limits.admit(principal.name, now)
            if wait > 0:
                self.error(peer, "rate_limited", f"principal {principal.name!r} is over "
                           f"its rate limit: {msg.TYPE} not handled, retry in "
                           f"{wait:.2f} s", request_id)
                return self._take()
        if principal is not None and allowed is not None and principal.kind not in allowed:
            self.error(peer, "unauthorized", f"{principal.kind} {principal.name!r} may not "
                       f"send {msg.TYPE} (only {' or '.join(sorted(allowed))} principals "
                       "may)", request_id)
            return self._take()
        handler = self._handlers.get(type(msg))
        if handler is None:
            self.error(peer, "unexpected", f"the master does not accept {msg.TYPE}", request_id)
        else:
            handler(peer, msg, request_id, now)
        return self._take()

    def tick(self, now: float, heard_until: float | None = None) -> Ready:
        """Advance time: heartbeats, expiries, retries, allocation.

        ``heard_until``: the last moment everything peers had sent was read (the shell's
        input queue was empty then; default ``now``). A peer is judged silent only up to
        it: a master reading a backlog must not remove agents whose heartbeats are in
        that backlog (5,220 agents were, once, at 10,000 agents under load).
        """
        self._wall_now = self.wall(now)
        self._now = now
        self.principal = None
        liveness.check_peers(self, now, now if heard_until is None else min(now, heard_until))
        liveness.check_deadlines(self, now, heard_until)
        task_book.retry_master_updates(self, now)
        operator_api.expire_reads(self, now)
        offers.expire(self, now)
        offers.resend_due(self, now)
        offers.retry_launches(self, now)
        agent_api.log_reregistered(self)
        if self._allocate_pending or now - self._last_allocation >= self.config.allocation_interval:
            self._allocate(now)
        return self._take()

    def request_allocation(self) -> None:
        self._allocate_pending = True

    # ================================================================= recovery
    def _recover(self, now: float) -> None:
        """Rebuild runtime state after replaying the log: everyone must come back."""
        deadline = now + self.config.reregister_timeout
        totals = []
        for agent in self.state.agents.values():
            self.agent_runtimes[agent.agent_id] = AgentRuntime(deadline=deadline)
            self.schedule_deadline("agent", agent.agent_id, deadline)
            try:
                total = self.agent_total(agent.agent_id, Resources.parse(agent.resources))
            except ResourceError:
                total = Resources.empty()
            totals.append((agent.agent_id, total))
        self.allocator.add_agents(totals, active=False)  # active once re-registered
        hold = self.config.heartbeat_interval * self.config.missed_heartbeats
        for info in self.state.frameworks.values():
            grace = max(info.failover_timeout, self.config.reregister_timeout)
            self.framework_runtimes[info.framework_id] = FrameworkRuntime(
                deadline=now + grace, recovered=True, offers_until=now + hold
            )
            self.schedule_deadline("framework", info.framework_id, now + grace)
            self.schedule_deadline("offers", info.framework_id, now + hold)
            self.allocator.add_framework(
                info.framework_id, info.roles, info.capabilities, active=False
            )
        for (fid, agent_id), seconds in self.state.filters.items():
            if fid in self.framework_runtimes and self.allocator.has_agent(agent_id):
                # The old leader's clock is not ours: each filter runs its full length
                # again from the take-over (a filter is a hint; erring long is safe).
                self.allocator.add_filter(fid, agent_id, now + seconds)
        for status in self.state.pending_updates.values():
            fw_rt = self.framework_runtimes.get(status.framework_id)
            if fw_rt is not None:
                fw_rt.pending[status.uuid] = (status, now)  # resent once it re-subscribes
        # What offers and running tasks hold, counted in the allocator in one go
        # (shares once per framework and role): one call per offer was most of a
        # takeover with an offer outstanding on each of 10,000 agents.
        held: list[tuple[str, str, str, Resources]] = []
        for offer_id, offer in self.state.offers.items():
            fw_rt = self.framework_runtimes.get(offer["framework_id"])
            ag_rt = self.agent_runtimes.get(offer["agent_id"])
            try:
                resources = Resources.parse(offer["resources"])
            except ResourceError:
                continue
            if fw_rt is None or ag_rt is None:
                continue
            # The offer keeps its id; its expiry restarts from the take-over.
            self.offers[offer_id] = OfferRec(offer_id, offer["framework_id"],
                                               offer["agent_id"], offer["role"], resources, now)
            fw_rt.offers.add(offer_id)
            ag_rt.offers.add(offer_id)
            self.offer_resends[offer_id] = now + self.config.offer_resend_interval
            held.append((offer["framework_id"], offer["role"], offer["agent_id"], resources))
        # Running tasks are summed by shape per framework, role and agent: one call per
        # task was most of a takeover at 100,000 tasks (2.4 s before the new leader
        # could publish itself).
        shapes: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        agents = self.state.agents
        unreachable = TaskState.UNREACHABLE
        for rec in self.state.tasks.values():
            task = rec.task
            if rec.state != unreachable and task.agent_id in agents:
                shapes[(rec.framework_id, task.role or "*", task.agent_id)][task.resources] += 1
        # Agents mostly hold the same mix of shapes: each mix is summed once.
        sums: dict[tuple[tuple[str, int], ...], Resources] = {}
        odd_mixes: set[tuple[tuple[str, int], ...]] = set()
        mixed: set[str] = set()
        #: (framework, role, agent) of an odd mix -> its tasks' scalars one by one
        shares: dict[tuple[str, str, str], dict[str, float]] = {}

        def summed(agent_id: str, counted: Counter[str]) -> Resources:
            mix = tuple(counted.items())
            total = sums.get(mix)
            if total is None:
                try:
                    total = Resources.total_of_texts(counted, tolerant=False)
                except ResourceError:  # a name in two kinds (a log from before the rule)
                    total = Resources.total_of_texts(counted)
                    odd_mixes.add(mix)
                sums[mix] = total
            if mix in odd_mixes:
                mixed.add(agent_id)
            return total

        for (fid, role, agent_id), counted in shapes.items():
            held.append((fid, role, agent_id, summed(agent_id, counted)))
            if tuple(counted.items()) in odd_mixes:
                # live, each task's whole scalars were counted (allocate_to), and its
                # end un-counts them (recover): count the same here, not the sum's
                shares[(fid, role, agent_id)] = Resources.scalar_sum(
                    Resources.parsed_counts(counted))
        self.allocator.allocate_many(held, mixed, shares)

    def defer_read(self, peer: bytes, msg: Message, request_id: str) -> bool:
        """Hand a read the caller has admitted to the shell, to be answered off the
        loop; False when it must be answered here (reads are not deferred, or this is
        the deferred answer being built)."""
        if not self.config.defer_reads or self._answering:
            return False
        self._ready.reads.append(DeferredRead(peer, msg, request_id, self.principal))
        return True

    def answer_read(self, read: DeferredRead, now: float) -> Ready:
        """The answer to a deferred read, built on whatever image of the core runs
        this (a forked child's). Its admission was decided when it arrived."""
        handler = self._handlers[type(read.message)]
        self._wall_now = self.wall(now)
        self._now = now
        self.principal = read.principal
        self._answering = True
        try:
            handler(read.peer, read.message, read.request_id, now)
        finally:
            self._answering = False
        return self._take()

    def heard(self, peer: bytes, now: float, principal: Principal | None = None) -> bool:
        """A heartbeat from a connection bound under ``principal``: as :meth:`handle`
        would take it (a sign of life; nothing to answer, nothing to log), for the
        shell's fast path, which then need not decode it. False: the connection is not
        bound (or not to that principal), and the heartbeat goes through :meth:`handle`,
        which says so to the sender."""
        info = self.peers.get(peer)
        if info is None or (principal is not None and info.principal != principal.name):
            return False
        info.monitor.received(now)
        return True

    def reregistered_again(self, peer: bytes, agent_id: str, request_id: str, now: float,
                           principal: Principal | None = None) -> Ready | None:
        """An agent's re-registration repeated on the connection bound to it, as
        :meth:`handle` would take it (answered again, nothing changed: see
        ``agent_api.repeated_reregistration``), for the shell's fast path, which then
        need not validate the task reports it carries (about 100 µs a message at 10
        tasks). None: not such a repeat, and the message goes through :meth:`handle`."""
        info = self.peers.get(peer)
        if info is None or (principal is not None and info.principal != principal.name):
            return None
        if not agent_api.repeated_reregistration(self, peer, agent_id):
            return None
        self._wall_now = self.wall(now)
        self._now = now
        self.principal = principal
        info.monitor.received(now)
        agent_api.answer_repeat(self, peer, agent_id, request_id)
        return self._take()

    # ================================================================= any peer
    def _on_heartbeat(self, peer: bytes, msg: Heartbeat, rid: str, now: float) -> None:
        if peer not in self.peers and not instances.tell_displaced(self, peer, rid):
            self.error(peer, "not_registered", "unknown connection: register first", rid)

    def require(self, peer: bytes, kind: str, rid: str, ident: str | None = None) -> bool:
        info = self.peers.get(peer)
        if info is None and instances.tell_displaced(self, peer, rid):
            return False
        if info is None or info.kind != kind:
            what = "register as an agent" if kind == "agent" else "subscribe"
            self.error(peer, "not_registered", f"unknown connection: {what} first", rid)
            return False
        if ident is not None and info.id != ident:
            self.error(
                peer, "invalid", f"this connection belongs to {kind} {info.id}, not {ident}", rid
            )
            return False
        return True

    def _on_error(self, peer: bytes, msg: Error, rid: str, now: float) -> None:
        pending = self.reads.pop(msg.in_reply_to)
        if pending is not None:
            self.send(
                pending.peer,
                Error(code=msg.code, message=msg.message, in_reply_to=pending.request_id),
                pending.request_id,
            )
            return
        info = self.peers.get(peer)
        log.info("peer reported an error", code=msg.code, message=msg.message[:200],
                 peer_kind=info.kind if info else "unknown", peer_id=info.id if info else "")

    # ================================================================= reservations, kills
    def framework_peer_ok(self, peer: bytes, framework_id: str, rid: str) -> bool:
        return self.require(peer, "framework", rid, framework_id)

    def dynamic_reservations(self, agent_id: str) -> Resources:
        try:
            return Resources.parse(self.state.reservations.get(agent_id, ""))
        except ResourceError:
            return Resources.empty()

    def agent_total(self, agent_id: str, static: Resources) -> Resources:
        """The agent's resources with its dynamic reservations applied."""
        dynamic = self.dynamic_reservations(agent_id)
        if dynamic and static.contains(dynamic.flatten()):
            return static - dynamic.flatten() + dynamic
        return static

    def set_reservations(self, agent_id: str, old: Resources, new: Resources,
                          now: float) -> None:
        """Record a conversion: ``new`` reserved (RESERVE) or ``old`` released (UNRESERVE)."""
        dynamic = self.dynamic_reservations(agent_id)
        dynamic = dynamic + new if new.roles() - {"*"} else dynamic - old
        self.commit(ReservationsSet(agent_id=agent_id, reserved=str(dynamic)))

    # ================================================================= offers
    def _allocate(self, now: float) -> None:
        self._allocate_pending = False
        self._last_allocation = now
        offers.allocate(self, now)

    # ================================================================= helpers
    def fresh_id(self, kind: str, taken: dict[str, Any]) -> str:
        prefix = "S" if kind == "agent" else "F"
        while True:
            candidate = f"{self.config.master_id}-{prefix}-{self.new_id()[:12]}"
            if candidate not in taken:
                return candidate

    def describe(self, now: float,
                 shows: Callable[[str, str], bool] | None = None) -> dict[str, Any]:
        """The operator's view of the cluster (plain data for the State message);
        ``shows(action, framework_id)`` leaves out what the reader may not see."""
        return describe_cluster(self, now, shows)

    def runtime_of_framework(self, framework_id: str) -> tuple[bool, int]:
        """(connected, outstanding offers) of a framework, for the operator's view."""
        rt = self.framework_runtimes.get(framework_id)
        return (rt is not None and rt.peer is not None, len(rt.offers) if rt else 0)

    def agent_connected(self, agent_id: str) -> bool:
        rt = self.agent_runtimes.get(agent_id)
        return rt is not None and rt.peer is not None


if TYPE_CHECKING:
    from mesos_zmq.master.context import MasterContext

    def _is_a_context(core: MasterCore) -> MasterContext:
        """mypy proves here that the core offers everything handlers are typed against."""
        return core
