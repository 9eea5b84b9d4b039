"""Wire protocol: one versioned msgpack envelope and a typed record per message.

Theory of operation
-------------------
Every ZeroMQ frame that carries a message is a msgpack array of four items, or five
when a master sends it::

    [version, type, request_id, body]
    [version, type, request_id, body, epoch]

``version`` is :data:`PROTOCOL_VERSION`; ``type`` is the tag of a record registered
below with :func:`message`; ``request_id`` is a string chosen by the sender (empty
when the message is not a request) and echoed in the ``in_reply_to`` field of an
:class:`Error`; ``body`` is a map from field name to value; ``epoch`` is the sending
master's leadership term, so that clients can ignore a deposed leader.

A frame may also carry several messages for one peer, a **batch**: a msgpack array
whose items are envelopes (at most :data:`MAX_BATCH_MESSAGES`), told apart from a single
envelope by its first item being an array rather than the version. Senders batch what
one turn of their loop has for the same peer (:func:`batches`); a receiver handles the
items in order, each as if it had come alone (a refused item gets its own error reply,
and the others still count). A batch is transport, not meaning: nothing may depend on
which messages shared a frame. Batches do not nest.

Records are frozen, slotted dataclasses. Decoding validates every field against the
record's annotations (``int`` never accepts ``bool``, ``float`` accepts ``int``,
nested records are maps, lists and maps are checked item by item, ``Any`` takes plain
data nested at most :data:`MAX_ANY_DEPTH` levels) and fills defaults
for missing optional fields; unknown fields are ignored so that a newer peer can add
optional fields without breaking older ones. Anything else (a frame over the size
limit, bytes that are not msgpack, a wrong envelope shape, an unknown version or type,
a missing or mistyped field) raises :class:`~mesos_zmq.errors.ProtocolError` whose
``code`` is one of :data:`ERROR_CODES`; the shell replies with an :class:`Error` and
drops the frame. Decoding never changes state, so a hostile frame costs one reply.

This module is pure: no sockets, no clock.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import msgpack

from mesos_zmq.errors import ProtocolError

PROTOCOL_VERSION = 1
#: Frames larger than this are refused before msgpack sees them.
DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
#: the most messages one batch frame may carry
MAX_BATCH_MESSAGES = 1000
#: senders close a batch before it grows past this many bytes: well under every
#: receiver's frame limit, and under the size from which the master tracks a frame
#: until it is sent (mesos_zmq.transport.TRACKED_BYTES); a larger message goes alone
BATCH_BYTES = 48 * 1024
#: the most tasks one ``get_tasks`` page (or a capped ``state``) holds: a page of the
#: largest tasks stays well under a frame
MAX_TASKS_PAGE = 1000

ERROR_CODES = (
    "oversized",  # frame larger than the limit
    "malformed",  # not msgpack, or not a 4-item envelope
    "bad_version",  # envelope version is not PROTOCOL_VERSION
    "unknown_type",  # no record registered under that tag
    "bad_field",  # missing, mistyped or invalid field
    "not_registered",  # sender must (re)register or (re)subscribe first
    "unexpected",  # a known message that this receiver does not accept
    "invalid",  # a well-formed request refused (stale offer, duplicate task id...)
    "framework_removed",  # that framework id was removed; subscribe without one
    "unauthorized",  # the sender's principal may not do this (ACLs, ownership)
    "rate_limited",  # the sender's principal is over its rate limit; retry later
    "unread_replies",  # the connection has too much asked and not yet read
    "internal",  # the receiver failed; the request had no effect
)

_T = TypeVar("_T", bound="Message")
_R = TypeVar("_R")


class Message:
    """Base of every record; ``TYPE`` is its wire tag."""

    __slots__ = ()
    TYPE: ClassVar[str] = ""


_REGISTRY: dict[str, type[Message]] = {}
_Checker = Callable[[Any, Any], Any]  # (value, where: str or a chain, see _loc)
_FIELDS: dict[type[Any], list[tuple[str, _Checker, Any, Any]]] = {}
_MISSING = dataclasses.MISSING


def message(tag: str) -> Callable[[type[_T]], type[_T]]:
    """Register a record class under a wire tag (one tag, one class)."""

    def register(cls: type[_T]) -> type[_T]:
        if tag in _REGISTRY:
            raise RuntimeError(f"duplicate message tag {tag!r}")
        cls.TYPE = tag
        _REGISTRY[tag] = cls
        return cls

    return register


def record_types() -> dict[str, type[Message]]:
    """All registered message records by tag (for docs and tests)."""
    return dict(_REGISTRY)


# --------------------------------------------------------------------------- records
# Nested records (not messages on their own).


#: field metadata: leave the field out of plain data while it holds its default (for
#: fields added later, so that records older code wrote read back the same)
OMIT_DEFAULT = "mesos_zmq.omit_default"


@dataclass(frozen=True, slots=True)
class FrameworkInfo:
    """What a framework says about itself when it subscribes."""

    name: str
    user: str = ""
    framework_id: str = ""  # empty on first subscription; the old id to fail over
    roles: list[str] = field(default_factory=lambda: ["*"])
    failover_timeout: float = 0.0  # seconds the master keeps its tasks while it is away
    capabilities: list[str] = field(default_factory=list)  # e.g. PARTITION_AWARE, GPU_RESOURCES
    hostname: str = ""
    #: roles it wants no offers for until it revives them (Mesos's suppressed_roles):
    #: given when subscribing, kept current by suppress/revive and logged with the
    #: framework, so a framework stays suppressed across reconnections and failovers
    suppressed_roles: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """How the agent checks a running task (Mesos's HealthCheck, simplified).

    ``kind`` is ``COMMAND`` (``command`` run by ``/bin/sh -c`` in the sandbox with the
    task's environment; exit 0 is healthy), ``TCP`` (a connection to ``port`` on
    127.0.0.1 succeeds) or ``HTTP`` (a GET of ``http://127.0.0.1:{port}{path}`` answers
    2xx or 3xx). Checks start ``delay`` seconds after launch and run every ``interval``
    seconds, each bounded by ``timeout``. Failures inside ``grace_period`` seconds of
    launch do not count until a check has succeeded once; after
    ``consecutive_failures`` failures in a row the task is killed (0 never kills).
    """

    kind: str
    command: str = ""
    port: int = 0
    path: str = "/"
    delay: float = 0.0
    interval: float = 10.0
    timeout: float = 20.0
    grace_period: float = 10.0
    consecutive_failures: int = 3


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task to launch: a shell command (or argv) with the resources it may use."""

    task_id: str
    agent_id: str
    resources: str  # Mesos-style resource string, must fit in the accepted offers
    name: str = ""
    command: str = ""  # run by /bin/sh -c when shell is true
    argv: list[str] = field(default_factory=list)  # run directly when shell is false
    shell: bool = True
    env: dict[str, str] = field(default_factory=dict)
    kill_grace_period: float | None = None  # seconds between SIGTERM and SIGKILL
    role: str = ""  # the role of the offer the task was launched from (set by the master)
    health_check: HealthCheck | None = None
    #: the user the task runs as (Mesos's CommandInfo.user); empty: the framework's user.
    #: The master fills it in before the task reaches an agent.
    user: str = field(default="", metadata={OMIT_DEFAULT: True})


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """One status update for one task; ``uuid`` identifies it for acknowledgement."""

    task_id: str
    framework_id: str
    agent_id: str
    state: str  # one of mesos_zmq.tasks.TaskState values
    uuid: str  # empty for updates that need no acknowledgement (reconciliation)
    timestamp: float
    source: str = "agent"  # agent | master | executor
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    healthy: bool | None = None  # set when the task has a health check and it has run


@dataclass(frozen=True, slots=True)
class Offer:
    """Resources of one agent offered to one framework in one role."""

    offer_id: str
    framework_id: str
    agent_id: str
    hostname: str
    role: str
    resources: str
    attributes: str = ""


@dataclass(frozen=True, slots=True)
class TaskReport:
    """What an agent runs, sent on re-registration so the master can reconcile."""

    task: TaskInfo
    framework_id: str
    state: str
    exit_code: int | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """An offer operation applied before an accept's tasks launch.

    ``RESERVE`` turns unreserved resources of the offers into resources reserved for
    the offer's role (``resources`` names them reserved: ``cpus(eng):2;mem(eng):512``);
    ``UNRESERVE`` turns dynamically reserved ones back. Changes go through the log.
    """

    kind: str  # RESERVE | UNRESERVE
    resources: str


@dataclass(frozen=True, slots=True)
class ReconcileTask:
    """A task a framework asks about during explicit reconciliation."""

    task_id: str
    agent_id: str = ""


# --------------------------------------------------------------------------- common


@message("error")
@dataclass(frozen=True, slots=True)
class Error(Message):
    """Sent in place of a reply when a frame or request is refused; nothing changed."""

    code: str
    message: str
    in_reply_to: str = ""  # request id of the refused message, if it had one


@dataclass(frozen=True, slots=True)
class TaskUsage:
    """What one task used, as its isolator measured it."""

    framework_id: str
    task_id: str
    cpu_seconds: float  # user + system since the task started
    rss_bytes: int  # resident memory now
    peak_bytes: int  # highest resident memory seen


@message("usage")
@dataclass(frozen=True, slots=True)
class UsageReport(Message):
    """Agent to master, every usage interval: per-task resource usage (not logged)."""

    agent_id: str
    tasks: list[TaskUsage] = field(default_factory=list)


@message("heartbeat")
@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Sent both ways every heartbeat interval; any message also counts as a beat.

    From the master to an agent, ``interval`` (when not 0) is the interval the agent
    beats at from now on: the master lengthens it as the cluster grows (see
    ``--max-agent-heartbeats``) and shortens it as the cluster shrinks.
    """

    seq: int = 0
    interval: float = 0.0


# --------------------------------------------------------------------------- agent <-> master


@message("register_agent")
@dataclass(frozen=True, slots=True)
class RegisterAgent(Message):
    """A new agent (no checkpointed id) joins the cluster."""

    hostname: str
    resources: str
    attributes: str = ""
    version: str = ""
    #: as ReregisterAgent's: an attempt of a process that was given an agent id
    #: already (its answer went to a connection it has left) gets that id again
    instance: str = ""
    attempt: int = 0


@message("reregister_agent")
@dataclass(frozen=True, slots=True)
class ReregisterAgent(Message):
    """A known agent reconnects (after its own or the master's restart)."""

    agent_id: str
    hostname: str
    resources: str
    attributes: str = ""
    tasks: list[TaskReport] = field(default_factory=list)
    version: str = ""
    #: the agent process (a name it chose) and its attempt's number: one numbered
    #: below an attempt already taken from the same process came late, on a
    #: connection it has left, and is ignored ("" and 0: not told)
    instance: str = ""
    attempt: int = 0


@message("agent_stopping")
@dataclass(frozen=True, slots=True)
class AgentStopping(Message):
    """A registered agent is stopping on purpose (a restart, a drain): the master makes no
    more offers on it and sends it no task until it re-registers. Its tasks are kept for
    the heartbeat limit, as if it had gone silent, so that a restart loses nothing."""

    agent_id: str
    reason: str = ""


@message("agent_registered")
@dataclass(frozen=True, slots=True)
class AgentRegistered(Message):
    """The master's answer to register/reregister; the agent persists ``agent_id``."""

    agent_id: str
    heartbeat_interval: float
    missed_heartbeats: int
    reregistered: bool = False


@message("run_tasks")
@dataclass(frozen=True, slots=True)
class RunTasks(Message):
    """Master to agent: launch these tasks for this framework."""

    framework_id: str
    tasks: list[TaskInfo]
    framework_name: str = ""


@message("kill_task")
@dataclass(frozen=True, slots=True)
class KillTask(Message):
    """Master to agent: kill one task (SIGTERM, then SIGKILL after the grace period)."""

    framework_id: str
    task_id: str
    #: caps the task's own grace period (an operator draining the agent set it)
    grace: float | None = None


@message("shutdown_framework")
@dataclass(frozen=True, slots=True)
class ShutdownFramework(Message):
    """Master to agent: the framework is gone, kill all of its tasks."""

    framework_id: str


@message("update_framework")
@dataclass(frozen=True, slots=True)
class UpdateFramework(Message):
    """Master to agent: the framework's scheduler is back (it re-subscribed); send its
    unacknowledged updates now rather than when their back-off next comes round
    (Mesos's UpdateFrameworkMessage)."""

    framework_id: str


@message("status_update")
@dataclass(frozen=True, slots=True)
class StatusUpdate(Message):
    """Agent to master and master to framework; retried until acknowledged."""

    status: TaskStatus


@message("acknowledge")
@dataclass(frozen=True, slots=True)
class Acknowledge(Message):
    """Framework to master, then master to agent: the update ``uuid`` was handled."""

    framework_id: str
    agent_id: str
    task_id: str
    uuid: str


# --------------------------------------------------------------------------- framework <-> master


@message("subscribe")
@dataclass(frozen=True, slots=True)
class Subscribe(Message):
    """A framework (re)subscribes; with ``framework_id`` set it fails over to this peer."""

    framework: FrameworkInfo
    #: the scheduler process (a name it chose) and its attempt's number, as
    #: ReregisterAgent's: one that came late on a connection left behind is ignored,
    #: and a process's second first subscription is the framework its first made
    instance: str = ""
    attempt: int = 0


@message("subscribed")
@dataclass(frozen=True, slots=True)
class Subscribed(Message):
    """The master's answer to subscribe."""

    framework_id: str
    heartbeat_interval: float
    missed_heartbeats: int
    reregistered: bool = False
    #: the subscription named a framework id this master did not know: a new framework
    #: was registered under that id, and nothing of an earlier one (tasks, updates) is
    #: known to this master
    unknown_id: bool = False


@message("offers")
@dataclass(frozen=True, slots=True)
class Offers(Message):
    """Master to framework: new resource offers."""

    offers: list[Offer]


@message("rescind")
@dataclass(frozen=True, slots=True)
class Rescind(Message):
    """Master to framework: this offer is no longer valid (agent lost, timeout...)."""

    offer_id: str


@message("accept")
@dataclass(frozen=True, slots=True)
class Accept(Message):
    """Use offers (all on one agent) to launch tasks; what is left is declined."""

    framework_id: str
    offer_ids: list[str]
    tasks: list[TaskInfo] = field(default_factory=list)
    refuse_seconds: float = 5.0
    operations: list[Operation] = field(default_factory=list)


@message("decline")
@dataclass(frozen=True, slots=True)
class Decline(Message):
    """Give offers back and do not re-offer those agents for ``refuse_seconds``."""

    framework_id: str
    offer_ids: list[str]
    refuse_seconds: float = 5.0


@message("kill")
@dataclass(frozen=True, slots=True)
class Kill(Message):
    """Framework to master: kill one of its tasks."""

    framework_id: str
    task_id: str
    agent_id: str = ""


@message("reconcile")
@dataclass(frozen=True, slots=True)
class Reconcile(Message):
    """Ask for the latest state of tasks; an empty list asks for all (implicit)."""

    framework_id: str
    tasks: list[ReconcileTask] = field(default_factory=list)


@message("revive")
@dataclass(frozen=True, slots=True)
class Revive(Message):
    """Clear decline filters and resume offers (for ``roles``, or all when empty)."""

    framework_id: str
    roles: list[str] = field(default_factory=list)


@message("suppress")
@dataclass(frozen=True, slots=True)
class Suppress(Message):
    """Stop sending offers (for ``roles``, or all when empty) until revived."""

    framework_id: str
    roles: list[str] = field(default_factory=list)


@message("teardown")
@dataclass(frozen=True, slots=True)
class Teardown(Message):
    """Framework is done: kill its tasks and forget it."""

    framework_id: str


# --------------------------------------------------------------------------- operator


@message("get_state")
@dataclass(frozen=True, slots=True)
class GetState(Message):
    """Operator asks for a snapshot of the cluster."""

    #: at most this many tasks (0..MAX_TASKS_PAGE), the newest first; None: every task
    #: (a large cluster's whole state may exceed a frame: page with GetTasks instead)
    tasks_limit: int | None = None


@message("state")
@dataclass(frozen=True, slots=True)
class State(Message):
    """The snapshot: frameworks, agents, tasks (plain maps, see docs/protocol.md)."""

    state: dict[str, Any]


@message("get_tasks")
@dataclass(frozen=True, slots=True)
class GetTasks(Message):
    """Operator asks for one page of the task listing (Mesos's ``/tasks``)."""

    limit: int = 100  # 0..MAX_TASKS_PAGE tasks
    offset: int = 0  # tasks of the listing skipped before the page
    order: str = "desc"  # desc: newest first; asc: oldest first
    framework_id: str = ""  # only this framework's tasks (empty: every framework's)
    which: str = "all"  # all | active | completed


@message("tasks")
@dataclass(frozen=True, slots=True)
class Tasks(Message):
    """Answer to GetTasks: a page of task views and how many the listing holds."""

    tasks: list[dict[str, Any]]
    total: int


@message("operator_kill")
@dataclass(frozen=True, slots=True)
class OperatorKill(Message):
    """Operator asks to kill a task by id (any framework)."""

    task_id: str
    framework_id: str = ""


@message("operator_teardown")
@dataclass(frozen=True, slots=True)
class OperatorTeardown(Message):
    """Operator tears a framework down (Mesos's /teardown): its tasks killed, the
    framework removed for good."""

    framework_id: str


@message("drain_agent")
@dataclass(frozen=True, slots=True)
class DrainAgent(Message):
    """Operator drains an agent: no more offers on it, its tasks killed; persisted."""

    agent_id: str
    grace: float | None = None  # caps each task's kill grace period, in seconds


@message("reactivate_agent")
@dataclass(frozen=True, slots=True)
class ReactivateAgent(Message):
    """Operator ends the drain of an agent: it is offered again."""

    agent_id: str


@message("set_weights")
@dataclass(frozen=True, slots=True)
class SetWeights(Message):
    """Operator sets role weights (roles not named keep theirs); persisted."""

    weights: dict[str, float]


@message("set_quota")
@dataclass(frozen=True, slots=True)
class SetQuota(Message):
    """Operator sets a role's quota; scalar resource text like ``cpus:4;mem:4096``.

    ``guarantee`` is held for the role until used; ``limit`` is never exceeded; both
    count over the role's subtree. Empty text means none.
    """

    role: str
    guarantee: str = ""
    limit: str = ""
    #: set a guarantee the cluster's current resources cannot satisfy
    force: bool = False


@message("remove_quota")
@dataclass(frozen=True, slots=True)
class RemoveQuota(Message):
    """Operator removes a role's quota."""

    role: str


@message("reserve_resources")
@dataclass(frozen=True, slots=True)
class ReserveResources(Message):
    """Operator reserves unallocated resources of an agent for a role (dynamically)."""

    agent_id: str
    resources: str  # reserved form, e.g. cpus(eng):2;mem(eng):1024


@message("unreserve_resources")
@dataclass(frozen=True, slots=True)
class UnreserveResources(Message):
    """Operator gives dynamically reserved, unallocated resources back to everyone."""

    agent_id: str
    resources: str


@message("operator_reply")
@dataclass(frozen=True, slots=True)
class OperatorReply(Message):
    """Success answer to an operator request."""

    message: str


@message("read_file")
@dataclass(frozen=True, slots=True)
class ReadFile(Message):
    """Read part of a file in a task's sandbox (client to master, master to agent).

    ``path`` is relative to the sandbox (``stdout``, ``stderr``, ``out/log.txt``);
    absolute paths and anything that resolves outside the sandbox are refused.
    """

    agent_id: str
    task_id: str
    path: str = "stdout"
    offset: int = 0
    length: int = 65536
    framework_id: str = ""


@message("file_data")
@dataclass(frozen=True, slots=True)
class FileData(Message):
    """Answer to ReadFile: ``data`` starts at ``offset``; ``size`` is the file's size now.

    ``done`` is true when the task is terminal and ``offset + len(data) == size``, so
    a reader following the file knows nothing more will come.
    """

    task_id: str
    path: str
    offset: int
    data: bytes
    size: int
    done: bool = False


# --------------------------------------------------------------------------- validation
# A checker takes the value and where it is, for the error message. ``where`` is a
# string, or a ``(parent, format, key)`` chain that :func:`_loc` turns into the same
# string: built only when a check fails, so valid frames pay no string formatting.

_Where = Any


def _loc(where: _Where) -> str:
    """The location text of ``where`` (``Offers.offers[0].agent_id``)."""
    steps: list[tuple[str, Any]] = []
    while not isinstance(where, str):
        where, fmt, key = where
        steps.append((fmt, key))
    text: str = where
    for fmt, key in reversed(steps):
        text = fmt.format(text, key)
    return text


def _check_str(value: Any, where: _Where) -> str:
    if not isinstance(value, str):
        raise ProtocolError("bad_field", f"{_loc(where)}: expected a string, got {_tname(value)}")
    return value


def _check_int(value: Any, where: _Where) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError("bad_field",
                            f"{_loc(where)}: expected an integer, got {_tname(value)}")
    return value


def _check_float(value: Any, where: _Where) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError("bad_field", f"{_loc(where)}: expected a number, got {_tname(value)}")
    result = float(value)
    if result != result or result in (float("inf"), float("-inf")):
        raise ProtocolError("bad_field", f"{_loc(where)}: expected a finite number")
    return result


def _check_bytes(value: Any, where: _Where) -> bytes:
    if not isinstance(value, bytes):
        raise ProtocolError("bad_field", f"{_loc(where)}: expected bytes, got {_tname(value)}")
    return value


def _check_bool(value: Any, where: _Where) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError("bad_field", f"{_loc(where)}: expected a boolean, got {_tname(value)}")
    return value


#: how deep lists and maps may nest inside an ``Any`` field: ``encode`` recurses once
#: per level (and msgpack packs at most 511), so a deeper value that decoded could not
#: be sent on; real values (``State``) nest a handful of levels
MAX_ANY_DEPTH = 64
#: what an ``Any`` field may hold besides lists and maps: plain msgpack values, not ext
#: types or timestamps (``to_plain`` would turn an ``ExtType``, a tuple, into a list)
_PLAIN_TYPES: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes})


