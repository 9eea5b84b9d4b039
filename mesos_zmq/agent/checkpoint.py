"""What an agent writes down so that its own restart loses nothing.

Theory of operation
-------------------
Two kinds of files, chosen so that a launch costs almost no file creation (creating a
file or directory is the dearest thing an agent does to its disk):

* ``<work_dir>/meta/tasks.log`` - the agent's own append-only log, one JSON record per
  line, each naming its task by ``k`` (``framework_id/task_id``), typed in
  :mod:`mesos_zmq.agent.events`:
  ``{"launch": …}`` the task, its container id and GPUs, written before the
  supervisor is asked to start it (a task never exists unrecorded);
  ``{"update": status, "seq": n}`` a status update generated while consuming event
  ``n`` of the task's supervisor; ``{"ack": uuid}`` the framework acknowledged it;
  ``{"kill": reason}`` a kill was started; ``{"seq": n}`` event ``n`` consumed without
  an update; ``{"state": …}`` the last state (written by compaction, which drops
  acknowledged updates); ``{"forget": true}`` the task's story is over.
* ``<work_dir>/meta/events/<framework_id>/<task_id>`` - the task supervisor's status
  stream (see :mod:`mesos_zmq.agent.supervisor`).

(``<work_dir>/meta/launch`` holds no checkpoint: only the launch request of a task too
large for one packet to the launcher, for the moment until the launcher reads and
removes it; see :mod:`mesos_zmq.agent.launcher`.)

Only tasks the core let through are recorded: a task refused in a ``run_tasks``
(:mod:`mesos_zmq.agent.core`, invalid resources, sizes, ids) is never launched, so its
records are dropped (:func:`batch_records`), and every launch record the log holds is
one a restarted agent can read back.

:func:`replay` folds the log back into one :class:`TaskCheckpoint` per live task: the
last state, the updates not yet acknowledged (re-sent with their original uuids, so the
framework's de-duplication keeps delivery exactly-once), the kill in progress and the
last event consumed. :func:`compact` rewrites the log with only that, at start-up and
whenever it grows large. Records are appended without fsync: they must survive the
agent process, not the machine (a machine crash ends its tasks anyway).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from mesos_zmq.agent.events import (
    CoreRecord,
    EventConsumed,
    KillStarted,
    LogLine,
    StateRecorded,
    TaskForgotten,
    TaskLaunched,
    TaskRecord,
    UpdateAcked,
    UpdateRecorded,
    decode_record,
    encode_line,
)
from mesos_zmq.protocol import TaskInfo, TaskStatus

LOG = "tasks.log"
#: rewrite the log once it is this large (it holds ~1 KB per launched task)
COMPACT_BYTES = 32 * 1024 * 1024


@dataclass(slots=True)
class TaskCheckpoint:
    """A task as the agent left it."""

    framework_id: str
    info: TaskInfo
    container_id: str
    gpus: list[str] = field(default_factory=list)
    state: str = ""  # last state an update was generated for ("" = none yet)
    exit_code: int | None = None
    healthy: bool | None = None
    pending: list[TaskStatus] = field(default_factory=list)
    kill_reason: str | None = None
    last_seq: int = 0

    @property
    def key(self) -> str:
        return task_key(self.framework_id, self.info.task_id)


def task_key(framework_id: str, task_id: str) -> str:
    return f"{framework_id}/{task_id}"


def events_path(work_dir: Path, framework_id: str, task_id: str) -> Path:
    return work_dir / "meta" / "events" / framework_id / task_id


def replay(lines: Iterable[bytes]) -> dict[str, TaskCheckpoint]:
    """Fold log records into the live tasks, by key (pure)."""
    tasks: dict[str, TaskCheckpoint] = {}
    for raw in lines:
        if not raw.strip():
            continue
        line = decode_record(raw)
        if line is None:
            continue
        key, record = line
        if isinstance(record, TaskLaunched):
            tasks[key] = TaskCheckpoint(framework_id=record.framework_id, info=record.task,
                                        container_id=record.container_id,
                                        gpus=list(record.gpus))
            continue
        cp = tasks.get(key)
        if cp is None:
            continue
        if isinstance(record, TaskForgotten):
            del tasks[key]
            continue
        if record.seq is not None and record.seq > cp.last_seq:
            cp.last_seq = record.seq
        if isinstance(record, UpdateRecorded):
            status = record.status
            cp.state = status.state
            cp.exit_code = status.exit_code
            if status.healthy is not None:
                cp.healthy = status.healthy
            cp.pending.append(status)
        elif isinstance(record, UpdateAcked):
            if cp.pending and cp.pending[0].uuid == record.uuid:
                cp.pending.pop(0)
        elif isinstance(record, KillStarted):
            cp.kill_reason = record.reason
        elif isinstance(record, StateRecorded):
            cp.state = record.state
            cp.exit_code = record.exit_code
            cp.healthy = record.healthy
    return tasks


def batch_records(records: list[tuple[tuple[str, str], CoreRecord]],
                  seq: tuple[tuple[str, str], int] | None,
                  launched: Callable[[tuple[str, str]], bool]) -> list[LogLine]:
    """One task-log batch from the core's checkpoint records ((framework, task), record).

    ``seq`` (task, number) marks the last supervisor event consumed for that task, on
    its records or alone. Records of tasks never launched here (refused ids, kills of
    unknown tasks) are dropped: ``launched`` is False for them.
    """
    by_task: dict[tuple[str, str], list[TaskRecord]] = {}
    for key, record in records:
        by_task.setdefault(key, []).append(record)
    if seq is not None:
        mine = by_task.setdefault(seq[0], [])
        if mine:
            mine[:] = [_numbered(record, seq[1]) for record in mine]
        else:
            mine.append(EventConsumed(seq[1]))
    batch: list[LogLine] = []
    for (framework_id, task_id), mine in by_task.items():
        if launched((framework_id, task_id)):
            name = task_key(framework_id, task_id)
            batch.extend((name, record) for record in mine)
    return batch


def _numbered(record: TaskRecord, seq: int) -> TaskRecord:
    """``record`` carrying ``seq``, unless it carries one already."""
    if isinstance(record, UpdateRecorded | UpdateAcked | KillStarted) and record.seq is None:
        return replace(record, seq=seq)
    return record


def launch_record(framework_id: str, info: TaskInfo, container_id: str,
                  gpus: list[str]) -> LogLine:
    return (task_key(framework_id, info.task_id),
            TaskLaunched(framework_id=framework_id, task=info, container_id=container_id,
                         gpus=tuple(gpus)))


def forget_record(framework_id: str, task_id: str) -> LogLine:
    return (task_key(framework_id, task_id), TaskForgotten())


def _records_of(cp: TaskCheckpoint) -> list[LogLine]:
    """The fewest records that replay to ``cp``."""
    key = cp.key
    out = [launch_record(cp.framework_id, cp.info, cp.container_id, cp.gpus)]
    out.append((key, StateRecorded(state=cp.state, exit_code=cp.exit_code,
                                   healthy=cp.healthy, seq=cp.last_seq)))
    if cp.kill_reason is not None:
        out.append((key, KillStarted(cp.kill_reason)))
    # The last pending update (if any) is the one that set ``state``: replaying them
    # after the state record ends in the same place.
    out += [(key, UpdateRecorded(s)) for s in cp.pending]
    return out


def encode_lines(lines: Iterable[LogLine]) -> bytes:
    """Lines as written to the log (one JSON object each, newline-terminated)."""
    return "".join(encode_line(key, record) + "\n" for key, record in lines).encode()


class TaskLog:
    """The agent's append-only task log (one writer: the agent)."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / "meta" / LOG
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # the agent's alone: tasks' environments are in it (see AgentServer)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def load(self) -> dict[str, TaskCheckpoint]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        return replay(data.split(b"\n"))

    def append(self, lines: list[LogLine]) -> None:
        """One write for the batch, so records of a batch are never torn apart."""
        if lines:
            os.write(self._fd, encode_lines(lines))

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def compact(self, live: list[TaskCheckpoint]) -> None:
        """Rewrite the log with only the live tasks (write aside, fsync, rename)."""
        tmp = self.path.with_suffix(".tmp")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                       "wb") as handle:
            for cp in live:
                handle.write(encode_lines(_records_of(cp)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def close(self) -> None:
        os.close(self._fd)
