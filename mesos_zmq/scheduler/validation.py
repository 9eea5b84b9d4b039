"""Checks the SDK makes in the caller's thread, before a request leaves.

A request the master would refuse (a task whose ``resources`` is a list, an offer id
split into characters, a task id an agent cannot use as a directory name) is better
refused at once, with a message naming the mistake, by an exception raised where the
mistake was made: the master's refusal arrives later, in another thread, far from
the code that caused it. Pure functions, no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from mesos_zmq.errors import MesosZmqError, ProtocolError, ResourceError
from mesos_zmq.master.validation import task_problem
from mesos_zmq.protocol import Operation, ReconcileTask, TaskInfo, from_plain, to_plain
from mesos_zmq.resources import Resources

#: The agent's rule for ids that become directory names (``mesos_zmq.agent.core.safe_id``
#: and the master's ``valid_id``), restated here so that the SDK does not import the agent.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
#: the master's bounds on refuse_seconds
MAX_REFUSE_SECONDS = 1e9
#: the master's bound on a task's kill grace period
MAX_KILL_GRACE = 3600.0
#: tasks (and offer ids) one accept may carry: the master's MAX_TASKS_PER_ACCEPT
MAX_TASKS_PER_CALL = 10_000
OPERATION_KINDS = ("RESERVE", "UNRESERVE")

_R = TypeVar("_R")


class InvalidRequestError(MesosZmqError, ValueError):
    """A request the master would refuse; raised by the driver method that was called."""


def safe_id(value: str) -> bool:
    """Letters, digits, ``_``, ``.``, ``-`` (1 to 200), never ``.`` or ``..``."""
    return bool(_SAFE_ID.match(value)) and value not in (".", "..")


def offer_id_list(offer_ids: str | Iterable[str], where: str) -> list[str]:
    """One offer id or several, as a list; a string is one id, never its characters."""
    raw: object = offer_ids  # callers without type checking pass anything
    if isinstance(raw, str):
        ids: list[Any] = [raw]
    elif isinstance(raw, bytes | bytearray | dict) or not isinstance(raw, Iterable):
        raise InvalidRequestError(
            f"{where}: offer ids must be a string or a list of strings, "
            f"got {type(raw).__name__}")
    else:
        ids = list(raw)
    if not ids:
        raise InvalidRequestError(f"{where}: no offer ids given")
    for offer_id in ids:
        if not isinstance(offer_id, str) or not offer_id:
            raise InvalidRequestError(
                f"{where}: each offer id must be a non-empty string, got {offer_id!r} "
                "(pass offer.offer_id, not the Offer)")
    if len(set(ids)) != len(ids):
        raise InvalidRequestError(f"{where}: an offer id is repeated in {ids!r}")
    return ids


def refuse_seconds_ok(value: Any, where: str) -> float:
    """A decline filter length the master accepts: a finite number within 0..1e9."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(f"{where}: refuse_seconds must be a number, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_REFUSE_SECONDS:
        raise InvalidRequestError(
            f"{where}: refuse_seconds must be between 0 and 1e9, got {value!r}")
    return seconds


def task_list(tasks: TaskInfo | Iterable[TaskInfo], where: str) -> list[TaskInfo]:
    """Check each task as the master and the agent would; return them as a list."""
    items = [tasks] if isinstance(tasks, TaskInfo) else _as_list(tasks, where, "tasks")
    if len(items) > MAX_TASKS_PER_CALL:
        raise InvalidRequestError(f"{where}: {len(items)} tasks in one call; the master "
                                  f"takes at most {MAX_TASKS_PER_CALL} (launch the rest "
                                  "on other offers)")
    seen: set[str] = set()
    for task in items:
        check_task(task, where)
        if task.task_id in seen:
            raise InvalidRequestError(f"{where}: task id {task.task_id!r} appears twice")
        seen.add(task.task_id)
    return items