def _check_any(value: Any, where: _Where) -> Any:
    """Plain data (leaves, lists, maps), nested at most :data:`MAX_ANY_DEPTH` levels.

    Walked a level at a time, each container's item types gathered at C speed, so that
    a large ``State`` (lists of flat maps) costs a set per map."""
    plain = _PLAIN_TYPES
    if type(value) in plain:
        return value
    level = [value]
    depth = 0
    while level:
        if depth >= MAX_ANY_DEPTH:
            raise ProtocolError("bad_field",
                                f"{_loc(where)}: nested deeper than {MAX_ANY_DEPTH} levels")
        nested: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is dict:
                if not set(map(type, item)) <= plain:  # a key is never a list or map
                    raise ProtocolError("bad_field", f"{_loc(where)}: a map key is not "
                                                     "plain data")
                if set(map(type, item.values())) <= plain:
                    continue
                nested += [c for c in item.values() if type(c) not in plain]
            elif kind is list:
                if set(map(type, item)) <= plain:
                    continue
                nested += [c for c in item if type(c) not in plain]
            else:
                raise ProtocolError("bad_field", f"{_loc(where)}: a {kind.__name__} value "
                                                 "is not plain data")
        level = nested
        depth += 1
    return value


def _tname(value: Any) -> str:
    return "nil" if value is None else type(value).__name__


