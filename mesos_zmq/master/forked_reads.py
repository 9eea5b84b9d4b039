"""Operator reads answered off the event loop, by a child forked from the master.

Building and encoding the whole cluster state takes about a second at 100,000 tasks;
done in the loop it stalls every agent and framework meanwhile (a framework's rate fell
to a third during back-to-back reads). The core marks such reads as deferred
(``Ready.reads``); the shell hands them to :class:`ForkedReads`, which answers a batch
of them in a child (:class:`~mesos_zmq.master.forked.ForkedJob`) from its copy-on-write
image of that instant. Reads that arrive while a child works wait for the next child
and are answered together (at most one child at a time). A child that fails, or
outlives ``timeout``, is answered for with an ``internal`` error to each of its readers.

The loop answers first what it can itself, cheaper (:mod:`mesos_zmq.master.loop_reads`:
pages, and the state from a cache kept up to date); what comes here are the reads it
cannot: a reader the ACLs hide tasks from, or a cache too far behind (the first read).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from mesos_zmq.master.forked import ForkedJob

#: how long a child may take before its readers are told it failed
READ_TIMEOUT = 60.0
#: reads waiting for the next child, at most; more are refused at once
MAX_QUEUED_READS = 256

_HEADER = struct.Struct("!II")  # peer length, frame length

R = TypeVar("R")


class ForkedReads(Generic[R]):
    """Batches of reads answered by forked children, one child at a time.

    ``answer(reads)`` runs in the child and returns ``(peer, frame)`` pairs for them;
    ``failed(read, why)`` builds the error frame a reader gets when its child fails.
    """

    def __init__(self, answer: Callable[[Sequence[R]], list[tuple[bytes, bytes]]],
                 failed: Callable[[R, str], tuple[bytes, bytes]],
                 timeout: float = READ_TIMEOUT) -> None:
        self._answer = answer
        self._failed = failed
        self._job = ForkedJob(timeout, "reader")
        self._queue: list[R] = []
        self._reads: list[R] = []  # those the running child answers

    @property
    def timeout(self) -> float:
        return self._job.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._job.timeout = value

    @property
    def forks(self) -> int:
        return self._job.forks

    @property
    def failures(self) -> int:
        return self._job.failures

    def submit(self, reads: Sequence[R]) -> list[tuple[bytes, bytes]]:
        """Queue reads for the next child; returns error frames for any beyond
        MAX_QUEUED_READS (a flood of reads must not grow the master)."""
        room = max(0, MAX_QUEUED_READS - len(self._queue))
        self._queue.extend(reads[:room])
        return [self._failed(r, f"too many reads waiting (at most {MAX_QUEUED_READS}): "
                                "ask again") for r in reads[room:]]

    @property
    def busy(self) -> bool:
        return self._job.busy or bool(self._queue)

    def fileno(self) -> int | None:
        """The pipe of the running child, for the loop's poller (None: no child)."""
        return self._job.fileno()

    def start(self, now: float) -> None:
        """Fork a child for the queued reads unless one is already at work."""
        if self._job.busy or not self._queue:
            return
        reads, self._queue = self._queue, []
        self._reads = reads
        answer = self._answer
        self._job.start(lambda: b"".join(_HEADER.pack(len(p), len(f)) + p + f
                                         for p, f in answer(reads)), now)

    def collect(self, now: float) -> list[tuple[bytes, bytes]]:
        """What the running child has finished: its frames once its pipe is closed
        (or error frames if it failed or ran out of time), else nothing yet."""
        outcome = self._job.collect(now)
        if outcome is None:
            return []
        reads, self._reads = self._reads, []
        frames = _parse(outcome.data) if outcome.data is not None else None
        if frames is None or len(frames) < len(reads):
            why = outcome.error or "the reader process's answer was cut short"
            if outcome.data is not None:
                self._job.failures += 1
            return [self._failed(r, why) for r in reads]
        return frames

    def close(self) -> None:
        self._job.close()
        self._queue = []
        self._reads = []


def _parse(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """The child's frames, or None if its output is cut short."""
    frames = []
    offset = 0
    while offset < len(data):
        if offset + _HEADER.size > len(data):
            return None
        peer_len, frame_len = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        end = offset + peer_len + frame_len
        if end > len(data):
            return None
        frames.append((data[offset:offset + peer_len], data[offset + peer_len:end]))
        offset = end
    return frames
