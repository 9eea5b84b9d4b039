"""The master's durable records: one typed class per change, registered by op tag.

Theory of operation
-------------------
Every durable change of the master (an agent admitted, an offer made, a task's new
state...) is one of these records. A handler builds it, ``commit`` applies it to the
state (:meth:`~mesos_zmq.master.state.MasterState.apply`, which dispatches on the
record's type) and the shell writes it to the log as a plain map: ``{"op": tag,
field: value, ...}``, encoded and decoded by the one codec (:func:`to_plain`,
:func:`from_plain` of :mod:`mesos_zmq.protocol`), exactly the maps earlier versions
wrote, so their logs still replay. mypy sees a wrong field where a string key would
have surfaced as a KeyError during a replay (as Mesos's registry operations are
classes rather than free-form entries).

A record's ``time`` is wall-clock UTC, stamped by ``commit``.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

from mesos_zmq.errors import ProtocolError
from mesos_zmq.protocol import FrameworkInfo, TaskInfo, TaskStatus, from_plain, to_plain

#: a record as the log holds it
PlainRecord = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FrameworkAdded:
    OP: ClassVar[str] = "framework_added"
    framework: FrameworkInfo
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class FrameworkRemoved:
    OP: ClassVar[str] = "framework_removed"
    framework_id: str
    reason: str = ""
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentAdded:
    OP: ClassVar[str] = "agent_added"
    agent_id: str
    hostname: str
    resources: str
    attributes: str = ""
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentRemoved:
    OP: ClassVar[str] = "agent_removed"
    agent_id: str
    reason: str = ""
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentDraining:
    OP: ClassVar[str] = "agent_draining"
    agent_id: str
    grace: float | None = None
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentDrained:
    OP: ClassVar[str] = "agent_drained"
    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentReactivated:
    OP: ClassVar[str] = "agent_reactivated"
    agent_id: str
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class TaskAdded:
    OP: ClassVar[str] = "task_added"
    framework_id: str
    task: TaskInfo
    state: str = "TASK_STAGING"
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class TaskUpdated:
    OP: ClassVar[str] = "task_updated"
    framework_id: str
    task_id: str
    state: str
    exit_code: int | None = None
    message: str = ""
    reason: str = ""
    #: None only in logs that never wrote one (the task keeps its last time)
    time: float | None = None


@dataclass(frozen=True, slots=True)
class WeightsSet:
    OP: ClassVar[str] = "weights_set"
    weights: dict[str, float] = field(default_factory=dict)
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class QuotaSet:
    OP: ClassVar[str] = "quota_set"
    role: str
    guarantee: str = ""
    limit: str = ""
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class QuotaRemoved:
    OP: ClassVar[str] = "quota_removed"
    role: str
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class ReservationsSet:
    OP: ClassVar[str] = "reservations_set"
    agent_id: str
    reserved: str  # the agent's dynamic reservations (empty: none)
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class OfferMade:
    OP: ClassVar[str] = "offer_made"
    offer_id: str
    framework_id: str
    agent_id: str
    role: str
    resources: str
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class OfferRemoved:
    OP: ClassVar[str] = "offer_removed"
    offer_id: str


@dataclass(frozen=True, slots=True)
class RequestDone:
    OP: ClassVar[str] = "request_done"
    request_id: str


@dataclass(frozen=True, slots=True)
class UpdatePending:
    OP: ClassVar[str] = "update_pending"
    status: TaskStatus


@dataclass(frozen=True, slots=True)
class UpdateAcked:
    OP: ClassVar[str] = "update_acked"
    uuid: str


@dataclass(frozen=True, slots=True)
class FilterSet:
    OP: ClassVar[str] = "filter_set"
    framework_id: str
    agent_id: str
    seconds: float
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class FiltersCleared:
    OP: ClassVar[str] = "filters_cleared"
    framework_id: str


@dataclass(frozen=True, slots=True)
class OwnerSet:
    """A framework or agent id belongs to the principal that created it: only that
    principal may subscribe or register under it again (issue 12, point 2)."""

    OP: ClassVar[str] = "owner_set"
    kind: str  # framework | agent
    ident: str
    principal: str


StateRecord = (
    FrameworkAdded | FrameworkRemoved | AgentAdded | AgentRemoved | AgentDraining
    | AgentDrained | AgentReactivated | TaskAdded | TaskUpdated | WeightsSet | QuotaSet
    | QuotaRemoved | ReservationsSet | OfferMade | OfferRemoved | RequestDone
    | UpdatePending | UpdateAcked | FilterSet | FiltersCleared | OwnerSet
)

RECORD_TYPES: dict[str, type[StateRecord]] = {
    cls.OP: cls for cls in (
        FrameworkAdded, FrameworkRemoved, AgentAdded, AgentRemoved, AgentDraining,
        AgentDrained, AgentReactivated, TaskAdded, TaskUpdated, WeightsSet, QuotaSet,
        QuotaRemoved, ReservationsSet, OfferMade, OfferRemoved, RequestDone,
        UpdatePending, UpdateAcked, FilterSet, FiltersCleared, OwnerSet,
    )
}


def record_to_plain(record: StateRecord) -> PlainRecord:
    """The map the log holds: ``{"op": tag, **fields}``."""
    return {"op": record.OP, **to_plain(record)}


def record_from_plain(plain: PlainRecord) -> StateRecord:
    """A logged map back as its record; ValueError names what is wrong with it."""
    op = plain.get("op") if isinstance(plain, dict) else None
    cls = RECORD_TYPES.get(op) if isinstance(op, str) else None
    if cls is None:
        raise ValueError(f"unknown state record op {op!r}")
    try:
        return from_plain(cls, plain)
    except ProtocolError as exc:
        raise ValueError(f"bad {op} record: {exc.message}") from None


def stamped(record: StateRecord, time: float) -> StateRecord:
    """The record with its ``time`` set (records without one are returned as they are)."""
    cls = type(record)
    stamp = _STAMPERS.get(cls, _UNKNOWN)
    if stamp is _UNKNOWN:
        stamp = _STAMPERS[cls] = _stamper_for(cls)
    return record if stamp is None else stamp(record, time)


_UNKNOWN: Any = object()
#: record class -> ``stamp(record, time)`` (None: the class has no ``time``)
_STAMPERS: dict[type, Any] = {}


def _stamper_for(cls: type) -> Any:
    """A copy-with-time for one record class: every record committed is stamped, and
    ``dataclasses.replace`` (a map of every field, then ``__init__``) was 2% of the
    master's time under churn. Generated straight-line code copies each slot through
    its descriptor, as the records' own frozen ``__init__`` sets them."""
    names = [f.name for f in fields(cls)]
    if "time" not in names:
        return None
    slots: list[Any] = [getattr(cls, name, None) for name in names]
    if hasattr(cls, "__post_init__") or not all(
            isinstance(slot, types.MemberDescriptorType) for slot in slots):
        return lambda record, time: replace(record, time=time)
    env: dict[str, Any] = {"_new": object.__new__, "cls": cls}
    lines = ["def stamp(record, time):", "    o = _new(cls)"]
    for i, (name, slot) in enumerate(zip(names, slots, strict=True)):
        env[f"s{i}"] = slot.__set__
        value = "time" if name == "time" else f"record.{name}"
        lines.append(f"    s{i}(o, {value})")
    lines.append("    return o")
    exec("\n".join(lines), env)  # generated from the record's own fields
    return env["stamp"]