#: checker -> the exact value types it returns unchanged (so it need not be called);
#: ``float`` is absent: the checker converts ints and refuses non-finite values
_FAST: dict[Any, frozenset[type]] = {
    _check_str: frozenset({str}),
    _check_int: frozenset({int}),
    _check_bool: frozenset({bool}),
    _check_bytes: frozenset({bytes}),
    _check_any: _PLAIN_TYPES,
}
_NO_FAST: frozenset[type] = frozenset()


def _checker_for(hint: Any) -> _Checker:
    """Build a validator for one annotation; only the shapes used above are supported."""
    origin = typing.get_origin(hint)
    if hint is str:
        return _check_str
    if hint is int:
        return _check_int
    if hint is float:
        return _check_float
    if hint is bool:
        return _check_bool
    if hint is bytes:
        return _check_bytes
    if hint is Any:
        return _check_any
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {hint}")
        inner = _checker_for(args[0])

        def check_optional(value: Any, where: _Where) -> Any:
            return None if value is None else inner(value, where)

        inner_fast = _FAST.get(inner)
        if inner_fast is not None:
            _FAST[check_optional] = inner_fast | {type(None)}
        if inner in _RECORD_OF:
            _OPTIONAL_RECORD_OF[check_optional] = _RECORD_OF[inner]
        return check_optional
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        item = _checker_for(item_hint)
        item_fast = _FAST.get(item, _NO_FAST)

        def check_list(value: Any, where: _Where) -> list[Any]:
            if not isinstance(value, list | tuple):
                raise ProtocolError("bad_field",
                                    f"{_loc(where)}: expected a list, got {_tname(value)}")
            for v in value:
                if type(v) not in item_fast:
                    return [item(v, (where, "{}[{}]", i)) for i, v in enumerate(value)]
            return list(value)

        if item in _RECORD_OF:
            _LIST_OF_RECORD[check_list] = (_RECORD_OF[item], item)
        return check_list
    if origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        key = _checker_for(key_hint)
        val = _checker_for(value_hint)
        key_fast = _FAST.get(key, _NO_FAST)
        val_fast = _FAST.get(val, _NO_FAST)

        def check_dict(value: Any, where: _Where) -> dict[Any, Any]:
            if not isinstance(value, dict):
                raise ProtocolError("bad_field",
                                    f"{_loc(where)}: expected a map, got {_tname(value)}")
            for k, v in value.items():
                if type(k) not in key_fast or type(v) not in val_fast:
                    return {key(k, (where, "{} key", None)): val(v, (where, "{}[{!r}]", k))
                            for k, v in value.items()}
            return dict(value)

        return check_dict
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        cls = hint

        def check_record(value: Any, where: _Where) -> Any:
            if not isinstance(value, dict):
                raise ProtocolError("bad_field",
                                    f"{_loc(where)}: expected a map, got {_tname(value)}")
            return _build(cls, value, where)

        _RECORD_OF[check_record] = cls
        return check_record
    raise TypeError(f"unsupported annotation {hint!r}")


