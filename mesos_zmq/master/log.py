"""The replicated-log interface and its local backends.

The master core emits state records; the shell appends each batch of them with one
durable write *before* sending the messages that reveal the change (write ahead, then
speak). On start the master reads the last snapshot and every batch after it and
replays them into a fresh core.

Snapshots are taken in two steps so that the expensive part can run off the event loop
(:mod:`mesos_zmq.master.snapshots`): :meth:`ReplicatedLog.mark_snapshot` notes, cheaply,
what a snapshot of the state as of now covers (everything appended so far); a forked
child builds and encodes that state (:meth:`ReplicatedLog.encode_snapshot`, pure);
:meth:`ReplicatedLog.install_snapshot` stores it and compacts only what the mark
covered. Records appended between the mark and the install stay in the log and are
replayed on top of the snapshot.

Backends:

* :class:`MemoryLog` keeps everything in lists; tests share one instance across a
  simulated master restart.
* :class:`DirectoryLog` is the embedded default for a single master: segment files of
  length-prefixed msgpack batches, fsynced per batch, and snapshot files written
  atomically (tmp + fsync + rename). A mark starts a new segment, so a snapshot covers
  whole segments and compaction is deleting files. A batch cut short by a crash is
  detected by its length prefix and dropped on recovery: it was never acknowledged,
  so nothing that depended on it was ever said. An exclusive lock on the directory
  keeps a second master from writing to the same log.

The ZooKeeper backend for replicated masters is :mod:`mesos_zmq.master.zk_log`.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgpack
import structlog

from mesos_zmq.errors import LogError
from mesos_zmq.master.flags import SNAPSHOT_BYTES, SNAPSHOT_EVERY, SNAPSHOT_INTERVAL
from mesos_zmq.master.records import PlainRecord

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class EncodedSnapshot:
    """A snapshot as the log stores it, built by :meth:`ReplicatedLog.encode_snapshot`.

    It crosses a pipe from the child that built it, so it is plain bytes plus the size
    the snapshot policy needs (which a compressing backend cannot tell from ``data``).
    """

    #: the bytes the backend stores (DirectoryLog, MemoryLog: msgpack of the state dict)
    data: bytes
    #: msgpack bytes before any compression: what SnapshotPolicy.due compares the log
    #: against, and what ``snapshot_bytes`` reports once it is installed
    size: int


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

    def mark_snapshot(self) -> int:
        """Note what a snapshot of the state as of now covers: everything appended so
        far, nothing appended later. Returns the token :meth:`install_snapshot` takes.

        Cheap: it runs in the event loop, just before a child is forked to build the
        snapshot. A mark may be abandoned (the child failed); a later one covers more.
        """
        ...

    def encode_snapshot(self, snapshot: dict[str, Any]) -> EncodedSnapshot:
        """Encode ``snapshot`` as this log stores it.

        Pure CPU, no I/O, and it touches no state of the log object: it runs in a forked
        child, whose copy of the log is not the parent's.
        """
        ...

    def install_snapshot(self, encoded: EncodedSnapshot, mark: int) -> None:
        """Make ``encoded`` the snapshot, covering what was appended up to ``mark``, and
        compact what it covers. Records appended after the mark stay in the log and
        recovery replays them on top. Crash-safe at every point.

        A mark no newer than the installed snapshot's is ignored: that snapshot already
        covers at least as much, and installing an older one would lose records.
        """
        ...

    def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Replace everything appended so far with ``snapshot`` (compaction), at once:
        ``install_snapshot(encode_snapshot(snapshot), mark_snapshot())``."""
        ...

    @property
    def records_since_snapshot(self) -> int:
        """Records appended (or recovered) that no installed snapshot covers."""
        ...

    @property
    def bytes_since_snapshot(self) -> int:
        """Encoded bytes appended (or recovered) that no installed snapshot covers."""
        ...

    @property
    def snapshot_bytes(self) -> int:
        """``EncodedSnapshot.size`` of the last snapshot installed or recovered (0: none)."""
        ...

    def close(self) -> None: ...


def _encode(snapshot: dict[str, Any]) -> EncodedSnapshot:
    data: bytes = msgpack.packb(snapshot, use_bin_type=True)
    return EncodedSnapshot(data, len(data))


