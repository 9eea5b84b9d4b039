"""Which old sandboxes to delete, by age and by how full the disk is (Mesos's rule).

A finished task's sandbox is kept for ``gc_delay`` seconds so that operators can read
its files, but a filling disk shortens that: the longest a sandbox may live is
``gc_delay * max(0, 1 - gc_disk_headroom - disk_usage)``. With the defaults (one week,
10 % headroom) a disk 50 % full keeps sandboxes for 2.8 days, one 90 % full not at all.
Pure: the shell measures the disk and lists sandboxes.
"""

from __future__ import annotations


def max_sandbox_age(gc_delay: float, headroom: float, disk_usage: float) -> float:
    """Seconds a finished task's sandbox may be kept; ``disk_usage`` in 0..1."""
    return gc_delay * max(0.0, 1.0 - headroom - disk_usage)


def expired(sandboxes: list[tuple[str, float]], now: float, max_age: float) -> list[str]:
    """Sandboxes (path, last modified) not touched for longer than ``max_age``."""
    return [path for path, mtime in sandboxes if now - mtime > max_age]