#: checkers of nested records, by shape, and the record class they build: a builder
#: calls the nested record's builder itself (see :func:`_builder_for`)
_RECORD_OF: dict[Any, type[Any]] = {}
#: ``list[Record]`` checker -> (record class, the item checker)
_LIST_OF_RECORD: dict[Any, tuple[type[Any], _Checker]] = {}
#: ``Record | None`` checker -> record class
_OPTIONAL_RECORD_OF: dict[Any, type[Any]] = {}


def _fields_of(cls: type[Any]) -> list[tuple[str, _Checker, Any, Any]]:
    """Per field: name, checker, default, and the value types the checker passes as is."""
    spec = _FIELDS.get(cls)
    if spec is None:
        hints = typing.get_type_hints(cls)
        spec = []
        for f in dataclasses.fields(cls):
            if f.default is not _MISSING:
                default: Any = ("value", f.default)
            elif f.default_factory is not _MISSING:
                default = ("factory", f.default_factory)
            else:
                default = None
            check = _checker_for(hints[f.name])
            spec.append((f.name, check, default, _FAST.get(check, _NO_FAST)))
        _FIELDS[cls] = spec
    return spec


def _build(cls: type[Any], body: dict[Any, Any], where: _Where) -> Any:
    builder = _BUILDERS.get(cls)
    if builder is None:
        builder = _BUILDERS[cls] = _builder_for(cls)
    return builder(body, where)


