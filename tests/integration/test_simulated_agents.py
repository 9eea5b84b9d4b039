"""The scale tools keep working (issue 13): simulated agents register with a real
master over the real protocol, and a raw framework runs tasks on them to the end."""

from __future__ import annotations

import time
from pathlib import Path

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
                             resources="cpus:2;mem:1024", backoff_factor=0.1))
        fleet.start()
        assert fleet.wait("registered", 20, timeout=30) is not None
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
