"""State reads never stall the master (issue 13): the loop answers them from a cache of
encoded task views kept up to date (or, when it cannot, a child forked from the master
builds them); either way what the reader gets is the state as of the read, and no child
process outlives its read."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.cluster import Cluster

pytestmark = pytest.mark.integration


def test_state_reads_are_answered_in_the_loop_and_leave_no_child(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        master = cluster.start_master()
        cluster.start_agent()
        cluster.wait_agents(1)
        out = cluster.cli("run", "--master", cluster.master_url, "--", "true")
        assert out.returncode == 0, out.stderr
        state = cluster.state()
        assert [t["state"] for t in state["tasks"]] == ["TASK_FINISHED"]
        again = cluster.state()
        assert [t["state"] for t in again["tasks"]] == ["TASK_FINISHED"]
        assert again["counters"]["reads_answered_in_loop"] >= 1
        # every child (snapshots, the reads the cache could not answer) was reaped:
        # none is left, not even as a zombie
        children = psutil.Process(master.pid).children()
        assert children == [], children
    finally:
        cluster.stop()
