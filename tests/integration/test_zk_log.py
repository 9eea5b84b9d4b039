"""The ZooKeeper log backend against a real ZooKeeper: order, fencing, snapshots."""

from __future__ import annotations

import os
import random

import msgpack
import pytest
from kazoo.client import KazooClient

from mesos_zmq.errors import LogError
from mesos_zmq.master.zk_log import LogFenced, ZooKeeperLog

pytestmark = pytest.mark.integration


def test_appends_recover_in_order_one_znode_per_batch(zk_client: KazooClient) -> None:
    log = ZooKeeperLog(zk_client, "/cluster")
    log.recover()
    log.claim_epoch()
    log.append([{"op": "a", "n": 1}, {"op": "a", "n": 2}])
    log.append([{"op": "b", "blob": b"\x00\x01"}])
    assert len(zk_client.get_children("/cluster/log")) == 2  # group commit
    again = ZooKeeperLog(zk_client, "/cluster")
    recovered = again.recover()
    assert recovered.snapshot is None
    assert recovered.records == [{"op": "a", "n": 1}, {"op": "a", "n": 2},
                                 {"op": "b", "blob": b"\x00\x01"}]


def test_a_deposed_writer_is_fenced_and_writes_nothing(zk_client: KazooClient) -> None:
    old = ZooKeeperLog(zk_client, "/cluster")
    old.recover()
    first = old.claim_epoch()
    old.append([{"op": "x"}])
    new = ZooKeeperLog(zk_client, "/cluster")
    new.recover()
    second = new.claim_epoch()
    assert second > first
    with pytest.raises(LogFenced):
        old.append([{"op": "from the past"}])
    with pytest.raises(LogFenced):
        old.write_snapshot({"stale": True})
    new.append([{"op": "y"}])
    assert ZooKeeperLog(zk_client, "/cluster").recover().records == [{"op": "x"}, {"op": "y"}]


def test_writing_without_an_epoch_is_refused(zk_client: KazooClient) -> None:
    log = ZooKeeperLog(zk_client, "/cluster")
    with pytest.raises(Exception, match="claimed the epoch"):
        log.append([{"op": "x"}])


def test_snapshot_plus_tail_and_compaction(zk_client: KazooClient) -> None:
    log = ZooKeeperLog(zk_client, "/cluster", chunk=64 * 1024, retain=0)
    log.recover()
    log.claim_epoch()
    for i in range(5):
        log.append([{"op": "before", "i": i}])
    big = {"state": os.urandom(300_000), "n": 5}  # five chunks of 64 KiB (incompressible)
    log.write_snapshot(big)
    log.append([{"op": "after"}])
    assert len(zk_client.get_children("/cluster/log")) == 1  # compacted
    snapshots = zk_client.get_children("/cluster/snapshots")
    assert len(snapshots) == 1
    chunks = zk_client.get_children(f"/cluster/snapshots/{snapshots[0]}")
    assert len(chunks) == 5
    assert all(len(zk_client.get(f"/cluster/snapshots/{snapshots[0]}/{c}")[0]) <= 64 * 1024
               for c in chunks)
    recovered = ZooKeeperLog(zk_client, "/cluster").recover()
    assert recovered.snapshot == big and recovered.records == [{"op": "after"}]
    # A second snapshot replaces the first (old chunks removed).
    log.write_snapshot({"n": 6})
    assert len(zk_client.get_children("/cluster/snapshots")) == 1
    assert ZooKeeperLog(zk_client, "/cluster").recover().snapshot == {"n": 6}


def test_snapshots_are_compressed_and_old_uncompressed_ones_still_load(
        zk_client: KazooClient) -> None:
    """ZooKeeper holds every znode in its heap: a snapshot goes compressed (a repetitive
    300 KB state is one small chunk), and one written before compression still reads."""
    import msgpack

    log = ZooKeeperLog(zk_client, "/cluster", chunk=64 * 1024, retain=0)
    log.recover()
    log.claim_epoch()
    state = {"tasks": [{"id": f"t{i}", "state": "TASK_RUNNING"} for i in range(5000)]}
    log.write_snapshot(state)
    (snap,) = zk_client.get_children("/cluster/snapshots")
    (chunk,) = zk_client.get_children(f"/cluster/snapshots/{snap}")
    stored = len(zk_client.get(f"/cluster/snapshots/{snap}/{chunk}")[0])
    assert stored * 5 < log.snapshot_bytes  # the size amortized against is the plain one
    fresh = ZooKeeperLog(zk_client, "/cluster")
    assert fresh.recover().snapshot == state and fresh.snapshot_bytes == log.snapshot_bytes
    # as an older master wrote it: plain msgpack, no codec in the meta
    zk_client.set(f"/cluster/snapshots/{snap}/{chunk}", msgpack.packb({"n": 1}))
    meta = msgpack.unpackb(zk_client.get("/cluster/snapshot")[0])
    del meta["codec"]
    zk_client.set("/cluster/snapshot", msgpack.packb(meta))
    assert ZooKeeperLog(zk_client, "/cluster").recover().snapshot == {"n": 1}


