"""Every agent flag in one place: its name, default, range and help.

``mesos-zmq agent`` builds its options from :data:`FLAGS`;
:class:`~mesos_zmq.agent.server.AgentConfig` takes its defaults and range checks from
it; the core, the containerizer and the supervisors take the kill grace period from
:data:`KILL_GRACE_PERIOD` (it was written in five places). Pure data (see
:mod:`mesos_zmq.flags`).
"""

from __future__ import annotations

from typing import Any

from mesos_zmq import flags
from mesos_zmq.flags import Flag

FLAGS: tuple[Flag, ...] = (
    Flag("work_dir", "--work-dir", "/var/lib/mesos-zmq/agent", "sandboxes and checkpoints"),
    Flag("resources", "--resources", None,
         "e.g. 'cpus:4;mem:4096;ports:[31000-32000]' (default: detected from the host; "
         "given names override detected ones)", optional=True),
    Flag("attributes", "--attributes", "", "e.g. 'rack:r1;zone:a'"),
    Flag("hostname", "--hostname", None,
         "name reported to the master (default: this host)", optional=True),
    Flag("kill_grace_period", "--kill-grace-period", 3.0,
         "seconds between SIGTERM and SIGKILL when a task is killed", float, 0.0),
    Flag("isolation", "--isolation", "auto",
         "how tasks are isolated (auto: cgroups when writable)",
         choices=("auto", "cgroups-v1", "cgroups-v2", "posix")),
    Flag("cgroups_root", "--cgroups-root", "mesos-zmq",
         "cgroup under which each task gets its own (per controller on v1)"),
    Flag("cgroups_enable_cfs", "--cgroups-enable-cfs", False,
         "hard-cap each task's cpu time at its cpus (CFS quota), not only weight it", bool),
    Flag("cgroups_pids_max", "--cgroups-pids-max", None,
         "most processes a task may have (default: no limit)", int, 1, optional=True),
    Flag("gpu_devices", "--gpu-devices", None,
         "GPU indices to hand out, e.g. '0,1' (default: detected with nvidia-smi)",
         optional=True),
    Flag("usage_interval", "--usage-interval", 5.0,
         "seconds between task usage reports to the master", float, 0.1),
    Flag("gc_delay", "--gc-delay", 7 * 24 * 3600.0,
         "seconds a finished task's sandbox is kept (less as the disk fills)", float, 0.0),
    Flag("gc_disk_headroom", "--gc-disk-headroom", 0.1,
         "fraction of the disk to keep free: sandboxes age faster as it fills",
         float, 0.0, 1.0),
    Flag("disk_watch_interval", "--disk-watch-interval", 60.0,
         "seconds between sandbox garbage collections", float, 0.1),
)

BY_NAME: dict[str, Flag] = {f.name: f for f in FLAGS}


def default(name: str) -> Any:
    return BY_NAME[name].default


KILL_GRACE_PERIOD: float = default("kill_grace_period")


def range_problems(values: dict[str, Any]) -> list[str]:
    """Every range or choice of the agent's flags violated by ``values``."""
    return flags.range_problems(FLAGS, values)
