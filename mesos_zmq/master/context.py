"""What the master's handlers and views may use of the master core.

Theory of operation
-------------------
The core (:mod:`mesos_zmq.master.core`) is the façade: it owns the state, dispatches
each message to a handler by peer kind (:mod:`~mesos_zmq.master.agent_api`,
:mod:`~mesos_zmq.master.scheduler_api`, :mod:`~mesos_zmq.master.operator_api`) and ticks the
timers. Handlers see it only through :class:`MasterContext`, so imports run one way
(core → handlers → this protocol → state, runtime, allocator) and a handler cannot
reach anything the core keeps to itself (ruff's SLF001 is on for the package).

The write-ahead rule: a handler validates first, then :meth:`MasterContext.commit`\\ s
the records of what it decided (applied to the state at once, persisted by the shell
before anything of the batch is sent), and only then :meth:`~MasterContext.send`\\ s.
A handler that refuses commits nothing. One that raises after committing leaves what
it committed applied and queued (the shell logs the failure and answers ``internal``):
handlers validate everything before their first commit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Set
from typing import Any, Protocol

from mesos_zmq.allocator.allocator import Allocator, Quota
from mesos_zmq.auth.acls import Acls
from mesos_zmq.auth.principal import Principal
from mesos_zmq.master.records import StateRecord
from mesos_zmq.master.runtime import AgentRuntime, FrameworkRuntime, OfferRec, Peer, ReadBook
from mesos_zmq.master.state import AgentRecord, MasterState, TaskKey, TaskRecord
from mesos_zmq.protocol import FrameworkInfo, Message, TaskUsage
from mesos_zmq.resources import Resources


class MasterConfigView(Protocol):
    """The settings handlers read (see ``MasterCoreConfig``)."""

    @property
    def master_id(self) -> str: ...
    @property
    def heartbeat_interval(self) -> float: ...
    @property
    def missed_heartbeats(self) -> int: ...
    @property
    def roles(self) -> tuple[str, ...] | None: ...
    @property
    def read_timeout(self) -> float: ...
    @property
    def offer_timeout(self) -> float | None: ...
    @property
    def offer_resend_interval(self) -> float: ...
    @property
    def launch_retry(self) -> float: ...
    @property
    def status_update_retry(self) -> float: ...
    @property
    def acls(self) -> Acls | None: ...


class AllocatorView(Protocol):
    """What the operator's view reads of the allocator."""

    def role_shares(self) -> dict[str, float]: ...
    def weights(self) -> dict[str, float]: ...
    def quotas(self) -> dict[str, Quota]: ...
    def role_allocation(self, role: str) -> dict[str, float]: ...


class StateView(Protocol):
    """The durable state as a view reads it: mappings without setters, so mypy refuses
    a view that would change what it describes (``MasterState`` satisfies it)."""

    @property
    def frameworks(self) -> Mapping[str, FrameworkInfo]: ...
    @property
    def agents(self) -> Mapping[str, AgentRecord]: ...
    @property
    def tasks(self) -> Mapping[TaskKey, TaskRecord]: ...
    @property
    def completed(self) -> Mapping[TaskKey, TaskRecord]: ...
    @property
    def reservations(self) -> Mapping[str, str]: ...
    @property
    def draining(self) -> Mapping[str, Mapping[str, Any]]: ...
    @property
    def tasks_by_agent(self) -> Mapping[str, Set[TaskKey]]: ...
    def completed_of(self, framework_id: str) -> list[TaskRecord]: ...


class ClusterView(Protocol):
    """The master as :mod:`~mesos_zmq.master.views` reads it: read-only properties
    and queries, so a view cannot change what it describes."""

    @property
    def state(self) -> StateView: ...
    @property
    def allocator(self) -> AllocatorView: ...
    @property
    def config(self) -> MasterConfigView: ...
    @property
    def counters(self) -> Mapping[str, int]: ...
    @property
    def facts(self) -> Mapping[str, Any]: ...
    @property
    def usage(self) -> Mapping[tuple[str, str], TaskUsage]: ...
    @property
    def started_at(self) -> float: ...
    @property
    def agent_heartbeat_interval(self) -> float: ...
    def wall(self, now: float) -> float: ...
    def runtime_of_framework(self, framework_id: str) -> tuple[bool, int]: ...
    def agent_connected(self, agent_id: str) -> bool: ...


