"""How long a restarted master takes to rejoin the election, against the log's length.

A master that restarts (systemd after a crash) must read the replicated log before it
may stand by: until then the cluster has one standby fewer, and after a double kill
none. This benchmark writes a realistic log into a real ZooKeeper (records made by the
real master core: agents, a framework, offers, accepts, task updates, acknowledgements,
one log append per loop turn as the server groups them), with the server's snapshot
policy, then measures what a restarted master does before joining the election:
connect, recover (snapshot + tail), replay, create its election node.

    python tools/bench_recovery.py [--records 10000,50000,100000] [--snapshot-every N]

Each size is measured with the given snapshot policy and, for comparison, with no
snapshot at all. The last line reads ``records=N join_s=X no_snapshot_join_s=Y``
for the largest size.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog
from kazoo.client import KazooClient

from mesos_zmq.master.contender import Contender
from mesos_zmq.master.core import MasterCore, MasterCoreConfig, Ready
from mesos_zmq.master.log import SnapshotPolicy
from mesos_zmq.master.records import record_to_plain
from mesos_zmq.master.state import MasterState, state_from
from mesos_zmq.master.zk_log import ZooKeeperLog
from mesos_zmq.protocol import (
    Accept,
    Acknowledge,
    FrameworkInfo,
    Offers,
    RegisterAgent,
    StatusUpdate,
    Subscribe,
    TaskInfo,
    TaskStatus,
)
from mesos_zmq.testing.zookeeper import Ensemble

AGENTS = 20
FW = b"framework"


def write_log(client: KazooClient, path: str, records: int, policy: SnapshotPolicy) -> float:
    """Drive a master core until ``records`` records are logged; returns seconds taken."""
    zk_log = ZooKeeperLog(client, path)
    zk_log.recover()
    zk_log.claim_epoch()
    counter = itertools.count()
    core = MasterCore(MasterCoreConfig(heartbeat_interval=1e6, allocation_interval=0.0),
                      lambda: f"{next(counter):012d}", MasterState())
    written = 0
    now = 0.0
    started = time.monotonic()

    def flush(ready: Ready) -> None:
        nonlocal written
        if ready.records:
            zk_log.append([record_to_plain(r) for r in ready.records])
            written += len(ready.records)
        if policy.due(zk_log.records_since_snapshot, zk_log.bytes_since_snapshot, 0.0):
            zk_log.write_snapshot(core.state.snapshot())

    batch = Ready()
    peers = {}
    for i in range(AGENTS):
        peer = f"agent{i}".encode()
        ready = core.handle(peer, RegisterAgent(hostname=f"h{i}", resources="cpus:8;mem:16384"),
                            "", now)
        batch.records.extend(ready.records)
        peers[ready.messages[0][1].agent_id] = peer  # type: ignore[attr-defined]
    ready = core.handle(FW, Subscribe(framework=FrameworkInfo(name="bench")), "", now)
    batch.records.extend(ready.records)
    fid = ready.messages[0][1].framework_id  # type: ignore[attr-defined]
    flush(batch)
    task_no = 0
    # Go on until just before a snapshot is due: the longest tail a restarted master
    # can meet (bounded, in case snapshots come by size first).
    snapshots = policy.every <= records
    while written < records or (
            snapshots and written < 2 * records
            and zk_log.records_since_snapshot < policy.every * 0.9
            and zk_log.bytes_since_snapshot < policy.max_bytes * 0.9):
        now += 0.01
        turn = core.tick(now)
        statuses: list[TaskStatus] = []
        for _, msg, _ in turn.messages:
            if not isinstance(msg, Offers):
                continue
            for offer in msg.offers:
                tasks = []
                for _ in range(8):
                    task_no += 1
                    tasks.append(TaskInfo(task_id=f"task-{task_no:07d}", agent_id=offer.agent_id,
                                          resources="cpus:0.5;mem:256",
                                          command="sleep 1", env={"TOKEN": "x" * 32}))
                ready = core.handle(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                                               tasks=tasks), uuid.uuid4().hex, now)
                turn.records.extend(ready.records)
                for task in tasks:
                    for state in ("TASK_RUNNING", "TASK_FINISHED"):
                        statuses.append(TaskStatus(task_id=task.task_id, framework_id=fid,
                                                   agent_id=offer.agent_id, state=state,
                                                   uuid=uuid.uuid4().hex, timestamp=now))
        for status in statuses:
            ready = core.handle(peers[status.agent_id], StatusUpdate(status=status), "", now)
            turn.records.extend(ready.records)
            ready = core.handle(FW, Acknowledge(framework_id=fid, agent_id=status.agent_id,
                                                task_id=status.task_id, uuid=status.uuid),
                                "", now)
            turn.records.extend(ready.records)
        flush(turn)
    return time.monotonic() - started


def restart(hosts: str, path: str) -> dict[str, float]:
    """What a restarted master does before it stands by; seconds per phase."""
    t0 = time.monotonic()
    client = KazooClient(hosts=hosts, timeout=5.0)
    client.start(10)
    t1 = time.monotonic()
    zk_log = ZooKeeperLog(client, path)
    recovered = zk_log.recover()
    t2 = time.monotonic()
    state = state_from(recovered.snapshot, recovered.records)
    t3 = time.monotonic()
    Contender(client, path, "bench").join()
    t4 = time.monotonic()
    client.stop()
    client.close()
    return {"connect": t1 - t0, "read": t2 - t1, "replay": t3 - t2, "join_total": t4 - t0,
            "tail_records": float(len(recovered.records)), "tasks": float(len(state.completed))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default="10000,50000,100000")
    parser.add_argument("--snapshot-every", type=int, default=SnapshotPolicy().every)
    parser.add_argument("--keep", default="", help="put ZooKeeper's files here (kept)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sizes = [int(n) for n in args.records.split(",")]
    policies = {"snapshots": SnapshotPolicy(every=args.snapshot_every),
                "no_snapshot": SnapshotPolicy(every=10**12, max_bytes=10**15)}
    results: dict[tuple[int, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        ensemble = Ensemble(Path(args.keep or tmp) / "zk", size=1).start()
        writer = KazooClient(hosts=ensemble.hosts, timeout=5.0)
        writer.start(10)
        try:
            for size in sizes:
                for name, policy in policies.items():
                    path = f"/bench-{name}-{size}"
                    took = write_log(writer, path, size, policy)
                    runs = [restart(ensemble.hosts, path) for _ in range(3)]
                    best = min(runs, key=lambda r: r["join_total"])
                    results[(size, name)] = best
                    print(f"records={size} policy={name} (written in {took:.1f}s): "
                          f"connect {best['connect']:.3f}s read {best['read']:.3f}s "
                          f"replay {best['replay']:.3f}s -> joined after "
                          f"{best['join_total']:.3f}s (tail {int(best['tail_records'])} "
                          f"records, {int(best['tasks'])} tasks known)", flush=True)
        finally:
            writer.stop()
            writer.close()
            ensemble.stop()
    largest = max(sizes)
    print(f"records={largest} snapshot_every={args.snapshot_every} "
          f"join_s={results[(largest, 'snapshots')]['join_total']:.3f} "
          f"no_snapshot_join_s={results[(largest, 'no_snapshot')]['join_total']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
