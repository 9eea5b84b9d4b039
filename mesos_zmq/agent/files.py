"""Reading files inside a task's sandbox without ever leaving it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mesos_zmq.errors import MesosZmqError

MAX_READ = 1024 * 1024


class SandboxPathError(MesosZmqError):
    """A path that is absolute, climbs out of the sandbox or does not exist."""


def resolve_in_sandbox(sandbox: Path, relative: str) -> Path:
    """The real path of ``relative`` inside ``sandbox``; refuses anything outside it."""
    if not relative or relative.startswith("/") or "\x00" in relative:
        raise SandboxPathError(f"path {relative[:100]!r} must be relative to the sandbox")
    if any(part == ".." for part in Path(relative).parts):
        raise SandboxPathError(f"path {relative[:100]!r} may not contain '..'")
    try:
        root = sandbox.resolve()
        target = (root / relative).resolve()  # follows symlinks, so links out are caught
    except (RuntimeError, OSError) as exc:  # a symlink loop, a name too long...
        raise SandboxPathError(f"cannot resolve {relative[:100]!r}: {exc}") from None
    if target != root and root not in target.parents:
        raise SandboxPathError(f"path {relative[:100]!r} resolves outside the sandbox")
    return target


def read_chunk(sandbox: Path, relative: str, offset: int, length: int) -> tuple[bytes, int]:
    """Up to ``length`` bytes from ``offset``, and the file's current size.

    Only regular files are read. A task owns its sandbox and may put a FIFO, a socket
    or a device there: opening a FIFO for reading blocks until a writer comes, and the
    agent's loop (its heartbeats included) would block with it. So the file is opened
    non-blocking and without following a last-moment symlink, checked with ``fstat``
    on the open descriptor, and read at most ``MAX_READ`` bytes at a time.
    """
    if offset < 0 or length < 0:
        raise SandboxPathError("offset and length must not be negative")
    target = resolve_in_sandbox(sandbox, relative)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(target, flags)
    except FileNotFoundError:
        raise SandboxPathError(f"no file {relative[:100]!r} in the sandbox") from None
    except IsADirectoryError:
        raise SandboxPathError(f"{relative[:100]!r} is a directory") from None
    except OSError as exc:
        raise SandboxPathError(f"cannot read {relative[:100]!r}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SandboxPathError(f"{relative[:100]!r} is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise SandboxPathError(
                f"{relative[:100]!r} is not a regular file ({_kind(info.st_mode)}): "
                "only regular files can be read")
        size = info.st_size
        if offset >= size:
            return b"", size
        data = os.pread(fd, min(length, MAX_READ, size - offset), offset)
    except OSError as exc:
        raise SandboxPathError(f"cannot read {relative[:100]!r}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return data, size


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a file"
