"""Every agent flag in one place: its name, default, range and help.

``mesos-zmq agent`` builds its options from :data:`FLAGS`;
:class:`~mesos_zmq.agent.server.AgentConfig` takes its defaults and range checks from
it; the core, the containerizer and the supervisors take the kill grace period from
:data:`KILL_GRACE_PERIOD` (it was written in five places), and the core its retry
back-off from :data:`STATUS_UPDATE_RETRY` and :data:`REGISTRATION_BACKOFF_FACTOR`
(with the caps :data:`STATUS_UPDATE_RETRY_MAX` and :data:`REGISTRATION_BACKOFF_MAX`,
which are not flags, as in Mesos). Pure data (see :mod:`mesos_zmq.flags`).
"""

from __future__ import annotations

from typing import Any

from mesos_zmq import flags
from mesos_zmq.flags import Flag

#: Mesos's STATUS_UPDATE_RETRY_INTERVAL_MAX: an unacknowledged status update is re-sent
#: after waits that double (with jitter) from ``--status-update-retry`` up to this
STATUS_UPDATE_RETRY_MAX = 600.0
#: Mesos's REGISTER_RETRY_INTERVAL_MAX: the bound of the random wait between two
#: (re-)registration attempts doubles from ``--registration-backoff-factor`` up to this
REGISTRATION_BACKOFF_MAX = 60.0

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
    # Mesos's STATUS_UPDATE_RETRY_INTERVAL_MIN. It was 1 s, without back-off: at
    # 10,000 agents a master failover cost 146k retried updates for 24k tasks.
    Flag("status_update_retry", "--status-update-retry", 10.0,
         "seconds at least before an unacknowledged status update is sent again (the "
         "wait is random in [S, 2S], then doubles per retry up to 10 minutes); it goes "
         "again at once when the agent registers, the next one when it is acknowledged",
         float, 0.1, STATUS_UPDATE_RETRY_MAX),
    # As Mesos's --registration_backoff_factor: agents that all lost their master come
    # back spread over this, not all in the same instant.
    Flag("registration_backoff_factor", "--registration-backoff-factor", 1.0,
         "the first (re-)registration with a master (new, or back after silence) waits a "
         "random time up to this many seconds; each retry the bound doubles, up to 60 "
         "seconds (0: the first attempt goes at once)",
         float, 0.0, REGISTRATION_BACKOFF_MAX),
    Flag("isolation", "--isolation", "auto",
         "how tasks are isolated (auto: cgroups when writable)",
         choices=("auto", "cgroups-v1", "cgroups-v2", "posix")),
    Flag("cgroups_root", "--cgroups-root", "mesos-zmq",
         "cgroup under which each task gets its own (per controller on v1)"),
    Flag("cgroups_enable_cfs", "--cgroups-enable-cfs", False,
         "hard-cap each task's cpu time at its cpus (CFS quota), not only weight it", bool),
    # 4096: pids.max counts threads too, and a big JVM or a wide thread pool runs a
    # few hundred; a fork bomb stops at 4096, an eighth of the kernel's default pid_max
    # (32768), so it takes neither the host's pids nor its other tasks' (systemd caps a
    # service at 15 % of pid_max for the same reason). Mesos has no default.
    Flag("cgroups_pids_max", "--cgroups-pids-max", 4096,
         "most processes and threads a task may have, so that a fork bomb cannot take "
         "the host (0: no limit; enforced where the pids cgroup controller is usable)",
         int, 0, optional=True),
    Flag("switch_user", "--switch-user/--no-switch-user", True,
         "run each task as its user (the task's, else its framework's), as Mesos does; "
         "off: every task runs as the agent's user", bool),
    Flag("enforce_container_disk_quota",
         "--enforce-container-disk-quota/--no-enforce-container-disk-quota", True,
         "fail a task whose sandbox grows past its disk resource "
         "(REASON_CONTAINER_LIMITATION_DISK); tasks without disk are not limited", bool),
    Flag("container_disk_watch_interval", "--container-disk-watch-interval", 15.0,
         "seconds between measurements of each task's sandbox (done by its supervisor)",
         float, 0.1),
    Flag("gpu_devices", "--gpu-devices", None,
         "GPU indices to hand out, e.g. '0,1' (default: detected with nvidia-smi)",
         optional=True),
    Flag("executor_registration_timeout", "--executor-registration-timeout", 60.0,
         "seconds a launched task may wait to be started (its launcher or supervisor "
         "stuck, say stopped): then it is failed and never starts (Mesos's flag of the "
         "same name: an executor that does not register in time)", float, 1.0),
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
CONTAINER_DISK_WATCH_INTERVAL: float = default("container_disk_watch_interval")
STATUS_UPDATE_RETRY: float = default("status_update_retry")
REGISTRATION_BACKOFF_FACTOR: float = default("registration_backoff_factor")


def range_problems(values: dict[str, Any]) -> list[str]:
    """Every range or choice of the agent's flags violated by ``values``."""
    return flags.range_problems(FLAGS, values)