def check_task(task: Any, where: str) -> None:
    """Field types (as the wire decoder checks them), resources, id, command, grace."""
    if not isinstance(task, TaskInfo):
        raise InvalidRequestError(f"{where}: expected a TaskInfo, got {type(task).__name__}")
    _check_types(TaskInfo, task, where)
    if not safe_id(task.task_id):
        raise InvalidRequestError(
            f"{where}: invalid task id {task.task_id[:64]!r}: use 1 to 200 letters, digits, "
            "'_', '.' or '-' (it becomes a directory name on the agent)")
    try:
        Resources.parse(task.resources)
    except ResourceError as exc:
        raise InvalidRequestError(
            f"{where}: task {task.task_id}: bad resources {task.resources[:100]!r}: {exc}"
        ) from None
    if task.shell and not task.command.strip():
        raise InvalidRequestError(f"{where}: task {task.task_id} has an empty command "
                                  "(set command, or shell=False with argv)")
    if not task.shell and not task.argv:
        raise InvalidRequestError(f"{where}: task {task.task_id} has shell=False and no argv")
    grace = task.kill_grace_period
    if grace is not None and not 0 <= grace <= MAX_KILL_GRACE:
        raise InvalidRequestError(
            f"{where}: task {task.task_id}: kill_grace_period must be within 0..3600 seconds")
    problem = task_problem(task)
    if problem is not None:
        raise InvalidRequestError(f"{where}: {problem}")


def operation_list(operations: Iterable[Operation], where: str) -> list[Operation]:
    """RESERVE/UNRESERVE operations with parseable resources."""
    items = _typed_list(operations, Operation, where, "operations")
    for op in items:
        if op.kind not in OPERATION_KINDS:
            raise InvalidRequestError(
                f"{where}: unknown operation {op.kind[:32]!r} (use RESERVE or UNRESERVE)")
        try:
            Resources.parse(op.resources)
        except ResourceError as exc:
            raise InvalidRequestError(f"{where}: {op.kind}: {exc}") from None
    return items


def reconcile_list(tasks: Iterable[ReconcileTask], where: str) -> list[ReconcileTask]:
    """ReconcileTask records (a bare task id string would be split into characters)."""
    return _typed_list(tasks, ReconcileTask, where, "tasks")


def _typed_list(values: Iterable[_R], cls: type[_R], where: str, what: str) -> list[_R]:
    """``values`` as a list of well-typed ``cls`` records (the wire decoder's checks)."""
    items = _as_list(values, where, what)
    for item in items:
        if not isinstance(item, cls):
            article = "an" if cls.__name__[0] in "AEIOU" else "a"
            raise InvalidRequestError(
                f"{where}: expected {article} {cls.__name__}, got {type(item).__name__}")
        _check_types(cls, item, where)
    return items


def role_list(roles: str | Iterable[str] | None, known: list[str], where: str) -> list[str]:
    """Roles to suppress or revive (empty: all); each must be one of the framework's."""
    if roles is None:
        return []
    names = [roles] if isinstance(roles, str) else _as_list(roles, where, "roles")
    for role in names:
        if not isinstance(role, str) or role not in known:
            raise InvalidRequestError(
                f"{where}: {role!r} is not one of the framework's roles ({', '.join(known)})")
    return list(dict.fromkeys(names))


def task_id_ok(task_id: Any, where: str) -> str:
    """A kill needs a task id string; anything else could only be refused later."""
    if not isinstance(task_id, str) or not task_id:
        raise InvalidRequestError(f"{where}: task id must be a non-empty string, "
                                  f"got {task_id!r}")
    return task_id


def _as_list(values: Any, where: str, what: str) -> list[Any]:
    if isinstance(values, str | bytes | bytearray | dict) or not isinstance(values, Iterable):
        raise InvalidRequestError(f"{where}: {what} must be a list, got {type(values).__name__}")
    return list(values)


def _check_types(cls: type[Any], value: Any, where: str) -> None:
    """The wire decoder's field checks, run locally (a list where a string belongs...)."""
    try:
        from_plain(cls, to_plain(value))
    except ProtocolError as exc:
        raise InvalidRequestError(f"{where}: {exc.message}") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidRequestError(f"{where}: {exc}") from None