class MasterContext(Protocol):
    """The master core as its handlers and views see it."""

    state: MasterState
    allocator: Allocator
    counters: dict[str, int]
    facts: dict[str, Any]
    started_at: float
    #: last usage reported per active task (framework id, task id)
    usage: dict[tuple[str, str], TaskUsage]
    # runtime tables: what the master knows only while it runs
    peers: dict[bytes, Peer]
    #: heap of (due, sequence, connection, Peer): when each peer is next looked at
    peer_timers: list[tuple[float, int, bytes, Peer]]
    #: heap of (due, sequence, kind, id): when an away runtime's deadline is looked at
    deadline_timers: list[tuple[float, int, str, str]]
    framework_runtimes: dict[str, FrameworkRuntime]
    agent_runtimes: dict[str, AgentRuntime]
    offers: dict[str, OfferRec]
    #: offer id -> when it is next due to be sent again (in due order)
    offer_resends: OrderedDict[str, float]
    #: heap of (due, interval, framework id, task id) of launches awaiting word
    launch_retries: list[tuple[float, float, str, str]]
    reads: ReadBook
    #: agents re-registered since the last tick, logged by it in one line (see
    #: agent_api.log_reregistered)
    reregistered: list[str]
    #: (kind, process ``instance``) -> the agent or framework id it was made (see
    #: master.instances)
    instances: dict[tuple[str, str], str]
    #: connections a framework failed over from, newest last (see
    #: master.instances.displace): anything they send is answered
    #: ``framework_failed_over``, not ``not_registered``
    displaced: OrderedDict[bytes, str]
    #: tasks a kill was asked for while they were staging (newest last, bounded): an
    #: agent that comes back without one is not sent its launch again
    staging_kills: OrderedDict[tuple[str, str], None]
    #: (framework id, scheduler ``instance``) of processes a framework failed over from:
    #: their later subscriptions are refused ``framework_failed_over``
    displaced_instances: OrderedDict[tuple[str, str], None]
    #: who sent the message being handled: the handshake's principal (None without keys)
    principal: Principal | None

    @property
    def config(self) -> MasterConfigView: ...

    # ----------------------------------------------------------------- effects
    def commit(self, record: StateRecord) -> None: ...
    def send(self, peer: bytes, msg: Message, request_id: str = "") -> None: ...
    def error(self, peer: bytes, code: str, message: str, request_id: str) -> None: ...
    def send_agent(self, agent_id: str, msg: Message, request_id: str = "") -> bool: ...
    def send_framework(self, framework_id: str, msg: Message,
                       request_id: str = "") -> bool: ...
    def request_allocation(self) -> None: ...
    def defer_read(self, peer: bytes, msg: Message, request_id: str) -> bool: ...
    def count(self, name: str) -> None: ...
    def new_id(self) -> str: ...
    def fresh_id(self, kind: str, taken: dict[str, Any]) -> str: ...
    def wall(self, now: float) -> float: ...

    # ----------------------------------------------------------------- connections
    def bind(self, peer: bytes, kind: str, ident: str, now: float) -> None: ...
    def unbind_peer(self, peer: bytes) -> None: ...
    def schedule_peer(self, peer: bytes, info: Peer, due: float) -> None: ...
    def schedule_deadline(self, kind: str, ident: str, due: float) -> None: ...
    def agent_beat_interval(self) -> float: ...
    @property
    def agent_heartbeat_interval(self) -> float: ...
    def require(self, peer: bytes, kind: str, rid: str, ident: str | None = None) -> bool: ...
    def framework_peer_ok(self, peer: bytes, framework_id: str, rid: str) -> bool: ...
    def agent_connected(self, agent_id: str) -> bool: ...
    def runtime_of_framework(self, framework_id: str) -> tuple[bool, int]: ...

    # ----------------------------------------------------------------- agents
    def dynamic_reservations(self, agent_id: str) -> Resources: ...
    def agent_total(self, agent_id: str, static: Resources) -> Resources: ...
    def set_reservations(self, agent_id: str, old: Resources, new: Resources,
                         now: float) -> None: ...

    # ----------------------------------------------------------------- views
    def describe(self, now: float,
                 shows: Callable[[str, str], bool] | None = None) -> dict[str, Any]: ...
