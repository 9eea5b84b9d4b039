"""The scale tools keep working (issue 13): simulated agents register with a real
master over the real protocol, and a raw framework runs tasks on them to the end."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from tests.cluster import Cluster, wait_until
from tools.bench_cluster import FrameworkProc
from tools.simulate_agents import Config, Fleet

pytestmark = pytest.mark.integration


def test_simulated_agents_register_and_run_a_frameworks_tasks(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    fleet = framework = None
    try:
        cluster.start_master()
        fleet = Fleet(Config(master=cluster.master_url, agents=20, processes=1,
                             resources="cpus:2;mem:1024", backoff_factor=0.1, nice=1))
        started = time.monotonic()
        fleet.start()
        took = fleet.wait("registered", 20, timeout=30, at="last_registered_ms")
        assert took is not None
        # the moment the last agent heard its answer, as the worker saw it
        assert started <= fleet.totals()["last_registered_ms"] / 1000 <= time.monotonic()
        # the workers stand in for other hosts: below the master's priority if asked
        assert {psutil.Process(pid).nice() for pid in fleet.pids} == {os.nice(0) + 1}
        cluster.wait_agents(20)
        framework = FrameworkProc(cluster.master_url, inflight=50)
        framework.mode("churn")
        wait_until(lambda: framework.poll().get("finished", 0) >= 200, 30,
                   what="200 simulated tasks finished")
        counts = framework.poll()
        assert counts["lost"] == 0 and counts["errors"] == 0
        # the workers report twice a second
        totals = wait_until(lambda: (t := fleet.totals())["tasks_forgotten"] >= 200 and t,
                            10, what="the agents' reports")
        assert totals["tasks_started"] >= 200 and totals["errors"] == 0
        assert totals["reconnects"] == 0
        time.sleep(0.5)
        state = cluster.state()
        assert sum(1 for a in state["agents"] if a["connected"]) == 20
    finally:
        if framework is not None:
            framework.stop()
        if fleet is not None:
            fleet.stop()
        cluster.stop()
