"""Snapshots built by a forked child while the master appends (issue 13): the snapshot
is the state as of its mark, the records appended meanwhile stay after it, and a child
that fails costs nothing but a longer log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from mesos_zmq.master.log import DirectoryLog, MemoryLog, ReplicatedLog, SnapshotPolicy
from mesos_zmq.master.snapshots import BackgroundSnapshots

EVERY_TWO = SnapshotPolicy(every=2, max_bytes=1 << 30, interval=3600.0)


def _wait_for(snapshots: BackgroundSnapshots, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if snapshots.collect(time.monotonic()):
            return True
        if not snapshots.busy:
            return False
        time.sleep(0.01)
    raise AssertionError("the snapshot child did not finish")


@pytest.fixture(params=["memory", "directory"])
def replicated(request: pytest.FixtureRequest, tmp_path: Path) -> ReplicatedLog:
    if request.param == "memory":
        return MemoryLog()
    return DirectoryLog(tmp_path / "log", fsync=False)


def test_the_snapshot_is_the_state_at_its_mark_and_later_records_follow_it(
        replicated: ReplicatedLog) -> None:
    replicated.recover()
    state: dict[str, Any] = {"n": []}
    snapshots = BackgroundSnapshots(replicated, EVERY_TWO, time.monotonic())
    for n in (0, 1):
        replicated.append([{"n": n}])
        state["n"].append(n)
    assert snapshots.start(lambda: state, time.monotonic())
    # The parent goes on: its changes are not in the child's picture.
    for n in (2, 3):
        replicated.append([{"n": n}])
        state["n"].append(n)
    assert not snapshots.start(lambda: state, time.monotonic())  # one child at a time
    assert _wait_for(snapshots)
    assert snapshots.written == 1
    assert replicated.records_since_snapshot == 2
    recovered = replicated.recover()
    assert recovered.snapshot == {"n": [0, 1]}
    assert [r["n"] for r in recovered.records] == [2, 3]


def test_a_failed_child_loses_nothing_and_is_retried_after_a_pause(
        replicated: ReplicatedLog) -> None:
    replicated.recover()
    snapshots = BackgroundSnapshots(replicated, EVERY_TWO, time.monotonic())
    replicated.append([{"n": 0}, {"n": 1}])

    def broken() -> dict[str, Any]:
        raise RuntimeError("cannot build")

    now = time.monotonic()
    assert snapshots.start(broken, now)
    assert not _wait_for(snapshots)
    assert snapshots.failed == 1 and snapshots.written == 0
    assert not snapshots.due(time.monotonic())  # a pause before the next attempt
    assert snapshots.due(time.monotonic() + 3)
    replicated.append([{"n": 2}])
    recovered = replicated.recover()
    assert recovered.snapshot is None
    assert [r["n"] for r in recovered.records] == [0, 1, 2]
    assert snapshots.start(lambda: {"n": [0, 1, 2]}, time.monotonic() + 3)
    assert _wait_for(snapshots)
    recovered = replicated.recover()
    assert recovered.snapshot == {"n": [0, 1, 2]} and recovered.records == []


def test_a_child_that_takes_too_long_is_given_up(replicated: ReplicatedLog) -> None:
    replicated.recover()
    snapshots = BackgroundSnapshots(replicated, EVERY_TWO, time.monotonic(), timeout=0.2)
    replicated.append([{"n": 0}, {"n": 1}])

    def slow() -> dict[str, Any]:
        time.sleep(30)
        return {}

    assert snapshots.start(slow, time.monotonic())
    time.sleep(0.3)
    assert not snapshots.collect(time.monotonic())
    assert not snapshots.busy and snapshots.failed == 1
    assert [r["n"] for r in replicated.recover().records] == [0, 1]


def test_a_master_that_starts_with_agents_holds_its_first_snapshot(
        replicated: ReplicatedLog) -> None:
    """Its agents and frameworks re-register first; nothing is lost by waiting."""
    replicated.recover()
    now = time.monotonic()
    snapshots = BackgroundSnapshots(replicated, EVERY_TWO, now, hold_until=now + 15)
    replicated.append([{"n": 0}, {"n": 1}, {"n": 2}])
    assert not snapshots.start(lambda: {}, now + 14)
    assert snapshots.start(lambda: {"n": [0, 1, 2]}, now + 15)
    assert _wait_for(snapshots)
    assert replicated.recover().snapshot == {"n": [0, 1, 2]}
