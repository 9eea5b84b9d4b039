"""The replicated log on ZooKeeper, fenced by the leader's epoch.

Layout under the cluster path ``P``::

    P/epoch                 its znode version is the epoch; a new leader bumps it
    P/log/e-0000000042      one batch of records (or one part of a large batch)
    P/snapshot              {"id", "chunks", "last_seq", "last_lsn", "codec"} of the current one
    P/snapshots/<id>/c-0000 the snapshot's msgpack bytes (zlib-compressed: codec "zlib") in chunks

Group commit: each :meth:`ZooKeeperLog.append` is one ZooKeeper multi-op: a version
check of ``P/epoch`` plus the creation of one sequential znode holding the whole
batch. A leader that has been deposed (someone bumped the epoch) fails the check and
gets :class:`LogFenced`; nothing it tried to write lands. Every znode stays under
``CHUNK`` bytes (ZooKeeper refuses 1 MB): a larger batch is written as parts that
carry a batch token and their index, and recovery ignores a batch whose parts are not
all there (its writer died or was fenced between parts, so it was never
acknowledged).

Batches are numbered (``lsn``) without holes, independently of ZooKeeper's sequence
numbers (which jump after deletions). A reader expects batch ``n + 1`` after batch
``n``: anything else, or an entry deleted between listing and reading it, means it fell
behind compaction, and it reloads the newest snapshot and goes on from there. A reader
never skips a batch.

Snapshots are written in chunks, then published by updating ``P/snapshot`` (also
fenced; its meta names the last batch it covers), and only then are the log entries
they cover deleted (compaction). Reads and deletions are pipelined (kazoo's async
calls), so recovering or compacting thousands of entries costs a few round trips.
"""

from __future__ import annotations

import uuid
import zlib
from collections import deque
from typing import Any

import msgpack
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NoNodeError

from mesos_zmq.errors import LogError
from mesos_zmq.master.log import EncodedSnapshot, Recovered
from mesos_zmq.master.records import PlainRecord

#: the largest znode this log writes (ZooKeeper's limit is about 1 MB)
CHUNK = 512 * 1024


#: log entries a compaction leaves behind (already covered by the snapshot)
RETAIN = 64
#: how often a read that met compaction reloads the snapshot before giving up
READ_ATTEMPTS = 5


class _Gap(Exception):
    """The next batch is not where it should be: reload the snapshot."""


class LogFenced(LogError):
    """A newer leader owns the log; this process must stop serving."""


def _seq(name: str) -> int:
    return int(name.rsplit("-", 1)[-1])


