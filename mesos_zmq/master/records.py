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
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar

from mesos_zmq.errors import ProtocolError
from mesos_zmq.protocol import (
    OMIT_DEFAULT,
    FrameworkInfo,
    TaskInfo,
    TaskStatus,
    from_plain,
    to_plain,
)

#: a record as the log holds it
PlainRecord = dict[str, Any]
_T = TypeVar("_T")


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


@dataclass(frozen=True, slots=True)
class SchedulerChanged:
    """Framework ``framework_id`` is driven from now on by the scheduler process
    ``instance``; ``previous`` (if any) was failed over from and may not subscribe
    again: replicated, so that a new leader refuses it too (master.instances)."""

    OP: ClassVar[str] = "scheduler_changed"
    framework_id: str
    instance: str
    previous: str = ""
    time: float = 0.0


StateRecord = (
    FrameworkAdded | FrameworkRemoved | AgentAdded | AgentRemoved | AgentDraining
    | AgentDrained | AgentReactivated | TaskAdded | TaskUpdated | WeightsSet | QuotaSet
    | QuotaRemoved | ReservationsSet | OfferMade | OfferRemoved | RequestDone
    | UpdatePending | UpdateAcked | FilterSet | FiltersCleared | OwnerSet | SchedulerChanged
)

RECORD_TYPES: dict[str, type[StateRecord]] = {
    cls.OP: cls for cls in (
        FrameworkAdded, FrameworkRemoved, AgentAdded, AgentRemoved, AgentDraining,
        AgentDrained, AgentReactivated, TaskAdded, TaskUpdated, WeightsSet, QuotaSet,
        QuotaRemoved, ReservationsSet, OfferMade, OfferRemoved, RequestDone,
        UpdatePending, UpdateAcked, FilterSet, FiltersCleared, OwnerSet, SchedulerChanged,
    )
}


def record_to_plain(record: StateRecord) -> PlainRecord:
    """The map the log holds: ``{"op": tag, **fields}``."""
    plain = _PLAINERS.get(type(record))
    if plain is None:
        plain = _PLAINERS[type(record)] = _plainer_for(type(record))
    return plain(record)


#: record class -> ``plain(record)``, generated by :func:`_plainer_for`
_PLAINERS: dict[type, Callable[[Any], PlainRecord]] = {}
_LEAVES: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes})


def _plainer_for(cls: type) -> Callable[[Any], PlainRecord]:
    """``{"op": cls.OP, **to_plain(record)}`` as one generated map display: the same
    keys, in the same order, with the same values (a leaf as it is, anything else
    through ``to_plain``), without the map ``to_plain`` builds first and the copy of
    it (every record the master logs goes through here: 5-7 % of the master under
    churn). A class with a field written only when set (OMIT_DEFAULT) keeps the
    general way."""
    flds = fields(cls)
    if any(f.metadata.get(OMIT_DEFAULT) for f in flds):
        return lambda record: {"op": record.OP, **to_plain(record)}
    env: dict[str, Any] = {"leaves": _LEAVES, "to_plain": to_plain, "OP": cls.OP}  # type: ignore[attr-defined]
    lines = ["def plain(record):"]
    lines += [f"    v{i} = record.{f.name}" for i, f in enumerate(flds)]
    items = "".join(f", {f.name!r}: v{i} if type(v{i}) in leaves else to_plain(v{i})"
                    for i, f in enumerate(flds))
    lines.append(f"    return {{'op': OP{items}}}")
    exec("\n".join(lines), env)  # generated from the record's own fields
    made: Callable[[Any], PlainRecord] = env["plain"]
    return made


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
    """The record with its ``time`` set (records without one, or with that time
    already, are returned as they are: records are immutable)."""
    cls = type(record)
    stamp = _STAMPERS.get(cls, _UNKNOWN)
    if stamp is _UNKNOWN:
        stamp = _STAMPERS[cls] = _stamper_for(cls)
    if stamp is None or record.time == time:  # type: ignore[union-attr]
        return record
    stamped_record: StateRecord = stamp(record, time)
    return stamped_record