#: record classes whose builder is being generated (a record that nests itself, even
#: through others, goes through its checker there: its builder does not exist yet)
_GENERATING: set[type[Any]] = set()


def _nested_builder(cls: type[Any]) -> Callable[[dict[Any, Any], _Where], Any] | None:
    """The builder of a nested record class, generated now if need be; None while it
    is being generated (a record nested in itself)."""
    builder = _BUILDERS.get(cls)
    if builder is None and cls not in _GENERATING:
        builder = _BUILDERS[cls] = _builder_for(cls)
    return builder


#: record class -> ``build(body, where)``, generated from :func:`_fields_of`
_BUILDERS: dict[type[Any], Callable[[dict[Any, Any], _Where], Any]] = {}


def _builder_for(cls: type[Any]) -> Callable[[dict[Any, Any], _Where], Any]:
    """Generate the validator of one record class (as ``dataclasses`` generates
    ``__init__``): per field, in field order, take the value if present (passing it
    as is when its exact type is one its checker returns unchanged, else through the
    checker), else fail if it is required, else use the default; then build the record.
    Straight-line code, no per-field loop or tuple unpacking: decoding is hot."""
    _GENERATING.add(cls)
    try:
        return _generate_builder(cls)
    finally:
        _GENERATING.discard(cls)


