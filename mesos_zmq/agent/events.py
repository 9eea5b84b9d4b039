"""The agent's records, typed: its task log and its tasks' supervisor events.

Both are JSON lines in files that outlive the agent process, and their format is older
than these types: an agent upgraded on a work dir must read what the old one wrote,
so each type carries its tag and reads and writes exactly the fields written before.

The task log (:mod:`mesos_zmq.agent.checkpoint`), one record a line, its task named by
``k`` (``framework_id/task_id``); ``seq`` is the last supervisor event consumed, on
any record or alone:

=================  ============================================================
TaskLaunched       ``{"k": …, "launch": {"framework_id", "task", "container_id", "gpus"}}``
UpdateRecorded     ``{"k": …, "update": status, "seq": n}``
UpdateAcked        ``{"k": …, "ack": uuid, "seq": n}``
KillStarted        ``{"k": …, "kill": reason, "seq": n}``
StateRecorded      ``{"k": …, "state": {"state", "exit_code", "healthy"}, "seq": n}``
EventConsumed      ``{"k": …, "seq": n}``
TaskForgotten      ``{"k": …, "forget": true}``
=================  ============================================================

A supervisor's events file (:mod:`mesos_zmq.agent.supervisor`), one event a line,
``{"seq": n, "event": tag, "time": t, …}``: :class:`Supervising` ``pid, start``,
:class:`Started` ``pid, supervisor``, :class:`Failed` ``error``, :class:`Health`
``healthy, message, kill``, :class:`Exited` ``exit_code, signal, killed, oom`` (and
``disk``, written only when set, so older agents read the line as before). A
numbered line of a kind not known here (a newer supervisor's) is an :class:`OtherEvent`:
consumed, with no effect.

Decoding never raises: a torn or foreign line is ``None`` (skipped), and a field of
the wrong type reads as the agent always read it (a pid that is not a number is no
pid). Protocol records (the task, its updates) are converted only when a task record
is (de)coded, so a supervisor, which imports this module, stays without them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from mesos_zmq.errors import ProtocolError

if TYPE_CHECKING:
    from pathlib import Path

    from mesos_zmq.protocol import TaskInfo, TaskStatus

_UNREADABLE = (KeyError, TypeError, ValueError, AttributeError, ProtocolError)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


# =================================================================== task log records
@dataclass(frozen=True, slots=True)
class TaskLaunched:
    """The task, recorded before its supervisor is asked to start it."""

    TAG: ClassVar[str] = "launch"
    framework_id: str
    task: TaskInfo
    container_id: str
    gpus: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        from mesos_zmq.protocol import to_plain

        return {"launch": {"framework_id": self.framework_id, "task": to_plain(self.task),
                           "container_id": self.container_id, "gpus": list(self.gpus)}}

    @classmethod
    def from_json(cls, body: Any, seq: int | None) -> TaskLaunched:
        from mesos_zmq.protocol import TaskInfo, from_plain

        return cls(framework_id=str(body["framework_id"]),
                   task=from_plain(TaskInfo, body["task"]),
                   container_id=str(body["container_id"]),
                   gpus=tuple(str(g) for g in body.get("gpus", [])))


@dataclass(frozen=True, slots=True)
class UpdateRecorded:
    """A status update generated (and queued for the framework)."""

    TAG: ClassVar[str] = "update"
    status: TaskStatus
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        from mesos_zmq.protocol import to_plain

        return _numbered({"update": to_plain(self.status)}, self.seq)

    @classmethod
    def from_json(cls, body: Any, seq: int | None) -> UpdateRecorded:
        from mesos_zmq.protocol import TaskStatus, from_plain

        return cls(status=from_plain(TaskStatus, body), seq=seq)


@dataclass(frozen=True, slots=True)
class UpdateAcked:
    """The framework acknowledged the update with this uuid."""

    TAG: ClassVar[str] = "ack"
    uuid: str
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return _numbered({"ack": self.uuid}, self.seq)

    @classmethod
    def from_json(cls, body: Any, seq: int | None) -> UpdateAcked:
        if not isinstance(body, str):
            raise TypeError("an acknowledged uuid is a string")
        return cls(uuid=body, seq=seq)


@dataclass(frozen=True, slots=True)
class KillStarted:
    """A kill of the task began (it is started again after a restart)."""

    TAG: ClassVar[str] = "kill"
    reason: str
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return _numbered({"kill": self.reason}, self.seq)

    @classmethod
    def from_json(cls, body: Any, seq: int | None) -> KillStarted:
        if not isinstance(body, str):
            raise TypeError("a kill reason is a string")
        return cls(reason=body, seq=seq)


@dataclass(frozen=True, slots=True)
class StateRecorded:
    """The task's last state, written by compaction in place of acknowledged updates."""

    TAG: ClassVar[str] = "state"
    state: str  # "" when no update was generated yet
    exit_code: int | None = None
    healthy: bool | None = None
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        return _numbered({"state": {"state": self.state, "exit_code": self.exit_code,
                                    "healthy": self.healthy}}, self.seq)

    @classmethod
    def from_json(cls, body: Any, seq: int | None) -> StateRecorded:
        if not isinstance(body, dict):
            raise TypeError("a state record is an object")
        healthy = body.get("healthy")
        return cls(state=str(body.get("state", "")), exit_code=_int(body.get("exit_code")),
                   healthy=healthy if isinstance(healthy, bool) else None, seq=seq)