def test_large_batches_are_split_and_incomplete_ones_ignored(zk_client: KazooClient) -> None:
    log = ZooKeeperLog(zk_client, "/cluster", chunk=32 * 1024)
    log.recover()
    log.claim_epoch()
    records = [{"op": "big", "i": i, "pad": "y" * 1000} for i in range(100)]  # ~100 KB
    log.append(records)
    names = zk_client.get_children("/cluster/log")
    assert len(names) >= 4 and all(
        len(zk_client.get(f"/cluster/log/{n}")[0]) <= 32 * 1024 + 100 for n in names)
    assert ZooKeeperLog(zk_client, "/cluster").recover().records == records
    # A writer that died between the parts of a batch: its parts are never replayed.
    torn = msgpack.packb(["token", 0, 2, msgpack.packb([{"op": "torn"}]), 1])
    zk_client.create("/cluster/log/e-", torn, sequence=True)
    log.append([{"op": "later"}])
    assert ZooKeeperLog(zk_client, "/cluster").recover().records == [*records, {"op": "later"}]


def test_standby_tails_new_entries(zk_client: KazooClient) -> None:
    leader = ZooKeeperLog(zk_client, "/cluster")
    leader.recover()
    leader.claim_epoch()
    leader.append([{"op": "one"}])
    standby = ZooKeeperLog(zk_client, "/cluster")
    assert standby.recover().records == [{"op": "one"}]
    assert standby.tail().records == []
    leader.append([{"op": "two"}])
    leader.append([{"op": "three"}])
    tail = standby.tail()
    assert tail.snapshot is None and tail.records == [{"op": "two"}, {"op": "three"}]


def test_a_standby_behind_compaction_reloads_the_snapshot(zk_client: KazooClient) -> None:
    """Issue 9, violation 2: entries compacted under a lagging standby were skipped."""
    leader = ZooKeeperLog(zk_client, "/cluster", retain=0)
    leader.recover()
    leader.claim_epoch()
    leader.append([{"op": "one"}])
    standby = ZooKeeperLog(zk_client, "/cluster")
    assert standby.recover().records == [{"op": "one"}]
    for i in range(5):
        leader.append([{"op": "missed", "i": i}])
    leader.write_snapshot({"upto": 5})
    leader.append([{"op": "after"}])
    tail = standby.tail()
    assert tail.snapshot == {"upto": 5} and tail.records == [{"op": "after"}]
    leader.append([{"op": "next"}])
    assert standby.tail().records == [{"op": "next"}]


def test_a_gap_is_never_skipped(zk_client: KazooClient) -> None:
    """An entry deleted without a snapshot covering it is an error, not a skip."""
    leader = ZooKeeperLog(zk_client, "/cluster")
    leader.recover()
    leader.claim_epoch()
    for i in range(3):
        leader.append([{"op": "n", "i": i}])
    names = sorted(zk_client.get_children("/cluster/log"))
    zk_client.delete(f"/cluster/log/{names[1]}")
    with pytest.raises(LogError, match="missing"):
        ZooKeeperLog(zk_client, "/cluster").recover()


def test_a_new_writer_reuses_the_number_of_an_abandoned_batch(zk_client: KazooClient) -> None:
    old = ZooKeeperLog(zk_client, "/cluster", chunk=16)
    old.recover()
    old.claim_epoch()
    old.append([{"op": "a"}])
    standby = ZooKeeperLog(zk_client, "/cluster", chunk=16)
    standby.recover()
    # The old writer is fenced half way through a multi-part batch.
    part = msgpack.packb(["tok", 0, 3, b"partial", 1])
    zk_client.create("/cluster/log/e-", part, sequence=True)
    new = ZooKeeperLog(zk_client, "/cluster")
    assert new.recover().records == [{"op": "a"}]
    new.claim_epoch()
    new.append([{"op": "b"}])
    assert standby.tail().records == [{"op": "b"}]
    assert ZooKeeperLog(zk_client, "/cluster").recover().records == [{"op": "a"}, {"op": "b"}]


def test_a_standby_notices_compaction_that_left_the_log_empty(zk_client: KazooClient) -> None:
    leader = ZooKeeperLog(zk_client, "/cluster", retain=0)
    leader.recover()
    leader.claim_epoch()
    standby = ZooKeeperLog(zk_client, "/cluster")
    standby.recover()
    leader.append([{"op": "a"}])
    leader.write_snapshot({"n": 1})
    assert zk_client.get_children("/cluster/log") == []
    tail = standby.tail()
    assert tail.snapshot == {"n": 1} and tail.records == []


