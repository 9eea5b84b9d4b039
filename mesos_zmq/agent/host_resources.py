"""What this host can offer, by Mesos's rules, unless the operator says otherwise.

A name written in ``--resources`` replaces the detected amount even when it is zero:
``cpus:0`` is an agent without cpus (useless for most tasks, but what the operator
said), as in Mesos, which detects a resource only when its name is absent from the
flag. The CLI warns about such zeros before the agent starts.
"""

from __future__ import annotations

import shutil
import subprocess

import psutil

from mesos_zmq.resources import Resources, parse_user_resources

DEFAULT_PORTS = "[31000-32000]"


def _mem_mb(total_mb: int) -> int:
    # Leave the host some memory: 1 GB, or half of it on small machines.
    return total_mb - 1024 if total_mb >= 2048 else total_mb // 2


def _disk_mb(total_mb: int) -> int:
    return total_mb - 5120 if total_mb >= 10240 else total_mb // 2


def detect_gpus() -> list[str]:
    """Indices of the GPUs nvidia-smi sees; none when it is absent or fails."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip().isdigit()]


def detect_resources(work_dir: str, override: str | None = None,
                     gpus: int = 0) -> Resources:
    """Detected resources, with any names given in ``override`` replacing them.

    A name given with a zero amount replaces the detected one too (``cpus:0`` is no
    cpus: the parsed collection drops zeros, so the names come from the text).
    ``gpus`` is the number of GPU devices the agent can hand out (detected or given).
    """
    cpus = psutil.cpu_count(logical=True) or 1
    mem = _mem_mb(psutil.virtual_memory().total // (1024 * 1024))
    disk = _disk_mb(shutil.disk_usage(work_dir).total // (1024 * 1024))
    parts = [f"cpus:{cpus}", f"mem:{mem}", f"disk:{disk}", f"ports:{DEFAULT_PORTS}"]
    if gpus:
        parts.append(f"gpus:{gpus}")
    detected = Resources.parse(";".join(parts))
    if not override:
        return detected
    given = parse_user_resources(override)
    return detected.without_names(given.names) + given.resources