@dataclass(frozen=True, slots=True)
class EventConsumed:
    """Supervisor event ``seq`` was consumed, and caused nothing to record."""

    seq: int

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq}


@dataclass(frozen=True, slots=True)
class TaskForgotten:
    """The task's story is over: its last update was acknowledged."""

    TAG: ClassVar[str] = "forget"

    def to_json(self) -> dict[str, Any]:
        return {"forget": True}

    @classmethod
    def from_json(cls, body: Any, seq: int | None) -> TaskForgotten:
        if not body:
            raise ValueError("not forgotten")
        return cls()


#: what the agent core asks to be checkpointed
CoreRecord = UpdateRecorded | UpdateAcked | KillStarted
TaskRecord = (TaskLaunched | UpdateRecorded | UpdateAcked | KillStarted | StateRecorded
              | EventConsumed | TaskForgotten)
#: one line of the task log: the task's key (``framework_id/task_id``) and its record
LogLine = tuple[str, TaskRecord]

#: tags in the order they were always looked for: a line's first tag is its kind
_RECORDS: tuple[type[TaskLaunched | UpdateRecorded | UpdateAcked | KillStarted
                     | StateRecorded | TaskForgotten], ...] = (
    TaskLaunched, UpdateRecorded, UpdateAcked, KillStarted, StateRecorded, TaskForgotten)


def _numbered(body: dict[str, Any], seq: int | None) -> dict[str, Any]:
    if seq is not None:
        body["seq"] = seq
    return body


def record_json(key: str, record: TaskRecord) -> dict[str, Any]:
    """The line's JSON object (``k`` first, then the tag, then ``seq``)."""
    return {"k": key, **record.to_json()}


def decode_record(raw: bytes | str) -> LogLine | None:
    """One task-log line, or None for a line that names no task (torn, foreign).

    A known tag with an unreadable body still counts for its ``seq``; an unreadable
    launch is a task that cannot be recovered: it reads as :class:`TaskForgotten`.
    """
    try:
        line = json.loads(raw)
    except ValueError:
        return None  # a torn last line: the agent died mid-write, before acting on it
    if not isinstance(line, dict) or not isinstance(line.get("k"), str):
        return None
    key: str = line["k"]
    seq = _int(line.get("seq"))
    for kind in _RECORDS:
        if kind.TAG in line:
            try:
                return key, kind.from_json(line[kind.TAG], seq)
            except _UNREADABLE:
                if kind is TaskLaunched:
                    return key, TaskForgotten()
                break
    return (key, EventConsumed(seq)) if seq is not None else None


#: ``json.dumps(…, separators=(",", ":"))`` without building an encoder per line
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def encode_line(key: str, record: TaskRecord) -> str:
    """The line as written to the task log (without its newline)."""
    return _COMPACT.encode(record_json(key, record))


# =================================================================== supervisor events
@dataclass(frozen=True, slots=True)
class Supervising:
    """The supervisor itself (its start time tells it from a recycled pid)."""

    TAG: ClassVar[str] = "supervising"
    pid: int | None
    start: int | None = None
    seq: int = field(default=0, kw_only=True)
    time: float = field(default=0.0, kw_only=True)

    def fields(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start}

    @classmethod
    def from_json(cls, raw: dict[str, Any], seq: int, time: float) -> Supervising:
        return cls(pid=_int(raw.get("pid")), start=_int(raw.get("start")), seq=seq,
                   time=time)


@dataclass(frozen=True, slots=True)
class Started:
    """The command was exec'd as ``pid`` (the leader of its process group)."""

    TAG: ClassVar[str] = "started"
    pid: int | None
    supervisor: int | None = None
    seq: int = field(default=0, kw_only=True)
    time: float = field(default=0.0, kw_only=True)

    def fields(self) -> dict[str, Any]:
        return {"pid": self.pid, "supervisor": self.supervisor}

    @classmethod
    def from_json(cls, raw: dict[str, Any], seq: int, time: float) -> Started:
        return cls(pid=_int(raw.get("pid")), supervisor=_int(raw.get("supervisor")),
                   seq=seq, time=time)


@dataclass(frozen=True, slots=True)
class Failed:
    """The command could not be started."""

    TAG: ClassVar[str] = "failed"
    error: str
    seq: int = field(default=0, kw_only=True)
    time: float = field(default=0.0, kw_only=True)

    def fields(self) -> dict[str, Any]:
        return {"error": self.error}

    @classmethod
    def from_json(cls, raw: dict[str, Any], seq: int, time: float) -> Failed:
        return cls(error=str(raw.get("error", "")), seq=seq, time=time)


