"""What an agent writes down so that its own restart loses nothing.

Theory of operation
-------------------
Each task has a meta directory ``<work_dir>/meta/tasks/<framework_id>/<task_id>/``:

* ``task.json``  - the task, its framework, its container id and devices, written
  before the supervisor is forked (a task without it never started);
* ``supervisor.json`` - the supervisor's pid and start time (so a recycled pid is not
  mistaken for it);
* ``events`` - the supervisor's status stream (see :mod:`mesos_zmq.agent.supervisor`);
* ``updates`` - the agent's own log for the task, one JSON record per line:
  ``{"update": status, "seq": n}`` (a status update generated while consuming event
  ``n``), ``{"ack": uuid}`` (the framework acknowledged it), ``{"kill": reason}`` (a kill
  was started), ``{"seq": n}`` (event ``n`` consumed without an update).

:func:`replay` turns those records back into what the core needs: the last state,
the updates not yet acknowledged (re-sent with their original uuids, so the framework's
de-duplication keeps delivery exactly-once), the kill in progress and the last event
consumed. Records are appended without fsync: they must survive the agent process,
not the machine (a machine crash ends its tasks anyway).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesos_zmq.errors import ProtocolError
from mesos_zmq.protocol import TaskInfo, TaskStatus, from_plain, to_plain

TASK_FILE = "task.json"
SUPERVISOR_FILE = "supervisor.json"
UPDATES = "updates"


@dataclass(slots=True)
class TaskCheckpoint:
    """A task as the agent left it."""

    meta_dir: Path
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
    supervisor_pid: int | None = None
    supervisor_start: float | None = None


def meta_root(work_dir: Path) -> Path:
    return work_dir / "meta" / "tasks"


def task_meta_dir(work_dir: Path, framework_id: str, task_id: str) -> Path:
    return meta_root(work_dir) / framework_id / task_id


def _write_json(path: Path, body: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, path)


def write_task(meta_dir: Path, framework_id: str, info: TaskInfo, container_id: str,
               gpus: list[str]) -> None:
    meta_dir.mkdir(parents=True, exist_ok=True)
    _write_json(meta_dir / TASK_FILE, {"framework_id": framework_id, "task": to_plain(info),
                                       "container_id": container_id, "gpus": gpus})


def write_supervisor(meta_dir: Path, pid: int, start_time: float | None) -> None:
    _write_json(meta_dir / SUPERVISOR_FILE, {"pid": pid, "start_time": start_time})


def append(meta_dir: Path, records: list[dict[str, Any]]) -> None:
    """Append records to the task's updates log (one write, so lines never interleave)."""
    data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
    fd = os.open(meta_dir / UPDATES, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def remove(meta_dir: Path) -> None:
    shutil.rmtree(meta_dir, ignore_errors=True)
    try:
        meta_dir.parent.rmdir()  # the framework's dir, once its last task is gone
    except OSError:
        pass


def replay(meta_dir: Path, framework_id: str, info: TaskInfo, container_id: str,
           gpus: list[str], lines: list[bytes]) -> TaskCheckpoint:
    """Fold the updates log into the task's last known condition (pure)."""
    cp = TaskCheckpoint(meta_dir=meta_dir, framework_id=framework_id, info=info,
                        container_id=container_id, gpus=gpus)
    for raw in lines:
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # a torn last line: the agent died mid-write, before sending it
        if not isinstance(record, dict):
            continue
        seq = record.get("seq")
        if isinstance(seq, int) and seq > cp.last_seq:
            cp.last_seq = seq
        if "update" in record:
            try:
                status = from_plain(TaskStatus, record["update"])
            except (ProtocolError, TypeError, ValueError):
                continue
            cp.state = status.state
            cp.exit_code = status.exit_code
            if status.healthy is not None:
                cp.healthy = status.healthy
            cp.pending.append(status)
        elif "ack" in record:
            if cp.pending and cp.pending[0].uuid == record["ack"]:
                cp.pending.pop(0)
        elif "kill" in record and isinstance(record["kill"], str):
            cp.kill_reason = record["kill"]
    return cp


def load(meta_dir: Path) -> TaskCheckpoint | None:
    """Read one task's checkpoint; None when it never got far enough to exist."""
    try:
        body = json.loads((meta_dir / TASK_FILE).read_text())
        info = from_plain(TaskInfo, body["task"])
        framework_id = str(body["framework_id"])
        container_id = str(body["container_id"])
        gpus = [str(g) for g in body.get("gpus", [])]
    except (OSError, ValueError, KeyError, TypeError, ProtocolError):
        return None
    try:
        lines = (meta_dir / UPDATES).read_bytes().split(b"\n")
    except FileNotFoundError:
        lines = []
    cp = replay(meta_dir, framework_id, info, container_id, gpus, lines)
    try:
        sup = json.loads((meta_dir / SUPERVISOR_FILE).read_text())
        cp.supervisor_pid = int(sup["pid"])
        start = sup.get("start_time")
        cp.supervisor_start = float(start) if start is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return cp


def scan(work_dir: Path) -> Iterator[Path]:
    """Every task meta directory under the work dir."""
    root = meta_root(work_dir)
    if not root.is_dir():
        return
    for framework_dir in sorted(root.iterdir()):
        if framework_dir.is_dir():
            for task_dir in sorted(framework_dir.iterdir()):
                if task_dir.is_dir():
                    yield task_dir
