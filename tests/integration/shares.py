"""Helpers for fairness tests: greedy framework processes and measured role shares."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from mesos_zmq.resources import Resources
from tests.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]
ACTIVE = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING")


def role_shares(cluster: Cluster) -> dict[str, float]:
    """Dominant share of each role, from the tasks the master says are active."""
    state = cluster.state()
    total = Resources.empty()
    for agent in state["agents"]:
        total = total + Resources.parse(agent["resources"])
    roles = {f["id"]: f["roles"][0] for f in state["frameworks"]}
    used: dict[str, Resources] = {}
    for task in state["tasks"]:
        if task["state"] in ACTIVE:
            role = roles.get(task["framework_id"], "?")
            used[role] = used.get(role, Resources.empty()) + Resources.parse(task["resources"])
    return {role: max(res.scalar(n) / total.scalar(n) for n in ("cpus", "mem"))
            for role, res in used.items()}


def start_greedy(cluster: Cluster, role: str, log_dir: Path,
                 task: str = "cpus:0.25;mem:256", duration: float = 2.0
                 ) -> subprocess.Popen[bytes]:
    """A framework process in ``role`` with endless demand (greedy_framework.py)."""
    log = open(log_dir / f"greedy-{role.replace('/', '_')}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/integration/greedy_framework.py"),
         "--master", cluster.master_url, "--role", role, "--task", task,
         "--duration", str(duration)],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        start_new_session=True)
    log.close()
    return proc


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
