"""Log backends: durable appends, torn tails, snapshots, locking."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesos_zmq.errors import LogError
from mesos_zmq.master.log import DirectoryLog, MemoryLog


def test_directory_log_recovers_batches_in_order(tmp_path: Path) -> None:
    log = DirectoryLog(tmp_path)
    assert log.recover().records == []
    log.append([{"op": "a", "n": 1}, {"op": "a", "n": 2}])
    log.append([{"op": "b", "data": b"\x00\x01"}])
    log.close()
    again = DirectoryLog(tmp_path)
    recovered = again.recover()
    assert recovered.snapshot is None
    assert recovered.records == [{"op": "a", "n": 1}, {"op": "a", "n": 2},
                                 {"op": "b", "data": b"\x00\x01"}]
    assert again.records_since_snapshot == 3
    again.close()


def test_torn_tail_is_dropped_and_log_stays_appendable(tmp_path: Path) -> None:
    log = DirectoryLog(tmp_path)
    log.recover()
    log.append([{"op": "kept"}])
    log.append([{"op": "torn", "pad": "x" * 100}])
    log.close()
    path = log.segment_path(0)
    path.write_bytes(path.read_bytes()[:-10])  # crash in the middle of the second write
    again = DirectoryLog(tmp_path)
    assert again.recover().records == [{"op": "kept"}]
    again.append([{"op": "after"}])
    again.close()
    third = DirectoryLog(tmp_path)
    assert third.recover().records == [{"op": "kept"}, {"op": "after"}]
    third.close()


def test_snapshot_replaces_the_log(tmp_path: Path) -> None:
    log = DirectoryLog(tmp_path)
    log.recover()
    log.append([{"op": "x"}])
    log.write_snapshot({"state": 1})
    log.append([{"op": "y"}])
    log.close()
    again = DirectoryLog(tmp_path)
    recovered = again.recover()
    assert recovered.snapshot == {"state": 1}
    assert recovered.records == [{"op": "y"}]
    again.close()


def test_second_master_cannot_open_the_same_directory(tmp_path: Path) -> None:
    first = DirectoryLog(tmp_path)
    with pytest.raises(LogError, match="locked"):
        DirectoryLog(tmp_path)
    first.close()
    DirectoryLog(tmp_path).close()


def test_memory_log_round_trips_through_msgpack() -> None:
    log = MemoryLog()
    log.append([{"op": "a", "t": (1, 2)}])
    assert log.recover().records == [{"op": "a", "t": [1, 2]}]
    log.write_snapshot({"k": "v"})
    assert log.recover().snapshot == {"k": "v"} and log.records_since_snapshot == 0


def test_snapshots_are_amortized_against_their_own_size(tmp_path: Path) -> None:
    """Past the count or size limit, a snapshot waits until the log after the last one
    is as large as it (issue 13: at 100,000 tasks one takes about a second, and one
    every 5,000 records was most of the master's time under churn)."""
    from mesos_zmq.master.log import SnapshotPolicy

    policy = SnapshotPolicy(every=100, max_bytes=1000, interval=60.0)
    assert policy.due(100, 500, 0.0, snapshot_size=0)
    assert not policy.due(100, 500, 0.0, snapshot_size=501)  # the log is still smaller
    assert policy.due(100, 501, 0.0, snapshot_size=501)
    assert not policy.due(99, 999, 0.0, snapshot_size=10)  # neither limit reached
    assert policy.due(1, 0, 60.0, snapshot_size=10**9)  # age still bounds staleness
    assert not policy.due(0, 10**9, 10**9, snapshot_size=0)  # nothing new: never
    log = DirectoryLog(tmp_path)
    log.recover()
    assert log.snapshot_bytes == 0
    log.write_snapshot({"tasks": ["x" * 100] * 10})
    written = log.snapshot_bytes
    assert written > 1000
    log.close()
    again = DirectoryLog(tmp_path)
    again.recover()
    assert again.snapshot_bytes == written  # a restarted master knows it too
    again.close()
    memory = MemoryLog()
    memory.write_snapshot({"k": "v" * 50})
    assert memory.snapshot_bytes > 50
