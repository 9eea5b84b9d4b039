"""What this host can offer, by Mesos's rules, unless the operator says otherwise."""

from __future__ import annotations

import shutil
import subprocess

import psutil

from mesos_zmq.resources import Resources

DEFAULT_PORTS = "[31000-32000]"


def _mem_mb(total_mb: int) -> int:
    # Leave the host some memory: 1 GB, or half of it on small machines.
    return total_mb - 1024 if total_mb >= 2048 else total_mb // 2


def _disk_mb(total_mb: int) -> int:
    return total_mb - 5120 if total_mb >= 10240 else total_mb // 2


def count_gpus() -> int:
    """GPUs visible to nvidia-smi; zero when it is absent or fails."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def detect_resources(work_dir: str, override: str | None = None) -> Resources:
    """Detected resources, with any names given in ``override`` replacing them."""
    cpus = psutil.cpu_count(logical=True) or 1
    mem = _mem_mb(psutil.virtual_memory().total // (1024 * 1024))
    disk = _disk_mb(shutil.disk_usage(work_dir).total // (1024 * 1024))
    parts = [f"cpus:{cpus}", f"mem:{mem}", f"disk:{disk}", f"ports:{DEFAULT_PORTS}"]
    gpus = count_gpus()
    if gpus:
        parts.append(f"gpus:{gpus}")
    detected = Resources.parse(";".join(parts))
    if not override:
        return detected
    given = Resources.parse(override)
    return detected.without_names(given.names()) + given
