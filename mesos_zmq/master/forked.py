"""Work done off the event loop by a child forked from the master.

Some answers cost the master a second or more at 100,000 tasks (the whole state for an
operator, a snapshot of the state for the log), and done in the loop they stall every
agent and framework meanwhile. A forked child holds a copy-on-write image of the master
as it was at that instant: an immutable picture that costs nothing to take. It runs one
pure function over its copy, writes the bytes to a pipe and exits; the parent goes on
serving, reads the pipe as it fills and uses the bytes once the pipe closes.

The child touches nothing shared with the parent's other threads (no ZeroMQ, no
logging, no ZooKeeper): it closes every inherited descriptor but its pipe (a master
restarted while a child still works must find its port and its log's lock free), runs
pure Python, and leaves with ``os._exit``. A child that fails, or outlives its time, is
reported as failed; nothing in the master waits for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

#: bytes taken from the pipe per call of ``collect`` (the loop comes back for more)
PIPE_CHUNK = 4 * 1024 * 1024
#: the pipe's capacity asked of Linux (its default, 64 KiB, is what the parent took per
#: loop turn: a 1.6 MB answer waited 0.4-0.8 s in the pipe of a busy master)
PIPE_SIZE = 1024 * 1024


@dataclass(slots=True)
class Outcome:
    """What a finished child left: its bytes, or why there are none."""

    data: bytes | None
    error: str = ""


@dataclass(slots=True)
class _Child:
    pid: int
    fd: int
    started: float
    data: bytearray = field(default_factory=bytearray)


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
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError, AttributeError):  # Linux only; at most pipe-max-size
            fcntl.fcntl(read_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            os.closerange(3, write_fd)
            os.closerange(write_fd + 1, _max_fd())
            _run_child(work, write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.forks += 1
        self._child = _Child(pid, read_fd, now)

    def collect(self, now: float) -> Outcome | None:
        """The child's outcome once its pipe is closed (or it ran out of time); None
        while it works."""
        child = self._child
        if child is None:
            return None
        while True:
            try:
                chunk = os.read(child.fd, PIPE_CHUNK)
            except BlockingIOError:
                if now - child.started > self.timeout:
                    self._child = None
                    self.failures += 1
                    _kill(child)
                    return Outcome(None, f"the {self.name} process took over {self.timeout:g} s")
                return None
            if not chunk:
                break  # EOF: the child is done
            child.data += chunk
            if len(chunk) < PIPE_CHUNK:
                continue
            return None  # a large answer: the loop serves others and comes back
        os.close(child.fd)
        self._child = None
        _, status = os.waitpid(child.pid, 0)
        if status != 0:
            self.failures += 1
            return Outcome(None, f"the {self.name} process failed (wait status {status})")
        return Outcome(bytes(child.data))

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            _kill(child)


def _run_child(work: Callable[[], bytes], fd: int) -> None:  # pragma: no cover
    code = 1
    try:
        # Collecting would touch (and so copy) every object of the parent's image.
        gc.disable()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        view = memoryview(work())
        while view:
            written = os.write(fd, view)
            view = view[written:]
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
    try:
        os.close(child.fd)
    except OSError:
        pass
    try:
        os.waitpid(child.pid, 0)
    except ChildProcessError:
        pass
