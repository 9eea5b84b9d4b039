"""Every master flag in one place: its name, default, range and help.

The ``mesos-zmq master`` command builds its options from :data:`FLAGS`,
:class:`~mesos_zmq.master.server.MasterConfig` takes its defaults and range checks
from it, and the core's config its defaults, so that a default is written once (a
default repeated in the CLI, the shell and the core drifts). Pure data: no click here,
so the core may import it.
"""

from __future__ import annotations

from typing import Any

from mesos_zmq import flags
from mesos_zmq.flags import Flag
from mesos_zmq.heartbeat import (
    AGENT_HEARTBEATS_PER_SECOND,
    MAX_HEARTBEAT_INTERVAL,
    MAX_MISSED_HEARTBEATS,
)

FLAGS: tuple[Flag, ...] = (
    Flag("ip", "--ip", "127.0.0.1", "address to listen on (0.0.0.0 for all)"),
    Flag("port", "--port", 5050, "port to listen on", int, 0, 65535),
    Flag("work_dir", "--work-dir", "/var/lib/mesos-zmq/master", "where the registry lives"),
    Flag("registry", "--registry", "replicated_log",
         "replicated_log persists state in --work-dir",
         choices=("replicated_log", "in_memory")),
    Flag("roles", "--roles", "", "comma-separated roles frameworks may use (empty: any)"),
    Flag("weights", "--weights", "", "role weights, e.g. eng=2,ops=1"),
    Flag("heartbeat_interval", "--heartbeat-interval", 2.0, "seconds between heartbeats",
         float, 0.01, MAX_HEARTBEAT_INTERVAL),
    Flag("missed_heartbeats", "--missed-heartbeats", 5,
         "heartbeats missed before a peer is declared gone (the heartbeat limit, "
         "interval x missed, is also how long a stopped agent may take to come back)",
         int, 1, MAX_MISSED_HEARTBEATS),
    Flag("max_agent_heartbeats", "--max-agent-heartbeats", AGENT_HEARTBEATS_PER_SECOND,
         "agent heartbeats a second the master aims at: with more than this x "
         "--heartbeat-interval agents, agents beat at a longer interval (whole multiples "
         "of --heartbeat-interval), and are declared gone after that interval x "
         "--missed-heartbeats; 0: always --heartbeat-interval",
         float, 0.0, 1e7),
    Flag("allocation_interval", "--allocation-interval", 1.0,
         "seconds between periodic allocation rounds", float, 0.01),
    Flag("reregister_timeout", "--reregister-timeout", 600.0,
         "seconds agents and frameworks have to come back after a master restart",
         float, 0.0),
    Flag("fsync", "--fsync/--no-fsync", True, "fsync every log append", bool),
    Flag("offer_timeout", "--offer-timeout", None,
         "rescind offers held longer than this many seconds (default: never)",
         float, 0.001, optional=True),
    Flag("excluded", "--fair-sharing-excluded-resource-names", "",
         "comma-separated resource names left out of dominant shares, e.g. gpus",
         field="fair_sharing_excluded"),
    Flag("min_allocatable", "--min-allocatable-resources", "",
         "offers must reach one of these, e.g. 'cpus:0.01|mem:32' (the default)"),
    Flag("zk", "--zk", "", "zk://[user:pass@]host:port[,...]/path: replicated masters "
         "elect a leader and keep the log in ZooKeeper (default: a single master, log in "
         "--work-dir)"),
    Flag("zk_credentials", "--zk-credentials", None,
         "file holding the masters' ZooKeeper digest 'user:password' (mode 0600): the "
         "masters' znodes become theirs alone, the leader record readable by all",
         optional=True),
    Flag("zk_session_timeout", "--zk-session-timeout", 10.0,
         "ZooKeeper session timeout in seconds (bounds failover after a crash)",
         float, 0.1),
    Flag("snapshot_every", "--snapshot-every", 5000,
         "log records between snapshots (a snapshot replaces the log before it)", int, 1),
    Flag("snapshot_bytes", "--snapshot-bytes", 8 * 1024 * 1024,
         "log bytes between snapshots", int, 1),
    Flag("snapshot_interval", "--snapshot-interval", 300.0,
         "most seconds between snapshots while the log grows", float, 0.001),
    Flag("allocator_sorter", "--allocator-sorter", "drf",
         "order in which roles, and frameworks within a role, are offered resources: "
         "drf (weighted Dominant Resource Fairness) or random (a weighted random order, "
         "as Mesos's --role_sorter=random)", choices=("drf", "random")),
    Flag("key", "--key", None,
         "this cluster's master key pair (the .key_secret file from 'mesos-zmq keygen'; "
         "all masters share it, clients pin its public half): turns on CurveZMQ",
         optional=True),
    Flag("credentials", "--credentials", None,
         "JSON file mapping client public keys to principals and kinds (agent, framework, "
         "operator); needed with --key", optional=True),
    Flag("acls", "--acls", None,
         "JSON file of access rules in the shape of Mesos's --acls (register_frameworks, "
         "run_tasks, view_tasks, update_quotas, ...; see mesos_zmq/auth/acls.py); needs "
         "--key", optional=True),
    Flag("rate_limits", "--rate-limits", None,
         "JSON file of per-principal message rates in the shape of Mesos's "
         "--rate_limits (see mesos_zmq/auth/rate_limits.py); needs --key", optional=True),
    Flag("insecure", "--insecure", False,
         "allow listening on a non-loopback address without --key (anyone who can reach "
         "the port controls the cluster)", bool),
    Flag("role_min_allocatable", "--role-min-allocatable-resources", (),
         "ROLE=ALTERNATIVES for one role, e.g. 'ml=cpus:1;mem:1024|gpus:1' (repeatable)",
         multiple=True),
)

