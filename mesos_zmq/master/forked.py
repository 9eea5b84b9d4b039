"""Work done off the event loop by a child forked from the master.

Some answers cost the master a second or more at 100,000 tasks (the whole state for an
operator, a snapshot of the state for the log), and done in the loop they stall every
agent and framework meanwhile. A forked child holds a copy-on-write image of the master
as it was at that instant: an immutable picture that costs nothing to take. It runs one
pure function over its copy, writes the bytes to a pipe and exits; the parent goes on
serving, and takes the bytes once the child is done.

The bytes go through an anonymous in-memory file (``memfd``; an unlinked temporary
file where there is none), not the pipe: the pipe only tells that the child is done
(its end closes as the child exits, after a word of 8 bytes, the answer's length).
Through the pipe, 1 MiB at most a loop turn came out of a pipe of 1 MiB, and a whole
state of 20 MB waited 20 turns of a busy master (1.4-3.8 s); from the file it is read
at once, in one turn.

The child touches nothing shared with the parent's other threads (no ZeroMQ, no
logging, no ZooKeeper): it closes every inherited descriptor but its pipe (a master
restarted while a child still works must find its port and its log's lock free), runs
pure Python, and leaves with ``os._exit``. A child that fails, or outlives its time, is
reported as failed; nothing in the master waits for it.
"""

from __future__ import annotations

import gc
import os
import resource
import signal
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

#: the word the child writes to its pipe when its answer is whole: the answer's length
_DONE = struct.Struct("!Q")


@dataclass(slots=True)
class Outcome:
    """What a finished child left: its bytes, or why there are none."""

    data: bytes | None
    error: str = ""


@dataclass(slots=True)
class _Child:
    pid: int
    #: the pipe's read end (the child's word, then its end), and the answer's file
    fd: int
    out: int
    started: float
    word: bytes = b""


class ForkedJob:
    """At most one forked child at a time, running ``work`` and piping back its bytes."""

    def __init__(self, timeout: float, name: str = "forked") -> None:
        self.timeout = timeout
        #: how errors name the child ("the reader process failed ...")
        self.name = name
        self._child: _Child | None = None
        #: children forked, and children that failed or timed out (for counters)
        self.forks = 0
        self.failures = 0

    @property
    def busy(self) -> bool:
        return self._child is not None

    def fileno(self) -> int | None:
        """The running child's pipe, for the loop's poller (None: no child)."""
        return None if self._child is None else self._child.fd

    def start(self, work: Callable[[], bytes], now: float) -> None:
        """Fork a child that runs ``work`` over its image of this instant."""
        if self._child is not None:
            raise RuntimeError("a forked job is already running")
        out = _answer_file()
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
        except BaseException:
            for fd in (out, read_fd, write_fd):
                os.close(fd)
            raise
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            keep = sorted((out, write_fd))
            os.closerange(3, keep[0])
            os.closerange(keep[0] + 1, keep[1])
            os.closerange(keep[1] + 1, _max_fd())
            _run_child(work, out, write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.forks += 1
        self._child = _Child(pid, read_fd, out, now)

    def collect(self, now: float) -> Outcome | None:
        """The child's outcome once its pipe is closed (or it ran out of time); None
        while it works."""
        child = self._child
        if child is None:
            return None
        while True:
            try:
                chunk = os.read(child.fd, _DONE.size)
            except BlockingIOError:
                if now - child.started > self.timeout:
                    self._child = None
                    self.failures += 1
                    _kill(child)
                    return Outcome(None, f"the {self.name} process took over {self.timeout:g} s")
                return None
            if not chunk:
                break  # EOF: the child is done
            child.word += chunk
        self._child = None
        os.close(child.fd)
        _, status = os.waitpid(child.pid, 0)
        try:
            if status != 0 or len(child.word) != _DONE.size:
                self.failures += 1
                return Outcome(None, f"the {self.name} process failed (wait status {status})")
            data = _read_all(child.out, _DONE.unpack(child.word)[0])
        finally:
            os.close(child.out)
        if data is None:
            self.failures += 1
            return Outcome(None, f"the {self.name} process's answer was cut short")
        return Outcome(data)

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            _kill(child)


def _answer_file() -> int:
    """A file in memory for a child's answer (Linux's memfd; elsewhere an unlinked
    temporary file), not inherited by any other process the master starts."""
    try:
        return os.memfd_create("mesos-zmq-forked", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        fd, path = tempfile.mkstemp(prefix="mesos-zmq-forked-")
        os.unlink(path)
        return fd


def _read_all(fd: int, size: int) -> bytes | None:
    """The ``size`` bytes the child wrote to ``fd`` (read straight into the bytes
    returned: one copy), or None if there are fewer."""
    data = os.pread(fd, size, 0)
    while len(data) < size:  # a read of a regular file is cut short only at its end
        more = os.pread(fd, size - len(data), len(data))
        if not more:
            return None
        data += more
    return data


def _run_child(work: Callable[[], bytes], out: int, fd: int) -> None:  # pragma: no cover
    code = 1
    try:
        # Collecting would touch (and so copy) every object of the parent's image.
        gc.disable()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        answer = work()
        view = memoryview(answer)
        offset = 0
        while offset < len(view):
            offset += os.pwrite(out, view[offset:], offset)
        os.write(fd, _DONE.pack(len(answer)))
        code = 0
    except BaseException:  # the parent reports for us
        code = 1
    finally:
        os._exit(code)


def _max_fd() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if 0 < soft < 1 << 20 else 1 << 20


def _kill(child: _Child) -> None:
    try:
        os.kill(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for fd in (child.fd, child.out):
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        os.waitpid(child.pid, 0)
    except ChildProcessError:
        pass