def test_a_lagging_standby_always_ends_with_the_leaders_records(zk_client: KazooClient) -> None:
    """Random appends, snapshots and tails: the standby's copy never diverges."""
    rng = random.Random(7)
    leader = ZooKeeperLog(zk_client, "/cluster", chunk=64, retain=rng.choice([0, 3]))
    leader.recover()
    leader.claim_epoch()
    standby = ZooKeeperLog(zk_client, "/cluster", chunk=64)
    standby.recover()
    written: list[int] = []
    seen: list[int] = []
    for _ in range(600):
        roll = rng.random()
        if roll < 0.5:
            numbers = [len(written) + i for i in range(rng.randrange(1, 4))]
            leader.append([{"n": n, "pad": "p" * rng.randrange(200)} for n in numbers])
            written += numbers
        elif roll < 0.6:
            leader.write_snapshot({"all": list(written)})
        else:
            tail = standby.tail()
            if tail.snapshot is not None:
                seen = list(tail.snapshot["all"])
            seen += [r["n"] for r in tail.records]
            assert seen == written


def test_a_standby_counts_only_what_follows_the_last_snapshot(zk_client: KazooClient) -> None:
    """A new leader inherits the true count: it does not snapshot at once on taking over."""
    leader = ZooKeeperLog(zk_client, "/cluster")
    leader.recover()
    leader.claim_epoch()
    standby = ZooKeeperLog(zk_client, "/cluster")
    standby.recover()
    leader.append([{"op": "a"}, {"op": "b"}])
    assert standby.tail().records and standby.records_since_snapshot == 2
    leader.write_snapshot({"n": 2})
    leader.append([{"op": "c"}])
    assert standby.tail().records == [{"op": "c"}]
    assert standby.records_since_snapshot == 1 == leader.records_since_snapshot
    assert standby.bytes_since_snapshot == leader.bytes_since_snapshot > 0
    fresh = ZooKeeperLog(zk_client, "/cluster")
    fresh.recover()
    assert fresh.records_since_snapshot == 1


def test_a_standby_a_few_batches_behind_reads_on_after_compaction(
        zk_client: KazooClient) -> None:
    """Compaction leaves the newest entries, so a standby need not reload the snapshot."""
    leader = ZooKeeperLog(zk_client, "/cluster", retain=4)
    leader.recover()
    leader.claim_epoch()
    standby = ZooKeeperLog(zk_client, "/cluster")
    standby.recover()
    for i in range(10):
        leader.append([{"op": "n", "i": i}])
    standby_behind = [r["i"] for r in standby.tail().records]
    leader.append([{"op": "n", "i": 10}])
    leader.append([{"op": "n", "i": 11}])
    leader.write_snapshot({"upto": 11})
    assert len(zk_client.get_children("/cluster/log")) == 4
    tail = standby.tail()
    assert tail.snapshot is None and [r["i"] for r in tail.records] == [10, 11]
    assert standby_behind == list(range(10))
    assert ZooKeeperLog(zk_client, "/cluster").recover().records == []


def test_a_snapshot_installed_later_covers_only_what_preceded_its_mark(
        zk_client: KazooClient) -> None:
    """The master builds a snapshot in a child while it appends: the batches appended
    after the mark stay after the snapshot, for a fresh reader and a standby alike."""
    leader = ZooKeeperLog(zk_client, "/cluster", retain=0)
    leader.recover()
    leader.claim_epoch()
    standby = ZooKeeperLog(zk_client, "/cluster")
    standby.recover()
    leader.append([{"n": 0}, {"n": 1}])
    mark = leader.mark_snapshot()
    encoded = leader.encode_snapshot({"upto": 1})
    leader.append([{"n": 2}])
    leader.append([{"n": 3}])
    assert [r["n"] for r in standby.tail().records] == [0, 1, 2, 3]
    leader.install_snapshot(encoded, mark)
    assert leader.records_since_snapshot == 2
    assert leader.snapshot_bytes == encoded.size
    recovered = ZooKeeperLog(zk_client, "/cluster").recover()
    assert recovered.snapshot == {"upto": 1}
    assert [r["n"] for r in recovered.records] == [2, 3]
    leader.append([{"n": 4}])
    assert [r["n"] for r in standby.tail().records] == [4]
    assert standby.records_since_snapshot == 3  # 2, 3 and 4 follow the snapshot


def test_an_abandoned_mark_is_covered_by_a_later_one_and_a_stale_one_is_ignored(
        zk_client: KazooClient) -> None:
    leader = ZooKeeperLog(zk_client, "/cluster", retain=0)
    leader.recover()
    leader.claim_epoch()
    leader.append([{"n": 0}])
    first = leader.mark_snapshot()  # its child failed: never installed
    leader.append([{"n": 1}])
    second = leader.mark_snapshot()
    leader.append([{"n": 2}])
    leader.install_snapshot(leader.encode_snapshot({"upto": 1}), second)
    leader.install_snapshot(leader.encode_snapshot({"upto": 0}), first)  # too late
    recovered = ZooKeeperLog(zk_client, "/cluster").recover()
    assert recovered.snapshot == {"upto": 1}
    assert [r["n"] for r in recovered.records] == [2]
