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
    path = tmp_path / DirectoryLog.LOG_NAME
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
