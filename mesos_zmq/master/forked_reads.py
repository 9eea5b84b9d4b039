"""Operator reads answered off the event loop, by a child forked from the master.

Building and encoding the whole cluster state takes about a second at 100,000 tasks;
done in the loop it stalls every agent and framework meanwhile (a framework's rate fell
to a third during back-to-back reads). The core marks such reads as deferred
(``Ready.reads``); the shell hands them to :class:`ForkedReads`, which forks: the child
holds a copy-on-write image of the master as it was at that instant (an immutable
snapshot that costs nothing to take), answers every read of the batch from it, writes
the encoded frames to a pipe and exits. The parent goes on serving, reads the pipe as it
fills, and sends the frames. Reads that arrive while a child works wait for the next
child and are answered together (at most one child at a time).

The child touches nothing shared with the parent's other threads (no ZeroMQ, no logging,
no ZooKeeper): it runs pure Python over its copy, writes to its pipe, and leaves with
``os._exit``. A child that fails, or outlives ``timeout``, is answered for with an
``internal`` error to each of its readers; nothing in the master depends on it.
"""

from __future__ import annotations

import gc
import os
import resource
import signal
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

#: how long a child may take before its readers are told it failed
READ_TIMEOUT = 60.0
#: reads waiting for the next child, at most; more are refused at once
MAX_QUEUED_READS = 256
#: bytes taken from the pipe per call of ``collect`` (the loop comes back for more)
PIPE_CHUNK = 4 * 1024 * 1024

_HEADER = struct.Struct("!II")  # peer length, frame length

R = TypeVar("R")


@dataclass(slots=True)
class _Child(Generic[R]):
    pid: int
    fd: int
    reads: list[R]
    started: float
    data: bytearray = field(default_factory=bytearray)


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
        self.timeout = timeout
        self._queue: list[R] = []
        self._child: _Child[R] | None = None
        #: children forked, and children that failed or timed out (for counters)
        self.forks = 0
        self.failures = 0

    # ----------------------------------------------------------------- parent side
    def submit(self, reads: Sequence[R]) -> list[tuple[bytes, bytes]]:
        """Queue reads for the next child; returns error frames for any beyond
        MAX_QUEUED_READS (a flood of reads must not grow the master)."""
        room = max(0, MAX_QUEUED_READS - len(self._queue))
        self._queue.extend(reads[:room])
        return [self._failed(r, f"too many reads waiting (at most {MAX_QUEUED_READS}): "
                                "ask again") for r in reads[room:]]

    @property
    def busy(self) -> bool:
        return self._child is not None or bool(self._queue)

    def fileno(self) -> int | None:
        """The pipe of the running child, for the loop's poller (None: no child)."""
        return None if self._child is None else self._child.fd

    def start(self, now: float) -> None:
        """Fork a child for the queued reads unless one is already at work."""
        if self._child is not None or not self._queue:
            return
        reads, self._queue = self._queue, []
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            # Nothing of the parent's stays open here but the pipe: not its listening
            # socket nor its log's lock (a master restarted while a child still works
            # must find both free), nor ZeroMQ's descriptors.
            os.closerange(3, write_fd)
            os.closerange(write_fd + 1, _max_fd())
            self._run_child(reads, write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.forks += 1
        self._child = _Child(pid, read_fd, reads, now)

    def collect(self, now: float) -> list[tuple[bytes, bytes]]:
        """What the running child has finished: its frames once its pipe is closed
        (or error frames if it failed or ran out of time), else nothing yet."""
        child = self._child
        if child is None:
            return []
        while True:
            try:
                chunk = os.read(child.fd, PIPE_CHUNK)
            except BlockingIOError:
                if now - child.started > self.timeout:
                    return self._give_up(child, f"the read took over {self.timeout:g} s")
                return []
            if not chunk:
                break  # EOF: the child is done
            child.data += chunk
            if len(chunk) < PIPE_CHUNK:
                continue
            return []  # a large answer: the loop serves others and comes back
        os.close(child.fd)
        self._child = None
        _, status = os.waitpid(child.pid, 0)
        frames = _parse(bytes(child.data))
        if status != 0 or frames is None or len(frames) < len(child.reads):
            self.failures += 1
            why = f"the reader process failed (wait status {status})"
            return [self._failed(r, why) for r in child.reads]
        return frames

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            _kill(child)
        self._queue = []

    def _give_up(self, child: _Child[R], why: str) -> list[tuple[bytes, bytes]]:
        self._child = None
        self.failures += 1
        _kill(child)
        return [self._failed(r, why) for r in child.reads]

    # ----------------------------------------------------------------- child side
    def _run_child(self, reads: list[R], fd: int) -> None:  # pragma: no cover
        code = 1
        try:
            # Collecting would touch (and so copy) every object of the parent's image.
            gc.disable()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            frames = self._answer(reads)
            view = memoryview(b"".join(_HEADER.pack(len(p), len(f)) + p + f
                                       for p, f in frames))
            while view:
                written = os.write(fd, view)
                view = view[written:]
            code = 0
        except BaseException:  # the parent answers for us
            code = 1
        finally:
            os._exit(code)


def _max_fd() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if 0 < soft < 1 << 20 else 1 << 20


def _kill(child: _Child[R]) -> None:
    try:
        os.kill(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.close(child.fd)
    except OSError:
        pass
    try:
        os.waitpid(child.pid, 0)
    except ChildProcessError:
        pass


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
