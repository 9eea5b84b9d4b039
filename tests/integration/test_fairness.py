"""Acceptance 3: weighted DRF between two framework processes on a saturated cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mesos_zmq.resources import Resources
from tests.cluster import Cluster, wait_until

ROOT = Path(__file__).resolve().parents[2]


def role_shares(cluster: Cluster) -> dict[str, float]:
    """Dominant share of each role from the tasks the master says are active."""
    state = cluster.state()
    total = Resources.empty()
    for agent in state["agents"]:
        total = total + Resources.parse(agent["resources"])
    frameworks = {f["id"]: f["roles"][0] for f in state["frameworks"]}
    used: dict[str, Resources] = {}
    for task in state["tasks"]:
        if task["state"] in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING"):
            role = frameworks.get(task["framework_id"], "?")
            used[role] = used.get(role, Resources.empty()) + Resources.parse(task["resources"])
    shares = {}
    for role, res in used.items():
        shares[role] = max(res.scalar(n) / total.scalar(n) for n in ("cpus", "mem"))
    return shares


@pytest.mark.integration
def test_weighted_drf_converges_to_weights(cluster: Cluster, tmp_path: Path) -> None:
    cluster.master_args = ["--weights", "a=1,b=3", "--allocation-interval", "0.1"]
    cluster.start_master()
    for _ in range(4):
        cluster.start_agent(resources="cpus:8;mem:8192")
    cluster.wait_agents(4)
    procs = []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        for role in ("a", "b"):
            log = open(tmp_path / f"greedy-{role}.log", "wb")  # noqa: SIM115
            procs.append(subprocess.Popen(
                [sys.executable, str(ROOT / "tests/integration/greedy_framework.py"),
                 "--master", cluster.master_url, "--role", role,
                 "--task", "cpus:0.25;mem:256", "--duration", "2"],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
            log.close()
        wait_until(lambda: len(role_shares(cluster)) == 2, 20, what="both roles running")
        time.sleep(4)  # let a couple of generations of tasks turn over
        samples = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            shares = role_shares(cluster)
            if shares.get("a") and shares.get("b"):
                samples.append((shares["a"], shares["b"]))
            time.sleep(0.25)
        mean_a = sum(a for a, _ in samples) / len(samples)
        mean_b = sum(b for _, b in samples) / len(samples)
        ratio = mean_b / mean_a
        print(f"mean dominant shares a={mean_a:.3f} b={mean_b:.3f} ratio={ratio:.3f}")
        assert mean_a + mean_b > 0.8, "the cluster should be saturated"
        assert abs(ratio - 3.0) <= 0.15, f"b/a ratio {ratio:.3f} not within 5% of 3"
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
