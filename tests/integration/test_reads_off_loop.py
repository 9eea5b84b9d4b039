"""State reads are built by a child forked from the master (issue 13), while the
master goes on serving; what the child sends is the state as of the read."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.cluster import Cluster

pytestmark = pytest.mark.integration


def test_state_reads_are_answered_by_a_child_that_does_not_outlive_them(
        tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        master = cluster.start_master()
        cluster.start_agent()
        cluster.wait_agents(1)
        out = cluster.cli("run", "--master", cluster.master_url, "--", "true")
        assert out.returncode == 0, out.stderr
        state = cluster.state()
        assert [t["state"] for t in state["tasks"]] == ["TASK_FINISHED"]
        assert state["counters"]["reads_answered_off_loop"] >= 1
        # every child was reaped: none is left, not even as a zombie
        children = psutil.Process(master.pid).children()
        assert children == [], children
    finally:
        cluster.stop()
