"""Reading files inside a task's sandbox without ever leaving it."""

from __future__ import annotations

import os
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
    root = sandbox.resolve()
    target = (root / relative).resolve()  # follows symlinks, so links out are caught
    if target != root and root not in target.parents:
        raise SandboxPathError(f"path {relative[:100]!r} resolves outside the sandbox")
    return target


def read_chunk(sandbox: Path, relative: str, offset: int, length: int) -> tuple[bytes, int]:
    """Up to ``length`` bytes from ``offset``, and the file's current size."""
    if offset < 0 or length < 0:
        raise SandboxPathError("offset and length must not be negative")
    target = resolve_in_sandbox(sandbox, relative)
    try:
        with open(target, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(offset)
            data = handle.read(min(length, MAX_READ))
    except FileNotFoundError:
        raise SandboxPathError(f"no file {relative[:100]!r} in the sandbox") from None
    except IsADirectoryError:
        raise SandboxPathError(f"{relative[:100]!r} is a directory") from None
    except OSError as exc:
        raise SandboxPathError(f"cannot read {relative[:100]!r}: {exc.strerror}") from None
    return data, size
