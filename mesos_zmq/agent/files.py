"""Reading files inside a task's sandbox without ever leaving it.

A task owns its sandbox and can change it while the agent reads: it may leave a
symlink to ``/etc/shadow`` or to the agent's checkpoints, hard-link a file it can
reach outside, make a FIFO, or swap a directory for a symlink between two of the
agent's system calls. So nothing is checked first and opened after (the check would
be stale by the open): the path is opened relative to a descriptor of the sandbox by
a call that itself refuses every symlink, at every component, and what was opened is
then checked with ``fstat`` on that very descriptor.

The open is openat2(2) with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
RESOLVE_NO_MAGICLINKS`` where the kernel has it (Linux 5.6 and later); elsewhere, or
where a seccomp filter forbids it, the path is walked one component at a time, each
opened ``O_NOFOLLOW`` relative to the directory before it, which gives the same
guarantee with a few more system calls. Symlinks inside the sandbox are refused as
well as those leading out: telling them apart would mean following them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

from mesos_zmq.errors import MesosZmqError

MAX_READ = 1024 * 1024

#: openat2's number: new system calls got one number on every architecture from
#: Linux 5.1 on (alpha aside, which this project does not run on)
_SYS_OPENAT2 = 437
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS

#: the file itself: never block (a FIFO), never follow, never become our terminal
_FILE_FLAGS = (os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
               | getattr(os, "O_NOCTTY", 0))
#: each directory on the way to it, when walking
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SandboxPathError(MesosZmqError):
    """A path that is absolute, climbs out of the sandbox, goes through a symlink, does
    not exist, or names something that is not a regular file with a single link."""


class _OpenHow(ctypes.Structure):
    """``struct open_how`` of ``<linux/openat2.h>``."""

    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def _find_syscall() -> Callable[..., int] | None:
    """libc's ``syscall``, through which openat2 is called (Python has no binding)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_long
    return function


_syscall = _find_syscall()
#: set when the kernel answered ENOSYS: no need to ask it again
_openat2_missing = False


def _openat2(dirfd: int, path: bytes) -> int | None:
    """A descriptor for ``path`` beneath ``dirfd``, no symlink followed, or None when
    openat2 cannot be used: not Linux, a kernel older than 5.6 (ENOSYS), or a seccomp
    filter that forbids it (EPERM; a real EPERM is met again by the walk and reported).

    Raises ``OSError`` for every other failure.
    """
    global _openat2_missing
    if _syscall is None or _openat2_missing:
        return None
    how = _OpenHow(flags=_FILE_FLAGS, mode=0, resolve=_RESOLVE)
    fd = _syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_long(dirfd), ctypes.c_char_p(path),
                  ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd >= 0:
        return fd
    code = ctypes.get_errno()
    if code == errno.ENOSYS:
        _openat2_missing = True
        return None
    if code == errno.EPERM:
        return None
    raise OSError(code, os.strerror(code))


def _components(relative: str) -> list[str]:
    """The names on the way to ``relative``; refuses what could not stay beneath."""
    if not relative or relative.startswith("/") or "\x00" in relative:
        raise SandboxPathError(f"path {relative[:100]!r} must be relative to the sandbox")
    parts = relative.split("/")
    if ".." in parts:
        raise SandboxPathError(f"path {relative[:100]!r} may not contain '..'")
    try:
        os.fsencode(relative)
    except ValueError:  # a lone surrogate: no file can have this name
        raise SandboxPathError(f"path {relative[:100]!r} is not a valid file name") from None
    return [part for part in parts if part not in ("", ".")]


def resolve_in_sandbox(sandbox: Path, relative: str) -> Path:
    """The real path of ``relative`` inside ``sandbox``; refuses anything outside it.

    Only a name to show: what it names may change before anyone opens it, so reads go
    through :func:`read_chunk`, which never opens by this path.
    """
    _components(relative)
    try:
        root = sandbox.resolve()
        target = (root / relative).resolve()  # follows symlinks, so links out are caught
    except (RuntimeError, OSError) as exc:  # a symlink loop, a name too long...
        raise SandboxPathError(f"cannot resolve {relative[:100]!r}: {exc}") from None
    if target != root and root not in target.parents:
        raise SandboxPathError(f"path {relative[:100]!r} resolves outside the sandbox")
    return target