_UNKNOWN: Any = object()
#: record class -> ``stamp(record, time)`` (None: the class has no ``time``)
_STAMPERS: dict[type, Any] = {}


def _stamper_for(cls: type) -> Any:
    """A copy-with-time for one record class: every record committed is stamped, and
    ``dataclasses.replace`` (a map of every field, then ``__init__``) was 2% of the
    master's time under churn."""
    if "time" not in [f.name for f in fields(cls)]:
        return None
    return copier(cls, "time")


def copier(cls: type[_T], *changed: str) -> Callable[..., _T]:
    """``copy(obj, *values)``: ``dataclasses.replace(obj, **dict(zip(changed, values)))``
    for one frozen slotted dataclass, as generated straight-line code that copies each
    slot through its descriptor, as the class's own frozen ``__init__`` sets them (a
    class with ``__post_init__`` or without slots gets ``replace`` itself). For hot
    paths: ``replace`` builds a map of every field and calls ``__init__`` with it
    (3 µs a task's copy at each launch, against under 1)."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = set(changed) - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    slots: list[Any] = [getattr(cls, name, None) for name in names]
    if hasattr(cls, "__post_init__") or not all(
            isinstance(slot, types.MemberDescriptorType) for slot in slots):
        def slow(obj: _T, *values: Any) -> _T:
            return replace(obj, **dict(zip(changed, values, strict=True)))  # type: ignore[type-var]
        return slow
    env: dict[str, Any] = {"_new": object.__new__, "cls": cls}
    params = [f"v{j}" for j in range(len(changed))]
    lines = [f"def copy(obj, {', '.join(params)}):", "    o = _new(cls)"]
    for i, (name, slot) in enumerate(zip(names, slots, strict=True)):
        env[f"s{i}"] = slot.__set__
        value = f"v{changed.index(name)}" if name in changed else f"obj.{name}"
        lines.append(f"    s{i}(o, {value})")
    lines.append("    return o")
    exec("\n".join(lines), env)  # generated from the class's own fields
    made: Callable[..., _T] = env["copy"]
    return made


def fast_init(cls: type[_T]) -> type[_T]:
    """Give a frozen slotted dataclass an ``__init__`` that sets each slot through its
    descriptor (the same fields, order, defaults and factories as the generated one).

    The generated ``__init__`` of a frozen class sets each field with
    ``object.__setattr__(self, name, value)``, a look-up by name per field: a task
    record's cost 1.0-1.1 µs against 0.5-0.7 so, and the master builds several per
    task (its record, its update records). A class with ``__post_init__`` or without
    slots keeps its own. Frozen it stays: setting a field afterwards still raises."""
    flds = [f for f in fields(cls) if f.init]  # type: ignore[arg-type]
    slots: list[Any] = [getattr(cls, f.name, None) for f in flds]
    if (hasattr(cls, "__post_init__") or len(flds) != len(fields(cls))  # type: ignore[arg-type]
            or any(f.kw_only for f in flds)
            or not all(isinstance(slot, types.MemberDescriptorType) for slot in slots)):
        return cls
    env: dict[str, Any] = {"_FACTORY": _FACTORY}
    params, body = [], []
    for i, (f, slot) in enumerate(zip(flds, slots, strict=True)):
        env[f"s{i}"] = slot.__set__
        if f.default is not MISSING:
            env[f"d{i}"] = f.default
            params.append(f"{f.name}=d{i}")
        elif f.default_factory is not MISSING:
            env[f"f{i}"] = f.default_factory
            params.append(f"{f.name}=_FACTORY")
            body.append(f"    if {f.name} is _FACTORY: {f.name} = f{i}()")
        else:
            params.append(f.name)
        body.append(f"    s{i}(self, {f.name})")
    lines = [f"def __init__(self, {', '.join(params)}):", *body]
    exec("\n".join(lines), env)  # generated from the class's own fields
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


#: the default of a field with a default factory, in :func:`fast_init`'s ``__init__``
_FACTORY: Any = object()

for _cls in RECORD_TYPES.values():
    fast_init(_cls)