#: How much completed-task history the master keeps (Mesos's
#: --max_completed_tasks_per_framework and --max_completed_frameworks, plus an age and a
#: total). The history is durable state: :class:`~mesos_zmq.master.state.HistoryLimits`
#: takes its defaults from here, and the state trims it on every record it applies, so a
#: replay of the log under the same limits gives the same history (the shell hands them
#: to ``state_from``: mesos_zmq/master/server.py, ha.py).
HISTORY_FLAGS: tuple[Flag, ...] = (
    Flag("max_completed_tasks_per_framework", "--max-completed-tasks-per-framework", 1000,
         "finished tasks remembered per framework (its oldest are forgotten first), as "
         "Mesos's --max_completed_tasks_per_framework", int, 0, 1_000_000),
    Flag("max_completed_task_age", "--max-completed-task-age", 7 * 24 * 3600.0,
         "seconds a finished task is remembered (the agents' --gc-delay default: the "
         "master lists a task as long as its sandbox is likely kept)", float, 0.0),
    Flag("max_completed_frameworks", "--max-completed-frameworks", 50,
         "removed frameworks whose finished tasks are remembered (the newest ones), as "
         "Mesos's --max_completed_frameworks; older ones' tasks are forgotten (their ids "
         "stay refused)", int, 0, 1000),
    Flag("max_completed_tasks", "--max-completed-tasks", 10_000,
         "finished tasks remembered in all (the oldest are forgotten first): bounds the "
         "master's memory and its snapshots whatever the number of frameworks",
         int, 0, 10_000_000),
)

FLAGS = (*FLAGS, *HISTORY_FLAGS)

BY_NAME: dict[str, Flag] = {f.name: f for f in FLAGS}


def default(name: str) -> Any:
    return BY_NAME[name].default


HEARTBEAT_INTERVAL: float = default("heartbeat_interval")
MISSED_HEARTBEATS: int = default("missed_heartbeats")
MAX_AGENT_HEARTBEATS: float = default("max_agent_heartbeats")
ALLOCATION_INTERVAL: float = default("allocation_interval")
REREGISTER_TIMEOUT: float = default("reregister_timeout")
SNAPSHOT_EVERY: int = default("snapshot_every")
SNAPSHOT_BYTES: int = default("snapshot_bytes")
SNAPSHOT_INTERVAL: float = default("snapshot_interval")
ZK_SESSION_TIMEOUT: float = default("zk_session_timeout")
ALLOCATOR_SORTER: str = default("allocator_sorter")
MAX_COMPLETED_TASKS_PER_FRAMEWORK: int = default("max_completed_tasks_per_framework")
MAX_COMPLETED_TASK_AGE: float = default("max_completed_task_age")
MAX_COMPLETED_FRAMEWORKS: int = default("max_completed_frameworks")
MAX_COMPLETED_TASKS: int = default("max_completed_tasks")


def range_problems(values: dict[str, Any]) -> list[str]:
    """Every range or choice of the master's flags violated by ``values``."""
    return flags.range_problems(FLAGS, values)
