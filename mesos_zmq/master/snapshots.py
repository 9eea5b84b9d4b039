"""Snapshots of the master's state, built and encoded off the event loop.

Building a snapshot of 100,000 tasks and encoding it takes the master about a second,
and writing it in the loop stalled every agent and framework meanwhile: a new leader
that took over a large log wrote one first thing, and 10,000 agents waited 2.7 s more
to re-register. Here the log marks what a snapshot taken now covers, a forked child
(:class:`~mesos_zmq.master.forked.ForkedJob`) builds and encodes the state as it was at
that instant, and the loop appends records meanwhile. When the child's bytes arrive the
loop installs them (for ZooKeeper a few pipelined writes), compacting only what the mark
covered: the records appended since stay in the log after the snapshot.

A child that fails is retried after a pause that doubles (up to
:data:`MAX_RETRY_PAUSE`): nothing is lost meanwhile, the log is only longer. For the
same reason a master that starts (or takes over) with agents to hear from waits
:data:`HOLD_AFTER_START` before its first snapshot: every agent and framework
re-registers then, and on a small machine a child building a snapshot takes a core
from that (a new leader over a long log would otherwise start one at once).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import structlog

from mesos_zmq.master.forked import ForkedJob
from mesos_zmq.master.log import EncodedSnapshot, ReplicatedLog, SnapshotPolicy

log = structlog.get_logger(component="master")

#: how long a child may take to build a snapshot before it is given up
SNAPSHOT_TIMEOUT = 300.0
#: the longest pause before retrying after a child failed
MAX_RETRY_PAUSE = 300.0
#: seconds a master that starts with known agents waits before its first snapshot
HOLD_AFTER_START = 15.0

_SIZE = struct.Struct("!Q")


class BackgroundSnapshots:
    """When due (by ``policy``), snapshot the state in a child; install what it built."""

    def __init__(self, replicated: ReplicatedLog, policy: SnapshotPolicy, now: float,
                 timeout: float = SNAPSHOT_TIMEOUT, hold_until: float = 0.0) -> None:
        self.log = replicated
        self.policy = policy
        self._job = ForkedJob(timeout, "snapshot")
        self._mark: int | None = None
        self._started = 0.0
        #: when the last snapshot was installed (the policy's age counts from here)
        self._last = now
        #: no snapshot starts before this moment (a pause after a failure, or after start)
        self._retry_at = hold_until
        self._failures_in_row = 0
        #: snapshots installed, and children that failed
        self.written = 0
        self.failed = 0

    @property
    def busy(self) -> bool:
        return self._job.busy

    def fileno(self) -> int | None:
        """The running child's pipe, for the loop's poller (None: no child)."""
        return self._job.fileno()

    def due(self, now: float) -> bool:
        if self._job.busy or now < self._retry_at:
            return False
        return self.policy.due(self.log.records_since_snapshot, self.log.bytes_since_snapshot,
                               now - self._last, self.log.snapshot_bytes)

    def start(self, state: Callable[[], dict[str, Any]], now: float) -> bool:
        """Fork a child for a snapshot of ``state()`` as of now, if one is due.

        Call it only after the records of the state's changes are appended: the mark
        covers what the log holds now, and the child shows exactly that state.
        """
        if not self.due(now):
            return False
        self._mark = self.log.mark_snapshot()
        self._started = now
        encode = self.log.encode_snapshot
        self._job.start(lambda: _pack(encode(state())), now)
        return True

    def collect(self, now: float) -> bool:
        """Install the snapshot the child built, once it is done; True if one was."""
        outcome = self._job.collect(now)
        if outcome is None:
            return False
        mark, self._mark = self._mark, None
        encoded = _unpack(outcome.data) if outcome.data is not None else None
        if encoded is None or mark is None:
            self.failed += 1
            self._failures_in_row += 1
            pause = min(MAX_RETRY_PAUSE, 2.0 ** self._failures_in_row)
            self._retry_at = now + pause
            log.warning("snapshot not written: the log grows until the next one",
                        error=outcome.error or "the snapshot process's output was cut short",
                        retry_in_s=pause)
            return False
        begun = time.monotonic()
        self.log.install_snapshot(encoded, mark)
        self._failures_in_row = 0
        self._last = time.monotonic()
        self.written += 1
        log.info("snapshot written", seconds=round(self._last - self._started, 3),
                 install_seconds=round(self._last - begun, 3), bytes=len(encoded.data))
        return True

    def close(self) -> None:
        self._job.close()
        self._mark = None


def _pack(encoded: EncodedSnapshot) -> bytes:
    return _SIZE.pack(encoded.size) + encoded.data


def _unpack(data: bytes) -> EncodedSnapshot | None:
    if len(data) < _SIZE.size:
        return None
    (size,) = _SIZE.unpack_from(data)
    return EncodedSnapshot(data[_SIZE.size:], size)