class ZooKeeperLog:
    def __init__(self, client: KazooClient, path: str, chunk: int = CHUNK,
                 retain: int = RETAIN) -> None:
        self.zk = client
        self.path = "/" + path.strip("/")
        self.chunk = chunk
        self.retain = retain
        self._epoch_version: int | None = None
        self._last_seq = -1
        #: batches after the published snapshot: (lsn, records, bytes), and their sums,
        #: so that whoever holds this log (a standby that takes over, too) knows how
        #: much a snapshot would compact
        self._since: deque[tuple[int, int, int]] = deque()
        self._count = 0
        #: the number of the last complete batch read or written (batches are numbered
        #: without holes, so a reader can tell a gap from the end of the log)
        self._lsn = -1
        self._bytes = 0
        #: encoded size of the last snapshot written or read (see SnapshotPolicy.due)
        self.snapshot_bytes = 0
        #: marks taken and not installed yet: batch number -> last sequence number then
        self._marks: dict[int, int] = {}
        #: the last batch the published snapshot covers (as far as this process knows)
        self._covered_lsn = -1
        #: parts of a batch seen by ``tail`` whose other parts have not arrived yet:
        #: token -> (batch number, parts)
        self._pending: dict[str, tuple[int | None, list[tuple[int, int, bytes]]]] = {}
        try:
            for sub in ("epoch", "log", "snapshots"):
                self.zk.ensure_path(f"{self.path}/{sub}")
        except KazooException as exc:
            raise LogError(f"cannot prepare {self.path} in ZooKeeper: {exc!r}") from None

    # ----------------------------------------------------------------- epoch
    @property
    def epoch(self) -> int | None:
        return self._epoch_version

    def claim_epoch(self) -> int:
        """Become the only writer: bump the epoch. Returns the new epoch."""
        try:
            _, stat = self.zk.get(f"{self.path}/epoch")
            new = self.zk.set(f"{self.path}/epoch", uuid.uuid4().hex.encode(),
                              version=stat.version)
        except BadVersionError:
            raise LogFenced("another master claimed the epoch at the same moment") from None
        except KazooException as exc:
            raise LogError(f"cannot claim the epoch: {exc!r}") from None
        self._epoch_version = int(new.version)
        return self._epoch_version

    def current_epoch(self) -> int:
        """The epoch in ZooKeeper now (may be newer than ours)."""
        _, stat = self.zk.get(f"{self.path}/epoch")
        return int(stat.version)

    def _fenced_commit(self, ops: list[tuple[str, Any]]) -> list[Any]:
        """Run ``ops`` in one multi-op guarded by our epoch; LogFenced if deposed."""
        if self._epoch_version is None:
            raise LogError("this master has not claimed the epoch; it cannot write")
        txn = self.zk.transaction()
        txn.check(f"{self.path}/epoch", self._epoch_version)
        for kind, args in ops:
            getattr(txn, kind)(*args)
        try:
            results = txn.commit()
        except KazooException as exc:
            raise LogError(f"log write failed: {exc!r}") from None
        return self._check_results(results)

    def _check_results(self, results: list[Any]) -> list[Any]:
        """The results of one fenced multi-op: LogFenced if the epoch check failed."""
        if results and isinstance(results[0], Exception):
            raise LogFenced(
                f"the epoch moved past {self._epoch_version}: a newer master leads"
            )
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise LogError(f"log write failed: {failed[0]!r}")
        return list(results[1:])

    # ----------------------------------------------------------------- writing
    def append(self, records: list[PlainRecord]) -> None:
        if not records:
            return
        payload: bytes = msgpack.packb(records, use_bin_type=True)
        pieces = [payload[i:i + self.chunk] for i in range(0, len(payload), self.chunk)]
        token = uuid.uuid4().hex
        lsn = self._lsn + 1
        for index, piece in enumerate(pieces):
            part = msgpack.packb([token, index, len(pieces), piece, lsn], use_bin_type=True)
            created = self._fenced_commit([("create", (f"{self.path}/log/e-", part, None,
                                                       False, True))])
            self._last_seq = max(self._last_seq, _seq(str(created[0])))
        self._lsn = lsn
        self._note_batch(lsn, len(records), len(payload))

    def mark_snapshot(self) -> int:
        """A snapshot of the state as of now covers every batch up to the current one
        (its number is the mark); batches appended later stay after it."""
        self._marks[self._lsn] = self._last_seq
        return self._lsn

    def encode_snapshot(self, snapshot: dict[str, Any]) -> EncodedSnapshot:
        """Pure: may run in a forked child."""
        packed: bytes = msgpack.packb(snapshot, use_bin_type=True)
        # Compressed (zlib's fastest level): ZooKeeper keeps every znode in its heap, and
        # a snapshot of 100,000 tasks is tens of megabytes of repetitive msgpack.
        return EncodedSnapshot(zlib.compress(packed, 1), len(packed))

    def install_snapshot(self, encoded: EncodedSnapshot, mark: int) -> None:
        """Publish ``encoded`` as covering the batches up to ``mark``, then compact them.

        A mark older than the snapshot already published is ignored: that snapshot
        covers more.
        """
        if mark not in self._marks or mark < self._covered_lsn:
            self._marks = {m: s for m, s in self._marks.items() if m > self._covered_lsn}
            return
        last_seq = self._marks[mark]
        data = encoded.data
        snap_id = uuid.uuid4().hex
        base = f"{self.path}/snapshots/{snap_id}"
        pieces = [data[i:i + self.chunk] for i in range(0, len(data), self.chunk)] or [b""]
        self._fenced_commit([("create", (base, b""))])
        # The chunks go out together (each its own fenced multi-op, pipelined): order
        # does not matter, since only the meta below makes the snapshot visible.
        requests = []
        for index, piece in enumerate(pieces):
            txn = self.zk.transaction()
            txn.check(f"{self.path}/epoch", self._epoch_version)
            txn.create(f"{base}/c-{index:06d}", piece)
            requests.append(txn.commit_async())
        for request in requests:
            try:
                results = request.get()
            except KazooException as exc:
                raise LogError(f"snapshot write failed: {exc!r}") from None
            self._check_results(results)
        meta = msgpack.packb({"id": snap_id, "chunks": len(pieces), "last_seq": last_seq,
                              "last_lsn": mark, "codec": "zlib"}, use_bin_type=True)
        old = self._read_meta()
        self._fenced_commit([("set_data", (f"{self.path}/snapshot", meta))]
                            if self.zk.exists(f"{self.path}/snapshot")
                            else [("create", (f"{self.path}/snapshot", meta))])
        self.snapshot_bytes = encoded.size
        self._covered_lsn = mark
        self._marks = {m: s for m, s in self._marks.items() if m > mark}
        self._forget_batches(upto=mark)
        self._compact(last_seq, old.get("id") if old else None)

    def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Snapshot and compact everything appended so far, at once."""
        self.install_snapshot(self.encode_snapshot(snapshot), self.mark_snapshot())

    def _compact(self, upto: int, old_snapshot: str | None) -> None:
        """Delete what the published snapshot covers (best effort: safe to repeat).

        Deletions are pipelined: one round trip for all of them, not one each.
        """
        try:
            names = sorted((n for n in self.zk.get_children(f"{self.path}/log")
                            if _seq(n) <= upto), key=_seq)
            # The newest entries stay until the next compaction, so a standby a few
            # batches behind reads on instead of reloading the whole snapshot.
            names = names[:-self.retain] if self.retain else names
            pending = [self.zk.delete_async(f"{self.path}/log/{name}") for name in names]
            for result in pending:
                try:
                    result.get()
                except NoNodeError:
                    pass
            if old_snapshot:
                self.zk.delete(f"{self.path}/snapshots/{old_snapshot}", recursive=True)
        except NoNodeError:
            pass
        except KazooException as exc:
            raise LogError(f"compaction failed: {exc!r}") from None

    # ----------------------------------------------------------------- reading
    def _read_meta(self) -> dict[str, Any]:
        try:
            data, _ = self.zk.get(f"{self.path}/snapshot")
        except NoNodeError:
            return {}
        meta: dict[str, Any] = msgpack.unpackb(data, raw=False)
        return meta

    def _load_snapshot(self) -> dict[str, Any] | None:
        """Read the published snapshot and move our read position to its end."""
        meta = self._read_meta()
        self._pending = {}
        self._forget_batches()
        self._marks = {}
        self._covered_lsn = -1
        if not meta:
            self._last_seq, self._lsn = -1, -1
            return None
        base = f"{self.path}/snapshots/{meta['id']}"
        requests = [self.zk.get_async(f"{base}/c-{i:06d}") for i in range(meta["chunks"])]
        data = b"".join(request.get()[0] for request in requests)
        if meta.get("codec") == "zlib":
            try:
                data = zlib.decompress(data)
            except zlib.error as exc:
                raise LogError(f"snapshot {meta['id']} is corrupt: {exc}") from None
        self.snapshot_bytes = len(data)
        snapshot: dict[str, Any] = msgpack.unpackb(data, raw=False)
        self._last_seq = int(meta["last_seq"])
        self._lsn = int(meta.get("last_lsn", -1))
        self._covered_lsn = self._lsn
        return snapshot

    def recover(self) -> Recovered:
        return self._read(reload=True)

    def tail(self) -> Recovered:
        """What was appended since the last read, to keep a standby's copy hot.

        Normally ``snapshot`` is None and ``records`` follow what the caller has. A
        reader that fell behind compaction gets the newest snapshot instead and must
        rebuild its state from it, then apply ``records``: skipping the compacted
        entries would leave its copy silently wrong.
        """
        return self._read(reload=False)

    def _read(self, reload: bool) -> Recovered:
        snapshot: dict[str, Any] | None = None
        reason = ""
        for _ in range(READ_ATTEMPTS):
            try:
                if reload:
                    snapshot = self._load_snapshot()
                return Recovered(snapshot, self._read_after(self._last_seq))
            except _Gap as gap:
                reason = str(gap)
            except NoNodeError as exc:  # a chunk removed by a newer snapshot: read that
                reason = f"snapshot replaced while read: {exc!r}"
            except KazooException as exc:
                raise LogError(f"cannot read the log from ZooKeeper: {exc!r}") from None
            reload = True
        raise LogError(f"the log cannot be read consistently: {reason}")

    def _read_after(self, after: int) -> list[PlainRecord]:
        """Complete batches after position ``after``, in order, with no gap.

        Batch numbers (``lsn``) run without holes; a batch missing (compacted under
        us, or never seen) raises :class:`_Gap` so the caller reloads the snapshot.
        A batch whose parts never all arrived (its writer died or was fenced between
        parts) is never acknowledged: the next writer reuses its number.
        """
        # The snapshot's meta is read before the listing (one session's requests run in
        # order): any batch it covers is either still listed or compacted, a gap.
        meta_request = self.zk.get_async(f"{self.path}/snapshot")
        names = sorted((n for n in self.zk.get_children(f"{self.path}/log") if _seq(n) > after),
                       key=_seq)
        try:
            covered = int(msgpack.unpackb(meta_request.get()[0], raw=False).get("last_lsn", -1))
        except NoNodeError:
            covered = -1
        requests = [(name, self.zk.get_async(f"{self.path}/log/{name}")) for name in names]
        records: list[PlainRecord] = []
        for name, request in requests:
            try:
                data, _ = request.get()
            except NoNodeError:
                raise _Gap(f"entry {name} was compacted before it was read") from None
            self._last_seq = max(self._last_seq, _seq(name))
            token, index, count, piece, *rest = msgpack.unpackb(data, raw=False)
            lsn = int(rest[0]) if rest else None
            if lsn is not None and lsn > self._lsn + 1:
                raise _Gap(f"batch {self._lsn + 1} is missing before batch {lsn} ({name})")
            _, parts = self._pending.setdefault(token, (lsn, []))
            parts.append((index, count, piece))
            if len(parts) < count:
                continue
            del self._pending[token]
            if lsn is not None:
                if lsn <= self._lsn:
                    continue  # a number reused after an abandoned batch: already have it
                self._lsn = lsn
                # Parts of abandoned batches up to this number will never complete.
                self._pending = {t: p for t, p in self._pending.items()
                                 if p[0] is None or p[0] > lsn}
            payload = b"".join(p for _, _, p in sorted(parts))
            batch = msgpack.unpackb(payload, raw=False)
            records.extend(batch)
            self._note_batch(self._lsn if lsn is not None else -1, len(batch), len(payload))
        # A snapshot taken since the last read covers some of what we counted.
        self._forget_batches(upto=covered)
        self._covered_lsn = max(self._covered_lsn, covered)
        if self._lsn < covered:
            raise _Gap(f"batches {self._lsn + 1}..{covered} were compacted before they were read")
        return records

    def _note_batch(self, lsn: int, count: int, size: int) -> None:
        self._since.append((lsn, count, size))
        self._count += count
        self._bytes += size

    def _forget_batches(self, upto: int | None = None) -> None:
        """Stop counting the batches a snapshot covers (all of them: ``upto`` None)."""
        if upto is None:
            self._since.clear()
            self._count = 0
            self._bytes = 0
            return
        while self._since and self._since[0][0] <= upto:
            _, count, size = self._since.popleft()
            self._count -= count
            self._bytes -= size

    @property
    def records_since_snapshot(self) -> int:
        return self._count

    @property
    def bytes_since_snapshot(self) -> int:
        return self._bytes

    def close(self) -> None:
        """The client belongs to the caller; nothing to release here."""