def _generate_builder(cls: type[Any]) -> Callable[[dict[Any, Any], _Where], Any]:
    """:func:`_builder_for`'s work. A nested record (``task: TaskInfo``, ``tasks:
    list[TaskReport]``, ``health_check: HealthCheck | None``) that is a map is built by
    calling its record's builder directly, with the location its checker would have
    given it; anything else goes through the checker, which refuses it as before. An
    agent's re-registration with ten tasks paid six calls a task through the checkers
    (check_list, check_record, _build, twice over) for two."""
    env: dict[str, Any] = {"cls": cls, "ProtocolError": ProtocolError, "_loc": _loc}
    lines = ["def build(body, where):"]
    args = []
    for i, (name, check, default, fast) in enumerate(_fields_of(cls)):
        env[f"c{i}"] = check
        env[f"f{i}"] = fast
        lines.append(f"    if {name!r} in body:")
        lines.append(f"        v = body[{name!r}]")
        here = f"(where, '{{}}.{{}}', {name!r})"
        slow = f"c{i}(v, {here})"
        nested = _RECORD_OF.get(check) or _OPTIONAL_RECORD_OF.get(check)
        listed = _LIST_OF_RECORD.get(check)
        direct = _nested_builder(nested) if nested is not None else None
        item_builder = _nested_builder(listed[0]) if listed is not None else None
        if direct is not None:
            env[f"b{i}"] = direct
            none = "None if v is None else " if check in _OPTIONAL_RECORD_OF else ""
            lines.append(f"        a{i} = {none}b{i}(v, {here}) if type(v) is dict "
                         f"else {slow}")
        elif listed is not None and item_builder is not None:
            # as check_list then check_record: each item at ``where.name[index]``
            env[f"b{i}"] = item_builder
            env[f"i{i}"] = listed[1]
            lines.append("        if type(v) is list:")
            lines.append(f"            w = {here}")
            lines.append(f"            a{i} = [b{i}(x, (w, '{{}}[{{}}]', j)) if type(x) is dict "
                         f"else i{i}(x, (w, '{{}}[{{}}]', j)) for j, x in enumerate(v)]")
            lines.append("        else:")
            lines.append(f"            a{i} = {slow}")
        elif fast:
            lines.append(f"        a{i} = v if type(v) in f{i} else {slow}")
        else:
            lines.append(f"        a{i} = {slow}")
        lines.append("    else:")
        if default is None:
            env[f"m{i}"] = f": missing field {name!r}"
            lines.append(f"        raise ProtocolError('bad_field', _loc(where) + m{i})")
        elif default[0] == "factory" and default[1] in (list, dict):
            # the factory's value written out: a call fewer per absent field
            lines.append(f"        a{i} = {'[]' if default[1] is list else '{}'}")
        elif default[0] == "factory":
            env[f"d{i}"] = default[1]
            lines.append(f"        a{i} = d{i}()")
        else:
            env[f"d{i}"] = default[1]
            lines.append(f"        a{i} = d{i}")
        args.append(f"{name}=a{i}")
    names = [name for name, *_ in _fields_of(cls)]
    slots: list[Any] = [getattr(cls, name, None) for name in names]
    if hasattr(cls, "__post_init__") or not all(
            isinstance(slot, types.MemberDescriptorType) for slot in slots):
        lines.append(f"    return cls({', '.join(args)})")
    else:
        # Each slot set through its own descriptor, as the dataclass's ``__init__``
        # would set it (one call fewer per record, no per-field attribute lookup).
        env["_new"] = object.__new__
        lines.append("    o = _new(cls)")
        for i, slot in enumerate(slots):
            env[f"s{i}"] = slot.__set__
            lines.append(f"    s{i}(o, a{i})")
        lines.append("    return o")
    exec("\n".join(lines), env)  # generated from the record's own fields
    builder: Callable[[dict[Any, Any], _Where], Any] = env["build"]
    return builder


#: how :func:`to_plain` treats a value, by its exact type: a function (a dataclass
#: instance: see :func:`_plainer_for`), a sequence, a map, or a leaf returned as is
_SEQ = "seq"
_MAP = "map"
_LEAF = "leaf"
_LEAVES: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes})
_PLAIN_KIND: dict[type, Any] = dict.fromkeys(_LEAVES, _LEAF)


def _plain_kind(cls: type) -> Any:
    kind: Any
    if dataclasses.is_dataclass(cls) and not issubclass(cls, type):
        kind = _plainer_for(cls)
    elif issubclass(cls, list | tuple):
        kind = _SEQ
    elif issubclass(cls, dict):
        kind = _MAP
    else:
        kind = _LEAF
    _PLAIN_KIND[cls] = kind
    return kind


def _plainer_for(cls: type) -> Callable[[Any], dict[str, Any]]:
    """Generate ``{field: to_plain(value.field), ...}`` for one dataclass, with the
    common leaf values (str, int, float, bool, None, bytes) taken as they are."""
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    lines = ["def plain(value):"]
    lines += [f"    v{i} = value.{name}" for i, name in enumerate(names)]
    items = ", ".join(f"{name!r}: v{i} if type(v{i}) in leaves else to_plain(v{i})"
                      for i, name in enumerate(names))
    # Fields added to a record later are written only when set (OMIT_DEFAULT), so what
    # older code wrote, and what it reads, stays exactly as it was.
    omitted = [(i, f) for i, f in enumerate(fields) if f.metadata.get(OMIT_DEFAULT)]
    if not omitted:
        lines.append(f"    return {{{items}}}")
    else:
        lines.append(f"    d = {{{items}}}")
        lines += [f"    if v{i} == defaults[{f.name!r}]: del d[{f.name!r}]" for i, f in omitted]
        lines.append("    return d")
    env: dict[str, Any] = {"leaves": _LEAVES, "to_plain": to_plain,
                           "defaults": {f.name: f.default for _, f in omitted}}
    exec("\n".join(lines), env)  # generated from the dataclass's own fields
    plainer: Callable[[Any], dict[str, Any]] = env["plain"]
    return plainer


#: as :data:`_PLAIN_KIND`, for :func:`to_wire`
_WIRE_KIND: dict[type, Any] = dict.fromkeys(_LEAVES, _LEAF)


def _wire_kind(cls: type) -> Any:
    kind = _plain_kind(cls)
    if callable(kind):
        kind = _wire_plainer_for(cls)
    _WIRE_KIND[cls] = kind
    return kind


