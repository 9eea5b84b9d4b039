"""Issue 9, violation 5: the log is snapshotted by count, size and age, so a restarted
master reads a snapshot and a short tail instead of its whole history."""

from __future__ import annotations

import json
import signal

import pytest

from mesos_zmq.master.log import DirectoryLog, SnapshotPolicy
from tests.cluster import Cluster


def test_the_snapshot_policy_counts_records_bytes_and_age() -> None:
    policy = SnapshotPolicy(every=100, max_bytes=1000, interval=60.0)
    assert not policy.due(0, 10**9, 10**9)  # nothing new: never
    assert not policy.due(99, 999, 59.9)
    assert policy.due(100, 0, 0.0)
    assert policy.due(1, 1000, 0.0)
    assert policy.due(1, 0, 60.0)


@pytest.mark.integration
def test_a_master_snapshots_while_it_runs_and_recovers_from_snapshot_and_tail(
        cluster: Cluster) -> None:
    cluster.master_args = ["--snapshot-every", "10"]
    cluster.start_master()
    cluster.start_agent()
    cluster.wait_agents(1)
    out = cluster.cli("run", "--master", cluster.master_url, "--instances", "5", "--", "true")
    assert out.returncode == 0, out.stderr
    assert cluster.master is not None
    cluster.master.stop(signal.SIGKILL)
    registry = cluster.root / "master" / "registry"
    log = DirectoryLog(registry)
    try:
        recovered = log.recover()
        tail, snapshot = log.bytes_since_snapshot, log.snapshot_bytes
    finally:
        log.close()
    assert recovered.snapshot is not None
    # Only what followed the last snapshot; past --snapshot-every records a snapshot
    # waits until the log after the last one is as large as it (amortized), so the
    # tail stays below the snapshot's size plus the batches of one turn.
    assert recovered.records and tail < 2 * snapshot
    cluster.start_master()
    tasks = json.loads(cluster.cli("tasks", "--json", "--master", cluster.master_url).stdout)
    assert sorted(t["state"] for t in tasks) == ["TASK_FINISHED"] * 5
    text = (cluster.root / "master.log").read_text()
    assert "snapshot written" in text