class MemoryLog:
    """In-memory backend for tests; survives a master object being rebuilt.

    Marks and installs behave as in :class:`DirectoryLog` (a mark is a generation; a
    snapshot covers the generations before its mark), so tests and the simulator see
    the records appended while a snapshot was being built survive its install.
    """

    #: ``recover`` may be called again while serving (see MasterServer's handler failure)
    rereadable = True

    def __init__(self) -> None:
        self.snapshot: dict[str, Any] | None = None
        #: the records no installed snapshot covers, in order
        self.records: list[PlainRecord] = []
        self.appends = 0
        self.epoch = 0
        #: encoded bytes of ``records``
        self.bytes = 0
        self.snapshot_bytes = 0
        #: the generation appends go to; a mark starts the next one and returns it
        self._generation = 0
        #: the installed snapshot covers the generations below this one
        self._covered = 0
        #: [generation, records, bytes] of the generations in ``records``, in order
        self._generations: list[list[int]] = []

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
        if not self._generations or self._generations[-1][0] != self._generation:
            self._generations.append([self._generation, 0, 0])
        self._generations[-1][1] += len(records)
        self._generations[-1][2] += len(packed)

    def mark_snapshot(self) -> int:
        self._generation += 1
        return self._generation

    def encode_snapshot(self, snapshot: dict[str, Any]) -> EncodedSnapshot:
        return _encode(snapshot)

    def install_snapshot(self, encoded: EncodedSnapshot, mark: int) -> None:
        """Ignores a mark no newer than the installed snapshot's (it covers more)."""
        if mark <= self._covered:
            return
        if mark > self._generation:
            raise ValueError(f"snapshot mark {mark} was not taken by this log "
                             f"(its newest is {self._generation})")
        self.snapshot = msgpack.unpackb(encoded.data, raw=False)
        self.snapshot_bytes = encoded.size
        self._covered = mark
        dropped = 0
        while self._generations and self._generations[0][0] < mark:
            _, count, size = self._generations.pop(0)
            dropped += count
            self.bytes -= size
        del self.records[:dropped]

    def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        self.install_snapshot(self.encode_snapshot(snapshot), self.mark_snapshot())

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
_SEGMENT = re.compile(r"log-(\d+)\.bin")
_SNAPSHOT = re.compile(r"snapshot-(\d+)\.bin")
_SNAPSHOT_TMP = re.compile(r"snapshot(-\d+)?\.bin\.tmp")


def _parse_batches(data: bytes) -> tuple[list[PlainRecord], int]:
    """The records of the complete batches at the start of ``data``, and where they end
    (``len(data)`` unless a batch is cut short or unreadable)."""
    records: list[PlainRecord] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        (length,) = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        if length > _MAX_BATCH or end > len(data):
            break
        try:
            batch = msgpack.unpackb(data[offset + _HEADER.size : end], raw=False)
        except Exception:
            break
        if not isinstance(batch, list):
            break
        records.extend(batch)
        offset = end
    return records, offset