def _wire_plainer_for(cls: type) -> Callable[[Any], dict[str, Any]]:
    """Generate a dataclass's map without the fields that hold their default.

    The receiver takes a missing field's default (docs/protocol.md), so the frame means
    the same and is smaller: a task's twenty-odd fields are mostly defaults, and each
    cost its bytes and its check at every decode (an agent's re-registration with ten
    tasks: 34.5 us to decode whole, 24.3 without them). A value is left out only when
    it is of its default's exact type and equal to it (``0`` is not ``False``)."""
    lines = ["def wire(value):", "    d = {}"]
    env: dict[str, Any] = {"leaves": _LEAVES, "to_wire": to_wire}
    for i, f in enumerate(dataclasses.fields(cls)):
        lines.append(f"    v = value.{f.name}")
        put = f"d[{f.name!r}] = v if type(v) in leaves else to_wire(v)"
        if f.default is not _MISSING:
            default: Any = f.default
        elif f.default_factory is not _MISSING:
            default = f.default_factory()
        else:
            lines.append(f"    {put}")
            continue
        env[f"d{i}"] = default
        env[f"t{i}"] = type(default)
        if default is None:
            lines.append(f"    if v is not None: {put}")
        else:
            lines.append(f"    if type(v) is not t{i} or v != d{i}: {put}")
    lines.append("    return d")
    exec("\n".join(lines), env)  # generated from the dataclass's own fields
    wire: Callable[[Any], dict[str, Any]] = env["wire"]
    return wire


def _converter(kinds: dict[type, Any], kind_for: Callable[[type], Any],
               doc: str) -> Callable[[Any], Any]:
    """A converter of records (and lists and maps of them) to plain data, by the kind
    of each value's exact type (``kinds``, filled by ``kind_for``). Leaves, most
    items (a task's environment), are taken as they are, without a call."""
    leaves = _LEAVES

    def convert(value: Any) -> Any:
        kind = kinds.get(type(value)) or kind_for(type(value))
        if kind is _LEAF:
            return value
        if kind is _SEQ:
            return [v if type(v) in leaves else convert(v) for v in value]
        if kind is _MAP:
            return {k: v if type(v) in leaves else convert(v) for k, v in value.items()}
        return kind(value)

    convert.__doc__ = doc
    return convert


to_plain = _converter(_PLAIN_KIND, _plain_kind,
                      "A record (or a list/map of them) as plain msgpack-able data.")
to_wire = _converter(_WIRE_KIND, _wire_kind,
                     "As :func:`to_plain`, for a frame: fields at their default left out. "
                     "Not for what is stored (the log, checkpoints): those keep every "
                     "field, as written.")


def from_plain(cls: type[_R], body: dict[str, Any]) -> _R:
    """Validate plain data back into a record (used for persisted records too)."""
    result: _R = _build(cls, body, cls.__name__)
    return result


# --------------------------------------------------------------------------- codec


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded frame: the message, the request id it carried, the sender's epoch."""

    message: Message
    request_id: str = ""
    #: the leadership term of the master that sent it (0 from anyone else)
    epoch: int = 0


def encode(msg: Message, request_id: str = "", epoch: int = 0) -> bytes:
    """Serialize one message into one frame; masters stamp their epoch."""
    body = to_wire(msg)
    envelope = [PROTOCOL_VERSION, msg.TYPE, request_id, body]
    if epoch:
        envelope.append(epoch)
    frame: bytes = msgpack.packb(envelope, use_bin_type=True)
    return frame


def decode(frame: bytes, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Envelope:
    """Parse and validate one frame; raises ProtocolError and never anything else."""
    return decode_plain(unpack_frame(frame, max_bytes))


def unpack_frame(frame: bytes, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Any:
    """The frame's msgpack, unvalidated (``decode_plain`` validates it); raises
    ProtocolError and never anything else."""
    if len(frame) > max_bytes:
        raise ProtocolError("oversized", f"frame of {len(frame)} bytes exceeds {max_bytes}")
    try:
        raw = msgpack.unpackb(
            frame,
            raw=False,
            strict_map_key=False,
            use_list=True,
        )
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError("malformed", f"frame is not valid msgpack: {exc}") from None
    return raw


#: what every ``reregister_agent`` frame holds after its array header
_REREGISTER_PREFIX: bytes = msgpack.packb([PROTOCOL_VERSION, "reregister_agent"])[1:]


def peek_reregistration(frame: bytes) -> tuple[str, str] | None:
    """(request id, agent id) of a ``reregister_agent`` frame, read only as far as its
    agent id; None for any other frame, or one this cannot read that far.

    For the master's fast path for an agent's repeated re-registration, which needs
    nothing else from it: unpacking the whole frame (the agent's task reports, 2 KB at
    10 tasks) was the largest cost of a repeat. The rest is stepped over, not built, so
    a frame cut short or with trailing bytes is still refused. Any other frame is told
    apart by its first bytes, at no cost.
    """
    start = len(_REREGISTER_PREFIX) + 1
    if len(frame) < start or frame[0] not in (0x94, 0x95) or frame[1:start] != _REREGISTER_PREFIX:
        return None
    data = frame[start:]
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data))
    unpacker.feed(data)
    agent_id: Any = None
    try:
        request_id = unpacker.unpack()
        if type(request_id) is not str or len(request_id) > 200:
            return None
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() == "agent_id" and agent_id is None:
                agent_id = unpacker.unpack()
            else:
                unpacker.skip()  # not built: only stepped over, at C speed
        if frame[0] == 0x95:
            unpacker.skip()  # an epoch (clients send none)
        if unpacker.tell() != len(data):
            return None  # not one whole msgpack value: the full decode says so
    except Exception:  # msgpack raises several unrelated types: the full decode says why
        return None
    return (request_id, agent_id) if type(agent_id) is str else None


def peek_request_id(frame: bytes) -> str:
    """Best-effort request id of a frame that failed to decode, for the error reply."""
    try:
        raw = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception:
        return ""
    return _request_id_of(raw)


def decode_plain(raw: Any) -> Envelope:
    """Validate an already unpacked envelope."""
    cls, request_id, body, epoch = peek_envelope(raw)
    tag = cls.TYPE
    try:
        msg = _build(cls, body, tag)
    except ProtocolError:
        raise
    except (TypeError, ValueError, RecursionError) as exc:
        raise ProtocolError("bad_field", f"{tag}: {exc}") from None
    return Envelope(msg, request_id, epoch)


