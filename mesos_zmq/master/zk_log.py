"""The replicated log on ZooKeeper, fenced by the leader's epoch.

Layout under the cluster path ``P``::

    P/epoch                 its znode version is the epoch; a new leader bumps it
    P/log/e-0000000042      one batch of records (or one part of a large batch)
    P/snapshot              {"id", "chunks", "last_seq"} of the current snapshot
    P/snapshots/<id>/c-0000 the snapshot's msgpack bytes in chunks

Group commit: each :meth:`ZooKeeperLog.append` is one ZooKeeper multi-op: a version
check of ``P/epoch`` plus the creation of one sequential znode holding the whole
batch. A leader that has been deposed (someone bumped the epoch) fails the check and
gets :class:`LogFenced`; nothing it tried to write lands. Every znode stays under
``CHUNK`` bytes (ZooKeeper refuses 1 MB): a larger batch is written as parts that
carry a batch token and their index, and recovery ignores a batch whose parts are not
all there (its writer died or was fenced between parts, so it was never
acknowledged).

Snapshots are written in chunks, then published by updating ``P/snapshot`` (also
fenced), and only then are the log entries they cover deleted (compaction).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgpack
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NoNodeError

from mesos_zmq.errors import LogError
from mesos_zmq.master.log import Record, Recovered

#: the largest znode this log writes (ZooKeeper's limit is about 1 MB)
CHUNK = 512 * 1024


class LogFenced(LogError):
    """A newer leader owns the log; this process must stop serving."""


def _seq(name: str) -> int:
    return int(name.rsplit("-", 1)[-1])


class ZooKeeperLog:
    def __init__(self, client: KazooClient, path: str, chunk: int = CHUNK) -> None:
        self.zk = client
        self.path = "/" + path.strip("/")
        self.chunk = chunk
        self._epoch_version: int | None = None
        self._last_seq = -1
        self._count = 0
        #: parts of a batch seen by ``tail`` whose other parts have not arrived yet
        self._pending: dict[str, list[tuple[int, int, bytes]]] = {}
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
        if results and isinstance(results[0], Exception):
            raise LogFenced(
                f"the epoch moved past {self._epoch_version}: a newer master leads"
            )
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise LogError(f"log write failed: {failed[0]!r}")
        return list(results[1:])

    # ----------------------------------------------------------------- writing
    def append(self, records: list[Record]) -> None:
        if not records:
            return
        payload: bytes = msgpack.packb(records, use_bin_type=True)
        pieces = [payload[i:i + self.chunk] for i in range(0, len(payload), self.chunk)]
        token = uuid.uuid4().hex
        for index, piece in enumerate(pieces):
            part = msgpack.packb([token, index, len(pieces), piece], use_bin_type=True)
            created = self._fenced_commit([("create", (f"{self.path}/log/e-", part, None,
                                                       False, True))])
            self._last_seq = max(self._last_seq, _seq(str(created[0])))
        self._count += len(records)

    def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        data: bytes = msgpack.packb(snapshot, use_bin_type=True)
        snap_id = uuid.uuid4().hex
        base = f"{self.path}/snapshots/{snap_id}"
        pieces = [data[i:i + self.chunk] for i in range(0, len(data), self.chunk)] or [b""]
        self._fenced_commit([("create", (base, b""))])
        for index, piece in enumerate(pieces):
            self._fenced_commit([("create", (f"{base}/c-{index:06d}", piece))])
        meta = msgpack.packb({"id": snap_id, "chunks": len(pieces), "last_seq": self._last_seq},
                             use_bin_type=True)
        old = self._read_meta()
        self._fenced_commit([("set_data", (f"{self.path}/snapshot", meta))]
                            if self.zk.exists(f"{self.path}/snapshot")
                            else [("create", (f"{self.path}/snapshot", meta))])
        self._count = 0
        self._compact(self._last_seq, old.get("id") if old else None)

    def _compact(self, upto: int, old_snapshot: str | None) -> None:
        """Delete what the published snapshot covers (best effort: safe to repeat)."""
        try:
            for name in self.zk.get_children(f"{self.path}/log"):
                if _seq(name) <= upto:
                    self.zk.delete(f"{self.path}/log/{name}")
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

    def recover(self) -> Recovered:
        try:
            meta = self._read_meta()
            snapshot = None
            after = -1
            if meta:
                base = f"{self.path}/snapshots/{meta['id']}"
                chunks = [self.zk.get(f"{base}/c-{i:06d}")[0] for i in range(meta["chunks"])]
                snapshot = msgpack.unpackb(b"".join(chunks), raw=False)
                after = int(meta["last_seq"])
            self._last_seq = after
            self._pending = {}
            records = self._read_after(after)
        except KazooException as exc:
            raise LogError(f"cannot read the log from ZooKeeper: {exc!r}") from None
        self._count = len(records)
        return Recovered(snapshot, records)

    def tail(self) -> list[Record]:
        """Records appended since the last read (a standby keeps its copy hot this way)."""
        try:
            records = self._read_after(self._last_seq)
        except KazooException as exc:
            raise LogError(f"cannot tail the log: {exc!r}") from None
        self._count += len(records)
        return records

    def _read_after(self, after: int) -> list[Record]:
        names = sorted((n for n in self.zk.get_children(f"{self.path}/log") if _seq(n) > after),
                       key=_seq)
        records: list[Record] = []
        for name in names:
            try:
                data, _ = self.zk.get(f"{self.path}/log/{name}")
            except NoNodeError:
                continue  # compacted meanwhile
            self._last_seq = max(self._last_seq, _seq(name))
            token, index, count, piece = msgpack.unpackb(data, raw=False)
            parts = self._pending.setdefault(token, [])
            parts.append((index, count, piece))
            if len(parts) == count:
                del self._pending[token]
                payload = b"".join(p for _, _, p in sorted(parts))
                records.extend(msgpack.unpackb(payload, raw=False))
        return records

    @property
    def records_since_snapshot(self) -> int:
        return self._count

    def close(self) -> None:
        """The client belongs to the caller; nothing to release here."""
