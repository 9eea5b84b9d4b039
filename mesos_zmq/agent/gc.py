"""Sandboxes and the disk: which old ones to delete, and when a live one is too big.

A finished task's sandbox is kept for ``gc_delay`` seconds so that operators can read
its files, but a filling disk shortens that: the longest a sandbox may live is
``gc_delay * max(0, 1 - gc_disk_headroom - disk_usage)`` (Mesos's rule). With the
defaults (one week, 10 % headroom) a disk 50 % full keeps sandboxes for 2.8 days, one
90 % full not at all.

A running task's sandbox may not grow past the task's ``disk`` resource (Mesos's
disk/du isolator with ``--enforce_container_disk_quota``): its supervisor measures it
now and then and asks :func:`disk_limitation` whether the task must go.

Pure: the shell measures the disk and lists sandboxes, the supervisor walks its own.
"""

from __future__ import annotations

MB = 1024 * 1024


def max_sandbox_age(gc_delay: float, headroom: float, disk_usage: float) -> float:
    """Seconds a finished task's sandbox may be kept; ``disk_usage`` in 0..1."""
    return gc_delay * max(0.0, 1.0 - headroom - disk_usage)


def expired(sandboxes: list[tuple[str, float]], now: float, max_age: float) -> list[str]:
    """Sandboxes (path, last modified) not touched for longer than ``max_age``."""
    return [path for path, mtime in sandboxes if now - mtime > max_age]


def disk_limit_bytes(disk_mb: float) -> int | None:
    """The most a task's sandbox may hold, from its ``disk`` resource (MB); None for a
    task without one, which is not limited (as in Mesos)."""
    return int(disk_mb * MB) if disk_mb > 0 else None


def _mb(amount: int) -> str:
    return f"{amount / MB:.1f}".removesuffix(".0") + " MB"


def disk_limitation(limit_bytes: int, used_bytes: int) -> str | None:
    """Why a sandbox holding ``used_bytes`` (allocated) breaks its task's limit, or
    None. Over, not at: a task may fill exactly what it was given."""
    if used_bytes <= limit_bytes:
        return None
    return (f"disk limit exceeded: the sandbox uses {_mb(used_bytes)}, more than the "
            f"task's disk of {_mb(limit_bytes)}")