@dataclass(frozen=True, slots=True)
class Health:
    """A health check result worth reporting (the first, or a change)."""

    TAG: ClassVar[str] = "health"
    healthy: bool
    message: str = ""
    kill: bool = False
    seq: int = field(default=0, kw_only=True)
    time: float = field(default=0.0, kw_only=True)

    def fields(self) -> dict[str, Any]:
        return {"healthy": self.healthy, "message": self.message, "kill": self.kill}

    @classmethod
    def from_json(cls, raw: dict[str, Any], seq: int, time: float) -> Health:
        return cls(healthy=bool(raw.get("healthy")), message=str(raw.get("message", "")),
                   kill=raw.get("kill") is True, seq=seq, time=time)


@dataclass(frozen=True, slots=True)
class Exited:
    """The task's true exit status; ``killed`` says why the supervisor killed it
    itself (a failing health check), ``oom`` that its memory limit did, ``disk`` that
    the supervisor killed it for outgrowing its disk (what it measured, and the limit)."""

    TAG: ClassVar[str] = "exited"
    exit_code: int | None
    signal: int | None
    killed: str = ""
    oom: bool = False
    disk: str = ""
    seq: int = field(default=0, kw_only=True)
    time: float = field(default=0.0, kw_only=True)

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exit_code": self.exit_code, "signal": self.signal,
                               "killed": self.killed, "oom": self.oom}
        if self.disk:
            out["disk"] = self.disk
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any], seq: int, time: float) -> Exited:
        return cls(exit_code=_int(raw.get("exit_code")), signal=_int(raw.get("signal")),
                   killed=str(raw.get("killed") or ""), oom=raw.get("oom") is True,
                   disk=str(raw.get("disk") or ""), seq=seq, time=time)


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """A numbered event of a kind this agent does not know: consumed, no effect."""

    kind: str
    seq: int = field(default=0, kw_only=True)
    time: float = field(default=0.0, kw_only=True)

    def fields(self) -> dict[str, Any]:
        return {}


SupervisorEvent = Supervising | Started | Failed | Health | Exited | OtherEvent

_EVENTS: dict[str, type[Supervising | Started | Failed | Health | Exited]] = {
    kind.TAG: kind for kind in (Supervising, Started, Failed, Health, Exited)}


def event_json(event: SupervisorEvent) -> dict[str, Any]:
    tag = event.kind if isinstance(event, OtherEvent) else event.TAG
    return {"seq": event.seq, "event": tag, "time": event.time, **event.fields()}


def encode_event(event: SupervisorEvent) -> str:
    return json.dumps(event_json(event))


def decode_event(raw: object) -> SupervisorEvent | None:
    """An event from its JSON object; None unless it is an object with a numeric seq."""
    if not isinstance(raw, dict) or not isinstance(raw.get("seq"), int):
        return None
    seq: int = raw["seq"]
    moment = raw.get("time")
    time = float(moment) if isinstance(moment, int | float) else 0.0
    tag = raw.get("event")
    kind = _EVENTS.get(tag) if isinstance(tag, str) else None
    if kind is None:
        return OtherEvent(kind=tag if isinstance(tag, str) else "", seq=seq, time=time)
    return kind.from_json(raw, seq, time)


#: bytes asked of the kernel per read of an events file
_READ_CHUNK = 1 << 20


def read_appended(path: Path, offset: int = 0,
                  after: int = 0) -> tuple[list[tuple[SupervisorEvent, int]], int]:
    """The events appended to an events file since byte ``offset``, and where to go on.

    Why: the agent reads a task's events each time its supervisor pokes it; reading
    the whole file each time (as :func:`~mesos_zmq.agent.supervisor.read_events` does,
    for recovery) costs what the file holds, which a long-running task (or a flapping
    health check) makes grow without end: that is quadratic work. This reads what
    follows ``offset`` alone.

    Returns each event with ``seq`` greater than ``after`` together with the offset
    just past its line, and the offset just past the last complete line read. A last
    line without its newline is never consumed (the supervisor may be writing it:
    its bytes are read again next time); a complete line that is not an event (torn by
    a killed writer, foreign) is passed over, as before. A file now shorter than
    ``offset`` is not the one read before: it is read from the start (``after`` keeps
    what was consumed out). Never raises: an unreadable file has nothing new.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return [], offset
    chunks: list[bytes] = []
    try:
        size = os.fstat(fd).st_size
        if size < offset:
            offset = 0
        at = offset
        while at < size:  # up to the size seen now: what comes later, the next read gets
            chunk = os.pread(fd, min(size - at, _READ_CHUNK), at)
            if not chunk:
                break
            chunks.append(chunk)
            at += len(chunk)
    except OSError:
        return [], offset
    finally:
        os.close(fd)
    data = b"".join(chunks)
    complete = data.rfind(b"\n") + 1  # 0 when no line is complete yet
    out: list[tuple[SupervisorEvent, int]] = []
    end = offset
    for line in data[:complete].split(b"\n")[:-1]:
        end += len(line) + 1
        if not line:
            continue
        try:
            raw = json.loads(line)
        except ValueError:
            continue  # a torn write of a killed supervisor
        event = decode_event(raw)
        if event is not None and event.seq > after:
            out.append((event, end))
    return out, offset + complete