def peek_envelope(raw: Any) -> tuple[type[Message], str, dict[Any, Any], int]:
    """The envelope of an unpacked frame, validated, and its body not yet validated:
    (message class, request id, body, epoch)."""
    if not isinstance(raw, list) or len(raw) not in (4, 5):
        raise ProtocolError(
            "malformed", "envelope must be [version, type, request_id, body(, epoch)]"
        )
    version, tag, request_id, body = raw[:4]
    epoch = raw[4] if len(raw) == 5 else 0
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ProtocolError("malformed", "envelope epoch must be a non-negative integer")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProtocolError("malformed", "envelope version must be an integer")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            "bad_version", f"protocol version {version} not supported (want {PROTOCOL_VERSION})"
        )
    if not isinstance(tag, str):
        raise ProtocolError("malformed", "envelope type must be a string")
    if not isinstance(request_id, str) or len(request_id) > 200:
        raise ProtocolError("malformed", "envelope request_id must be a string of <= 200 chars")
    cls = _REGISTRY.get(tag)
    if cls is None:
        raise ProtocolError("unknown_type", f"unknown message type {tag[:64]!r}")
    if not isinstance(body, dict):
        raise ProtocolError("malformed", "envelope body must be a map")
    return cls, request_id, body, epoch


@dataclass(frozen=True, slots=True)
class Refused:
    """One message of a frame that did not decode: the reason, and the request id to
    answer it under (as far as it could be read)."""

    error: ProtocolError
    request_id: str = ""


def decode_frame(frame: bytes, max_bytes: int = DEFAULT_MAX_FRAME_BYTES
                 ) -> list[Envelope | Refused]:
    """Every message a frame carries (one, or a batch's items in order), each decoded
    or refused on its own; raises ProtocolError (and never anything else) only when the
    frame as a whole is unreadable: oversized, not msgpack, or a batch too long."""
    raw = unpack_frame(frame, max_bytes)
    items = _batch_items(raw)
    if items is None:
        items = [raw]
    out: list[Envelope | Refused] = []
    for item in items:
        try:
            out.append(decode_plain(item))
        except ProtocolError as exc:
            out.append(Refused(exc, _request_id_of(item)))
    return out


def _batch_items(raw: Any) -> list[Any] | None:
    """A batch's items; None when ``raw`` is not a batch (a single envelope, or junk
    that decode_plain refuses)."""
    if type(raw) is not list or not raw or type(raw[0]) is not list:
        return None
    if len(raw) > MAX_BATCH_MESSAGES:
        raise ProtocolError("malformed", f"a batch of {len(raw)} messages exceeds "
                            f"{MAX_BATCH_MESSAGES}")
    return raw


def _request_id_of(raw: Any) -> str:
    if isinstance(raw, list) and len(raw) >= 3 and isinstance(raw[2], str):
        return raw[2][:200]
    return ""


def batch_frame(frames: list[bytes]) -> bytes:
    """Encoded messages (each a frame from :func:`encode`) as one frame; one stays as
    it is. Joined, not re-encoded: a msgpack array is its header and its items."""
    count = len(frames)
    if count == 1:
        return frames[0]
    if not 1 < count <= MAX_BATCH_MESSAGES:
        raise ValueError(f"a batch holds 2 to {MAX_BATCH_MESSAGES} messages, not {count}")
    head = bytes((0x90 | count,)) if count < 16 else b"\xdc" + count.to_bytes(2, "big")
    return head + b"".join(frames)


def batches(frames: Iterable[bytes], max_bytes: int = BATCH_BYTES) -> Iterator[bytes]:
    """Consecutive frames for one peer grouped into as few frames as the limits allow
    (:data:`BATCH_BYTES`, :data:`MAX_BATCH_MESSAGES`), order kept."""
    group: list[bytes] = []
    size = 0
    for frame in frames:
        if group and (size + len(frame) > max_bytes or len(group) == MAX_BATCH_MESSAGES):
            yield batch_frame(group)
            group, size = [], 0
        group.append(frame)
        size += len(frame)
    if group:
        yield batch_frame(group)


#: Replies a peer sizes by asking: counted against its unsent bytes whatever their size
#: (small reads asked for in their thousands add up as well), and never batched.
ASKED_REPLIES = (FileData, State, Tasks)


def turn_sends(
    sends: Iterable[tuple[bytes, Message, str, bytes]],
) -> Iterator[tuple[bytes, bytes, Message | None, str]]:
    """The frames one turn of the master sends, in order: ``sends`` holds its messages
    as ``(peer, message, request_id, encoded frame)``.

    What a turn has for one peer goes in batch frames (yielded with message None), order
    kept per peer. A reply the peer asked for (:data:`ASKED_REPLIES`) and any frame of
    :data:`BATCH_BYTES` or more goes alone (yielded with its message), after what the
    same turn had for that peer before it: a peer sizes what it asks for, and a large
    frame gains nothing from company. One rule for the master and the simulator's
    master, so the simulated one cannot drift from the real one.
    """
    waiting: dict[bytes, list[bytes]] = {}
    for peer, msg, request_id, frame in sends:
        if isinstance(msg, ASKED_REPLIES) or len(frame) >= BATCH_BYTES:
            held = waiting.pop(peer, None)
            if held:
                for batch in batches(held):
                    yield peer, batch, None, ""
            yield peer, frame, msg, request_id
        else:
            waiting.setdefault(peer, []).append(frame)
    for peer, held in waiting.items():
        for batch in batches(held):
            yield peer, batch, None, ""


def refusal(item: Refused) -> Error:
    """The answer to a refused message. Sent as a reply is, with its request id, in its
    place among the replies to the same peer (not ahead of them)."""
    return Error(code=item.error.code, message=item.error.message,
                 in_reply_to=item.request_id)


def error_frame(exc: ProtocolError, request_id: str = "") -> bytes:
    """The reply frame for a refused frame."""
    return encode(Error(code=exc.code, message=exc.message, in_reply_to=request_id))
