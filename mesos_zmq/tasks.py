"""The task lifecycle as one transition table.

Everything that may change a task's state goes through :func:`transition`, which
refuses illegal moves (a finished task never runs again). The same table is used by
the master (what it believes) and the agent (what it observed), so both agree on
what "terminal" means.
"""

from __future__ import annotations

from enum import StrEnum

from mesos_zmq.errors import MesosZmqError


class TaskState(StrEnum):
    STAGING = "TASK_STAGING"
    STARTING = "TASK_STARTING"
    RUNNING = "TASK_RUNNING"
    KILLING = "TASK_KILLING"
    FINISHED = "TASK_FINISHED"
    FAILED = "TASK_FAILED"
    KILLED = "TASK_KILLED"
    ERROR = "TASK_ERROR"
    LOST = "TASK_LOST"
    DROPPED = "TASK_DROPPED"
    GONE = "TASK_GONE"
    UNREACHABLE = "TASK_UNREACHABLE"
    UNKNOWN = "TASK_UNKNOWN"


_BY_VALUE: dict[str, TaskState] = {s.value: s for s in TaskState}


def task_state(value: str) -> TaskState:
    """``TaskState(value)`` without the enum machinery for the known values (every
    status update names one); ValueError for anything else, as the enum's own."""
    try:
        return _BY_VALUE[value]
    except (KeyError, TypeError):
        return TaskState(value)


TERMINAL = frozenset(
    {
        TaskState.FINISHED,
        TaskState.FAILED,
        TaskState.KILLED,
        TaskState.ERROR,
        TaskState.LOST,
        TaskState.DROPPED,
        TaskState.GONE,
    }
)

_ACTIVE = (TaskState.STAGING, TaskState.STARTING, TaskState.RUNNING, TaskState.KILLING)

# Allowed moves. UNREACHABLE is not terminal: the agent may come back and report the
# task's real state. LOST is final, as every terminal state: a returning agent's word
# on a LOST task is ignored, and the agent is told to kill it.
_ALLOWED: dict[TaskState, frozenset[TaskState]] = {
    TaskState.STAGING: frozenset({TaskState.STARTING, TaskState.RUNNING, TaskState.KILLING})
    | TERMINAL
    | {TaskState.UNREACHABLE},
    TaskState.STARTING: frozenset({TaskState.RUNNING, TaskState.KILLING})
    | TERMINAL
    | {TaskState.UNREACHABLE},
    TaskState.RUNNING: frozenset({TaskState.KILLING}) | TERMINAL | {TaskState.UNREACHABLE},
    TaskState.KILLING: TERMINAL | {TaskState.UNREACHABLE},
    TaskState.UNREACHABLE: frozenset(_ACTIVE) | TERMINAL,
}


class InvalidTransition(MesosZmqError):
    """A state change the lifecycle forbids; the caller keeps the old state."""


def parse_state(value: str) -> TaskState:
    """Accept ``TASK_RUNNING`` or ``RUNNING`` (any case)."""
    text = value.strip().upper()
    if not text.startswith("TASK_"):
        text = "TASK_" + text
    try:
        return TaskState(text)
    except ValueError:
        raise InvalidTransition(f"unknown task state {value!r}") from None


def is_terminal(state: str) -> bool:
    return state in TERMINAL


def can_transition(old: TaskState, new: TaskState) -> bool:
    if old == new:
        return old not in TERMINAL
    return new in _ALLOWED.get(old, frozenset())


def transition(old: TaskState, new: TaskState) -> TaskState:
    """Return ``new`` if the move is legal, else raise InvalidTransition."""
    if not can_transition(old, new):
        raise InvalidTransition(f"illegal task state change {old.value} -> {new.value}")
    return new
