"""The replicated-log interface and its local backends.

The master core emits state records; the shell appends each batch of them with one
durable write *before* sending the messages that reveal the change (write ahead, then
speak). On start the master reads the last snapshot and every batch after it and
replays them into a fresh core.

Backends:

* :class:`MemoryLog` keeps everything in lists; tests share one instance across a
  simulated master restart.
* :class:`DirectoryLog` is the embedded default for a single master: an append-only
  file of length-prefixed msgpack batches, fsynced per batch, plus a snapshot file
  written atomically (tmp + fsync + rename) that lets the log be truncated. A batch
  cut short by a crash is detected by its length prefix and dropped on recovery: it
  was never acknowledged, so nothing that depended on it was ever said. An exclusive
  lock on the directory keeps a second master from writing to the same log.

The ZooKeeper backend for replicated masters is :mod:`mesos_zmq.master.zk_log`.
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgpack

from mesos_zmq.errors import LogError
from mesos_zmq.master.flags import SNAPSHOT_BYTES, SNAPSHOT_EVERY, SNAPSHOT_INTERVAL
from mesos_zmq.master.records import PlainRecord


@dataclass(slots=True)
class Recovered:
    """What a log holds: the last snapshot (or None) and the records after it."""

    snapshot: dict[str, Any] | None
    records: list[PlainRecord] = field(default_factory=list)


# Snapshot and compact the log once SNAPSHOT_EVERY records follow the last snapshot,
# or SNAPSHOT_BYTES encoded bytes, or SNAPSHOT_INTERVAL seconds have passed with
# anything new (defaults of the --snapshot-* flags). A short log after the last
# snapshot is what lets a restarted master catch up and stand by within a second.


@dataclass(frozen=True, slots=True)
class SnapshotPolicy:
    """When the leader replaces the log by a snapshot (by count, size and age)."""

    every: int = SNAPSHOT_EVERY
    max_bytes: int = SNAPSHOT_BYTES
    interval: float = SNAPSHOT_INTERVAL

    def due(self, records: int, size: int, age: float, snapshot_size: int = 0) -> bool:
        """``snapshot_size``: bytes of the last snapshot. Past the count or size limit,
        a snapshot is written only once the log after the last one is as large as it:
        writing one costs about its size, so compaction then costs at most what
        appending did. (At 100,000 tasks a snapshot takes about a second; taken every
        5,000 records it was most of the master's time under churn.) Recovery reads at
        most the snapshot and a log of the same size."""
        if records <= 0:
            return False
        if age >= self.interval:
            return True
        return (records >= self.every or size >= self.max_bytes) and size >= snapshot_size


class ReplicatedLog(Protocol):
    def recover(self) -> Recovered:
        """Read the snapshot and every record appended after it."""
        ...

    def append(self, records: list[PlainRecord]) -> None:
        """Durably append one batch; returns only once it is safe to speak about it."""
        ...

    def claim_epoch(self) -> int:
        """Start a new leadership term; returns its epoch (strictly increasing)."""
        ...

    def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Replace everything appended so far with ``snapshot`` (compaction)."""
        ...

    @property
    def records_since_snapshot(self) -> int: ...

    @property
    def bytes_since_snapshot(self) -> int:
        """Encoded bytes appended (or recovered) since the last snapshot."""
        ...

    @property
    def snapshot_bytes(self) -> int:
        """Encoded size of the last snapshot written or recovered (0: none)."""
        ...

    def close(self) -> None: ...


class MemoryLog:
    """In-memory backend for tests; survives a master object being rebuilt."""

    #: ``recover`` may be called again while serving (see MasterServer's handler failure)
    rereadable = True

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] | None = None
        self.records: list[PlainRecord] = []
        self.appends = 0
        self.epoch = 0
        self.bytes = 0
        self.snapshot_bytes = 0

    def claim_epoch(self) -> int:
        self.epoch += 1
        return self.epoch

    def recover(self) -> Recovered:
        return Recovered(self.snapshot, list(self.records))

    def append(self, records: list[PlainRecord]) -> None:
        # Round-trip through msgpack so tests catch records that would not persist.
        packed = msgpack.packb(records, use_bin_type=True)
        self.records.extend(msgpack.unpackb(packed, raw=False))
        self.appends += 1
        self.bytes += len(packed)

    def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        data = msgpack.packb(snapshot, use_bin_type=True)
        self.snapshot = msgpack.unpackb(data, raw=False)
        self.snapshot_bytes = len(data)
        self.records = []
        self.bytes = 0

    @property
    def records_since_snapshot(self) -> int:
        return len(self.records)

    @property
    def bytes_since_snapshot(self) -> int:
        return self.bytes

    def close(self) -> None:
        pass