def _refusal(relative: str, exc: OSError, symlink: bool = False) -> SandboxPathError:
    """The error a reader is shown for a failed open, phrased by its cause."""
    name = relative[:100]
    if symlink or exc.errno == errno.ELOOP:
        return SandboxPathError(
            f"cannot resolve {name!r}: it is or goes through a symlink, and symlinks in a "
            "sandbox are not followed since they can lead outside the sandbox "
            "(read the file by its real path in the sandbox)")
    if exc.errno == errno.ENOENT:
        return SandboxPathError(f"no file {name!r} in the sandbox")
    if exc.errno == errno.EISDIR:
        return SandboxPathError(f"{name!r} is a directory")
    if exc.errno == errno.ENOTDIR:
        return SandboxPathError(f"cannot resolve {name!r}: a part of it is not a directory")
    if exc.errno == errno.EXDEV:
        return SandboxPathError(f"path {name!r} resolves outside the sandbox")
    return SandboxPathError(f"cannot read {name!r}: {exc.strerror or exc}")


def _is_symlink(dirfd: int, name: str) -> bool:
    """Whether ``name`` in ``dirfd`` is a symlink now: only to word an error (a walk's
    ``O_NOFOLLOW | O_DIRECTORY`` open of a symlink fails ENOTDIR on Linux, EMLINK on
    FreeBSD), never to decide what is opened."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode)
    except (OSError, ValueError):
        return False


def _walk(dirfd: int, parts: list[str], relative: str) -> int:
    """The portable open: one component at a time, each opened ``O_NOFOLLOW`` relative
    to the directory before it, so a symlink anywhere, even one swapped in mid-walk, is
    refused by the very open that meets it."""
    current = dirfd
    try:
        for name in parts[:-1]:
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=current)
            except OSError as exc:
                raise _refusal(relative, exc, _is_symlink(current, name)) from None
            if current != dirfd:
                os.close(current)
            current = fd
        try:
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=current)
        except OSError as exc:
            raise _refusal(relative, exc, _is_symlink(current, parts[-1])) from None
    finally:
        if current != dirfd:
            os.close(current)


def _open_beneath(sandbox: Path, relative: str) -> int:
    """A read-only, non-blocking descriptor for ``relative``, opened without following
    a symlink at any component, so it is beneath ``sandbox`` whatever the task does
    meanwhile. The sandbox's own path is the agent's; only its last component, which
    a task able to write the parent could replace, must not be a symlink."""
    parts = _components(relative)
    if not parts:  # "." or "./": the sandbox itself
        raise SandboxPathError(f"{relative[:100]!r} is a directory")
    try:
        dirfd = os.open(sandbox, _DIR_FLAGS)
    except OSError as exc:
        raise SandboxPathError(f"cannot open the sandbox: {exc.strerror or exc}") from None
    try:
        try:
            fd = _openat2(dirfd, os.fsencode("/".join(parts)))
        except OSError as exc:
            raise _refusal(relative, exc) from None
        return fd if fd is not None else _walk(dirfd, parts, relative)
    finally:
        os.close(dirfd)


def read_chunk(sandbox: Path, relative: str, offset: int, length: int) -> tuple[bytes, int]:
    """Up to ``length`` bytes from ``offset``, and the file's current size.

    Only regular files are read. A task owns its sandbox and may put a FIFO, a socket
    or a device there: opening a FIFO for reading blocks until a writer comes, and the
    agent's loop (its heartbeats included) would block with it. So the file is opened
    non-blocking and without following a symlink at any component of its path (see the
    module's docstring), checked with ``fstat`` on the open descriptor, and read at
    most ``MAX_READ`` bytes at a time.

    A regular file with more than one hard link is refused too: a sandbox file has no
    reason to be hard-linked, and the other name may be outside the sandbox (a task
    can hard-link any file it can reach on the same file system), which no check of
    the path inside the sandbox can see.

    Every failure, whatever the task did to its sandbox, is a ``SandboxPathError``.
    """
    if offset < 0 or length < 0:
        raise SandboxPathError("offset and length must not be negative")
    fd = _open_beneath(sandbox, relative)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SandboxPathError(f"{relative[:100]!r} is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise SandboxPathError(
                f"{relative[:100]!r} is not a regular file ({_kind(info.st_mode)}): "
                "only regular files can be read")
        if info.st_nlink > 1:
            raise SandboxPathError(
                f"{relative[:100]!r} has {info.st_nlink} hard links: a sandbox file has "
                "no reason to be hard-linked and the other name may be outside the "
                "sandbox, so it is not read (copy the file instead of linking it)")
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
