"""Disk usage of a sandbox, measured as Mesos's ``disk/du`` isolator does.

The supervisor of a task with a ``disk`` resource walks its sandbox every
``--container-disk-watch-interval`` seconds (:class:`DiskWatch`), a bounded number of
entries at a time (:class:`SandboxUsage`), and kills the task once a complete pass finds
it over its limit (:func:`mesos_zmq.agent.gc.disk_limitation` words the reason).
"""

from __future__ import annotations

import os
import stat
import time
from typing import Any

from mesos_zmq.agent.gc import disk_limitation

#: a directory of the sandbox, opened without following a link (the task owns the tree)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


#: directories of the current path a walk keeps open (beyond, it opens them one
#: component at a time, for each deeper directory)
MAX_OPEN_DIRS = 64
#: entries a walk looks at before the supervisor looks at its task again
DISK_STEP = 4096


class SandboxUsage:
    """One du-like pass over a sandbox: the blocks allocated to everything in it
    (``st_blocks * 512``; a file with several links counted once), walked a bounded
    number of entries at a time (:meth:`step`), so that a sandbox of millions of files
    delays nothing else its supervisor does.

    The task may change the tree under the walk: every directory is opened relative to
    its parent's descriptor with ``O_NOFOLLOW``, and entries are examined with
    ``lstat`` semantics, so a directory swapped for a link is skipped, never entered.
    What vanishes meanwhile is skipped too (as ``du`` does)."""

    def __init__(self, sandbox: str) -> None:
        self.sandbox = sandbox
        self.total = 0
        self._root: int | None = None
        self._pending: list[tuple[str, ...]] = [()]
        self._open: list[tuple[str, int]] = []  # (name, fd) of the current path's prefix
        self._listing: Any = None  # the os.scandir iterator being read
        #: its directory's descriptor when not one of ``_open`` (DirEntry.stat uses it)
        self._transient: int | None = None
        self._path: tuple[str, ...] = ()
        self._linked: set[tuple[int, int]] = set()
        self.done = False

    def step(self, budget: int = DISK_STEP) -> bool:
        """Look at up to ``budget`` entries; True once the pass is complete."""
        if self.done:
            return True
        if self._root is None:
            try:
                self._root = os.open(self.sandbox, _DIR_FLAGS)
                self.total += os.fstat(self._root).st_blocks * 512
            except OSError:  # no sandbox (yet, or any more): nothing in it
                self.close()
                return True
        while budget > 0:
            if self._listing is None and not self._next_directory():
                self.close()
                return True
            try:
                entry = next(self._listing)
            except (StopIteration, OSError):  # OSError: it went away while being read
                self._end_listing()
                continue
            budget -= 1
            self._count(entry)
        return False

    def _count(self, entry: os.DirEntry[str]) -> None:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            return
        if stat.S_ISDIR(info.st_mode):
            self._pending.append((*self._path, entry.name))
        elif info.st_nlink > 1:
            inode = (info.st_dev, info.st_ino)
            if inode in self._linked:
                return
            self._linked.add(inode)
        self.total += info.st_blocks * 512

    def _next_directory(self) -> bool:
        """Start reading the next pending directory; False when none is left."""
        while self._pending:
            path = self._pending.pop()
            try:
                fd, transient = self._open_dir(path)
            except OSError:  # gone, or no longer a directory (a link now): skipped
                continue
            try:
                self._listing = os.scandir(fd)
            except OSError:
                if transient is not None:
                    os.close(transient)
                continue
            self._transient = transient
            self._path = path
            return True
        return False

    def _end_listing(self) -> None:
        if self._listing is not None:
            self._listing.close()
            self._listing = None
        if self._transient is not None:
            os.close(self._transient)
            self._transient = None

    def _open_dir(self, path: tuple[str, ...]) -> tuple[int, int | None]:
        """A descriptor of ``path`` (relative to the sandbox), reached one component at
        a time without following links. The first :data:`MAX_OPEN_DIRS` directories of
        the path stay open for the next ones (a depth-first walk shares long prefixes);
        a deeper one is returned second too, to be closed once its listing is read."""
        keep = 0
        while (keep < len(self._open) and keep < len(path)
               and self._open[keep][0] == path[keep]):
            keep += 1
        for _, fd in self._open[keep:]:
            os.close(fd)
        del self._open[keep:]
        assert self._root is not None
        fd = self._open[-1][1] if self._open else self._root
        transient: int | None = None
        try:
            for name in path[keep:]:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                if transient is not None:
                    os.close(transient)
                    transient = None
                if len(self._open) < MAX_OPEN_DIRS:
                    self._open.append((name, child))
                else:
                    transient = child
                fd = child
        except BaseException:
            if transient is not None:
                os.close(transient)
            raise
        return fd, transient

    def close(self) -> None:
        """Release every descriptor; the pass is over (``total`` stays readable)."""
        self._end_listing()
        for _, fd in self._open:
            os.close(fd)
        self._open.clear()
        if self._root is not None:
            os.close(self._root)
            self._root = None
        self._pending.clear()
        self.done = True


def measure_sandbox(sandbox: str) -> int:
    """Bytes allocated in ``sandbox``, in one go (for tests and tools)."""
    walk = SandboxUsage(sandbox)
    while not walk.step():
        pass
    return walk.total


class DiskWatch:
    """When to measure the sandbox, and the verdict of each complete pass."""

    def __init__(self, sandbox: str, limit: int, interval: float, now: float) -> None:
        self.sandbox = sandbox
        self.limit = limit
        self.interval = interval
        self.next_at = now + interval
        self.walk: SandboxUsage | None = None

    def due_at(self) -> float:
        """When to go on: at once while a pass is under way."""
        return time.monotonic() if self.walk is not None else self.next_at

    def work(self, now: float) -> str | None:
        """One bounded step of the pass; at its end, why the task must go (or None)."""
        if self.walk is None:
            self.walk = SandboxUsage(self.sandbox)
        if not self.walk.step():
            return None
        used, self.walk = self.walk.total, None
        self.next_at = now + self.interval
        return disk_limitation(self.limit, used)

    def close(self) -> None:
        if self.walk is not None:
            self.walk.close()
            self.walk = None