_HEADER = struct.Struct(">I")
_MAX_BATCH = 256 * 1024 * 1024


class DirectoryLog:
    """Append-only file plus atomic snapshot in one directory (single master)."""

    #: ``recover`` may be called again while serving: it re-reads the files
    rereadable = True

    LOG_NAME = "log.bin"
    SNAPSHOT_NAME = "snapshot.bin"
    LOCK_NAME = "lock"
    EPOCH_NAME = "epoch"

    def __init__(self, path: str | os.PathLike[str], fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path / self.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LogError(f"cannot open log directory {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise LogError(
                f"log directory {self.path} is locked by another master; "
                "stop it or use another --work-dir"
            ) from None
        self._count = 0
        self._bytes = 0
        self._snapshot_bytes = 0
        self._log_fd = -1

    def claim_epoch(self) -> int:
        """Bump the epoch kept beside the log (a restarted master is a new term)."""
        path = self.path / self.EPOCH_NAME
        try:
            current = int(path.read_text().strip() or 0) if path.exists() else 0
        except (OSError, ValueError) as exc:
            raise LogError(f"cannot read {path}: {exc}") from None
        epoch = current + 1
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "w") as handle:
                handle.write(f"{epoch}\n")
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise LogError(f"cannot write {path}: {exc}") from None
        return epoch

    # ----------------------------------------------------------------- reading
    def recover(self) -> Recovered:
        snapshot: dict[str, Any] | None = None
        snap_path = self.path / self.SNAPSHOT_NAME
        if snap_path.exists():
            try:
                data = snap_path.read_bytes()
                self._snapshot_bytes = len(data)
                snapshot = msgpack.unpackb(data, raw=False)
            except Exception as exc:
                raise LogError(f"snapshot {snap_path} is unreadable: {exc}") from None
        records: list[PlainRecord] = []
        log_path = self.path / self.LOG_NAME
        good_length = 0
        if log_path.exists():
            data = log_path.read_bytes()
            offset = 0
            while offset + _HEADER.size <= len(data):
                (length,) = _HEADER.unpack_from(data, offset)
                end = offset + _HEADER.size + length
                if length > _MAX_BATCH or end > len(data):
                    break  # torn final write: never acknowledged
                try:
                    batch = msgpack.unpackb(data[offset + _HEADER.size : end], raw=False)
                except Exception:
                    break
                records.extend(batch)
                offset = end
            good_length = offset
        self._open_log(truncate_to=good_length)
        self._count = len(records)
        self._bytes = good_length
        return Recovered(snapshot, records)

    # ----------------------------------------------------------------- writing
    def _open_log(self, truncate_to: int | None = None) -> None:
        if self._log_fd >= 0:
            os.close(self._log_fd)
        self._log_fd = os.open(self.path / self.LOG_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        if truncate_to is not None:
            os.ftruncate(self._log_fd, truncate_to)
        os.lseek(self._log_fd, 0, os.SEEK_END)

    def append(self, records: list[PlainRecord]) -> None:
        if not records:
            return
        if self._log_fd < 0:
            self._open_log()
        payload = msgpack.packb(records, use_bin_type=True)
        frame = _HEADER.pack(len(payload)) + payload
        try:
            written = os.write(self._log_fd, frame)
            while written < len(frame):
                written += os.write(self._log_fd, frame[written:])
            if self.fsync:
                os.fdatasync(self._log_fd)
        except OSError as exc:
            raise LogError(f"cannot append to {self.path / self.LOG_NAME}: {exc}") from None
        self._count += len(records)
        self._bytes += len(frame)

    def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        tmp = self.path / (self.SNAPSHOT_NAME + ".tmp")
        data = msgpack.packb(snapshot, use_bin_type=True)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path / self.SNAPSHOT_NAME)
            dir_fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            # Only after the snapshot is durable may the log it covers go.
            self._open_log(truncate_to=0)
            if self.fsync:
                os.fsync(self._log_fd)
        except OSError as exc:
            raise LogError(f"cannot write snapshot in {self.path}: {exc}") from None
        self._count = 0
        self._bytes = 0
        self._snapshot_bytes = len(data)

    @property
    def records_since_snapshot(self) -> int:
        return self._count

    @property
    def bytes_since_snapshot(self) -> int:
        return self._bytes

    @property
    def snapshot_bytes(self) -> int:
        return self._snapshot_bytes

    def close(self) -> None:
        if self._log_fd >= 0:
            os.close(self._log_fd)
            self._log_fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