class DirectoryLog:
    """Log segments plus atomic snapshots in one directory (single master).

    Layout::

        log-000007.bin        a segment: length-prefixed msgpack batches
        snapshot-000007.bin   msgpack of the state; covers every segment below 7
        lock, epoch

    :meth:`mark_snapshot` closes the current segment and starts the next generation, so
    what a snapshot covers is a set of whole, closed segments. Installing one writes
    ``snapshot-N.bin.tmp``, fsyncs it, renames it and fsyncs the directory; only then
    are older snapshots and the segments below N deleted. A crash anywhere in between
    leaves either the old snapshot with all its segments, or the new one with leftovers
    that recovery ignores and deletes: no record is lost or replayed twice.

    Recovery reads the highest snapshot, then every segment from its generation on. Only
    the last segment can end in a torn write (earlier ones were closed after their
    batches were synced), so a bad batch anywhere else is corruption, not a crash.

    A directory of the first layout (``log.bin``, ``snapshot.bin``: snapshot, then the
    log after it) is renamed on recovery to segment 0 and snapshot 0, which mean the same.
    """

    #: ``recover`` may be called again while serving: it re-reads the files
    rereadable = True

    #: the first layout's file names (renamed to generation 0 on recovery)
    LEGACY_LOG_NAME = "log.bin"
    LEGACY_SNAPSHOT_NAME = "snapshot.bin"
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
        #: whether the files were read (they are before anything is written)
        self._scanned = False
        #: the generation appends go to (its file is created by the first of them)
        self._generation = 0
        #: the installed snapshot's generation: it covers the segments below it
        self._covered = 0
        #: generation -> [records, bytes] of each segment the snapshot does not cover
        self._segments: dict[int, list[int]] = {}
        self._count = 0
        self._bytes = 0
        self._snapshot_bytes = 0
        #: the open segment (-1: none), its generation and its length
        self._log_fd = -1
        self._fd_generation = -1
        self._fd_length = 0

    def segment_path(self, generation: int) -> Path:
        return self.path / f"log-{generation:06d}.bin"

    def snapshot_path(self, generation: int) -> Path:
        return self.path / f"snapshot-{generation:06d}.bin"

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

    # ----------------------------------------------------------------- files
    def _listing(self) -> tuple[dict[int, Path], dict[int, Path]]:
        """Segments and snapshots in the directory, by generation."""
        segments: dict[int, Path] = {}
        snapshots: dict[int, Path] = {}
        try:
            names = os.listdir(self.path)
        except OSError as exc:
            raise LogError(f"cannot list log directory {self.path}: {exc.strerror}") from None
        for name in names:
            if match := _SEGMENT.fullmatch(name):
                segments[int(match.group(1))] = self.path / name
            elif match := _SNAPSHOT.fullmatch(name):
                snapshots[int(match.group(1))] = self.path / name
        return segments, snapshots

    def _sync_directory(self) -> None:
        """Make renames, creations and deletions in the directory durable."""
        if not self.fsync:
            return
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _remove(self, path: Path, why: str) -> None:
        """Delete a file recovery would ignore anyway. Failing to is only a warning: the
        log is correct without it, and an error here would keep the master from starting
        (recovery deletes leftovers too)."""
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove a file the log no longer needs; remove it by hand",
                        file=str(path), reason=why, error=exc.strerror)

    def _remove_covered(self, segments: dict[int, Path], snapshots: dict[int, Path],
                        generation: int, snapshot_name: str) -> None:
        """Delete the snapshots and segments below ``generation``, which the snapshot
        ``snapshot_name`` covers (after its install, or left by a crash before)."""
        for older, path in snapshots.items():
            if older < generation:
                self._remove(path, f"replaced by {snapshot_name}")
        for older, path in segments.items():
            if older < generation:
                self._remove(path, f"covered by {snapshot_name}")

    def _close_segment(self) -> None:
        if self._log_fd >= 0:
            os.close(self._log_fd)
            self._log_fd = -1
            self._fd_generation = -1

    def _migrate_legacy(self) -> None:
        """Rename ``snapshot.bin`` and ``log.bin`` to snapshot 0 and segment 0.

        The first layout kept the snapshot and the log after it; snapshot 0 covers the
        segments below 0 (none) and segment 0 follows it, which is the same. Each rename
        is atomic, so a crash between them leaves a half-renamed directory that the next
        recovery finishes.
        """
        legacy_log = self.path / self.LEGACY_LOG_NAME
        legacy_snapshot = self.path / self.LEGACY_SNAPSHOT_NAME
        moves = [(old, new) for old, new in ((legacy_log, self.segment_path(0)),
                                             (legacy_snapshot, self.snapshot_path(0)))
                 if old.exists()]
        if not moves:
            return
        segments, snapshots = self._listing()
        if (any(generation > 0 for generation in (*segments, *snapshots))
                or any(new.exists() for _, new in moves)):
            raise LogError(
                f"log directory {self.path} holds files of both layouts ({self.LEGACY_LOG_NAME}"
                f"/{self.LEGACY_SNAPSHOT_NAME} and log-NNNNNN.bin/snapshot-NNNNNN.bin): two "
                "versions of the master wrote to it; keep the files of the one that ran last"
            )
        try:
            for old, new in moves:
                os.rename(old, new)
            self._sync_directory()
        except OSError as exc:
            raise LogError(f"cannot rename the log files in {self.path} to the segmented "
                           f"layout: {exc}") from None

    # ----------------------------------------------------------------- reading
    def recover(self) -> Recovered:
        """Read the newest snapshot and every segment from its generation on.

        Also tidies what a crash left: half-written snapshots (``*.tmp``), and snapshots
        and segments that a newer snapshot covers (a crash between installing it and
        deleting them). Called again while serving it re-reads the files; a mark taken
        and not installed stays valid (appends still go after it).
        """
        self._close_segment()
        try:
            for name in os.listdir(self.path):
                if _SNAPSHOT_TMP.fullmatch(name):
                    self._remove(self.path / name, "a snapshot whose writing was cut short")
        except OSError as exc:
            raise LogError(f"cannot list log directory {self.path}: {exc.strerror}") from None
        self._migrate_legacy()
        segments, snapshots = self._listing()

        snapshot: dict[str, Any] | None = None
        covered = max(snapshots, default=0)
        snapshot_bytes = 0
        if snapshots:
            snap_path = snapshots[covered]
            try:
                data = snap_path.read_bytes()
                snapshot = msgpack.unpackb(data, raw=False)
            except Exception as exc:
                raise LogError(f"snapshot {snap_path} is unreadable: {exc}") from None
            snapshot_bytes = len(data)
            self._remove_covered(segments, snapshots, covered, snapshots[covered].name)

        live = sorted(generation for generation in segments if generation >= covered)
        records: list[PlainRecord] = []
        counts: dict[int, list[int]] = {}
        for generation in live:
            path = segments[generation]
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise LogError(f"cannot read log segment {path}: {exc.strerror}") from None
            batch_records, good = _parse_batches(data)
            if good < len(data):
                if generation != live[-1]:
                    raise LogError(
                        f"log segment {path} is corrupt at byte {good} of {len(data)}; a later "
                        "segment exists, so this is damage, not a write cut short by a crash: "
                        "restore the log directory from a backup"
                    )
                # A torn final write: never acknowledged, so it is dropped. Made durable
                # before anything is appended after it (possibly in a later segment).
                try:
                    fd = os.open(path, os.O_RDWR)
                    try:
                        os.ftruncate(fd, good)
                        if self.fsync:
                            os.fsync(fd)
                    finally:
                        os.close(fd)
                except OSError as exc:
                    raise LogError(f"cannot truncate the torn end of {path}: "
                                   f"{exc.strerror}") from None
            records.extend(batch_records)
            counts[generation] = [len(batch_records), good]

        self._covered = covered
        self._snapshot_bytes = snapshot_bytes
        self._segments = counts
        self._count = sum(count for count, _ in counts.values())
        self._bytes = sum(size for _, size in counts.values())
        # Appends continue in the last segment, or after a mark this object took (a
        # re-read while serving): its snapshot may still be installed.
        self._generation = max(self._generation, covered, live[-1] if live else 0)
        self._scanned = True
        return Recovered(snapshot, records)

    def _scan(self) -> None:
        """Read the directory before the first write, unless ``recover`` did."""
        if not self._scanned:
            self.recover()

    # ----------------------------------------------------------------- writing
    def _open_segment(self) -> None:
        """Open the current generation's segment for appending, creating it if needed
        (and making its name durable before any batch in it is acknowledged)."""
        if self._log_fd >= 0 and self._fd_generation == self._generation:
            return
        self._close_segment()
        path = self.segment_path(self._generation)
        try:
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                length = os.lseek(fd, 0, os.SEEK_END)
                if created:
                    self._sync_directory()
            except OSError:
                os.close(fd)
                raise
        except OSError as exc:
            raise LogError(f"cannot open log segment {path}: {exc.strerror}") from None
        self._log_fd = fd
        self._fd_generation = self._generation
        self._fd_length = length
        self._segments.setdefault(self._generation, [0, 0])

    def append(self, records: list[PlainRecord]) -> None:
        if not records:
            return
        self._scan()
        self._open_segment()
        payload = msgpack.packb(records, use_bin_type=True)
        frame = _HEADER.pack(len(payload)) + payload
        try:
            written = os.write(self._log_fd, frame)
            while written < len(frame):
                written += os.write(self._log_fd, frame[written:])
            if self.fsync:
                os.fdatasync(self._log_fd)
        except OSError as exc:
            # Cut the partial batch off, so that batches appended later (perhaps in a
            # later segment) do not sit after garbage, which recovery would take for
            # corruption.
            try:
                os.ftruncate(self._log_fd, self._fd_length)
                os.lseek(self._log_fd, 0, os.SEEK_END)
            except OSError:
                self._close_segment()
            raise LogError(f"cannot append to {self.segment_path(self._generation)}: "
                           f"{exc.strerror}") from None
        self._fd_length += len(frame)
        counts = self._segments[self._generation]
        counts[0] += len(records)
        counts[1] += len(frame)
        self._count += len(records)
        self._bytes += len(frame)

    def mark_snapshot(self) -> int:
        """Close the current segment; later appends go to the next generation, N, which
        is returned: a snapshot installed with it covers every segment below N.

        No file is created here (the first append does), so abandoned marks leave
        nothing behind and a mark costs no disk access.
        """
        self._scan()
        self._close_segment()
        self._generation += 1
        return self._generation

    def encode_snapshot(self, snapshot: dict[str, Any]) -> EncodedSnapshot:
        return _encode(snapshot)

    def install_snapshot(self, encoded: EncodedSnapshot, mark: int) -> None:
        """Write ``snapshot-<mark>.bin`` atomically, then delete what it covers.

        A mark no newer than the installed snapshot's is ignored: that snapshot covers
        at least as much, and the segments between the two marks are gone already.
        """
        self._scan()
        if mark <= self._covered:
            return
        if mark > self._generation:
            raise ValueError(f"snapshot mark {mark} was not taken by this log "
                             f"(its newest is {self._generation})")
        final = self.snapshot_path(mark)
        tmp = final.with_name(final.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(encoded.data)
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            self._sync_directory()
        except OSError as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise LogError(f"cannot write snapshot {final}: {exc.strerror}; the log is "
                           "intact and only longer (is the disk full?)") from None
        # The snapshot is durable: from here on recovery uses it, whatever follows.
        self._covered = mark
        self._snapshot_bytes = encoded.size
        for generation in [g for g in self._segments if g < mark]:
            count, size = self._segments.pop(generation)
            self._count -= count
            self._bytes -= size
        segments, snapshots = self._listing()
        self._remove_covered(segments, snapshots, mark, final.name)

    def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        self.install_snapshot(self.encode_snapshot(snapshot), self.mark_snapshot())

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
        self._close_segment()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
