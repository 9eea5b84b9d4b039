"""Chaos run: kill the leading master again and again while work runs; check nothing is lost.

Starts a ZooKeeper ensemble, replicated masters (restarted when they exit, as systemd
would), agents, and a workload framework in this process that keeps launching short
tasks, holding some offers for a while so that some accepts land after a failover.
Then it kills the leader ``--kills`` times at random moments, lets the work drain and
checks, from the framework's own records and the master's final state:

* every launched task reached exactly one terminal state, and none was LOST;
* no task was launched twice (at most one RUNNING per task);
* every accept either launched its tasks or got an explicit answer (no silent drop);
* nothing is left allocated on any agent once the work is done.

    python tools/chaos.py --kills 20 [--signal KILL|TERM] [--session-timeout 1]

The last line reads ``kills=K lost=0 duplicated=0 dropped_accepts=0
cross_leader_accepts=N failover_p99=Xs``; the exit status is non-zero when an
invariant fails.
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mesos_zmq.detector import LeaderDetector
from mesos_zmq.protocol import FrameworkInfo, Offer, TaskInfo, TaskStatus
from mesos_zmq.resources import Resources
from mesos_zmq.scheduler import Scheduler, SchedulerDriver
from mesos_zmq.tasks import TERMINAL
from mesos_zmq.testing.zookeeper import Ensemble
from tests.cluster import Cluster, SupervisedMasters, wait_until

TASK = Resources.parse("cpus:0.1;mem:16")


@dataclass
class AcceptRecord:
    offer_id: str
    task_ids: list[str]
    leader_at_offer: str | None
    leader_at_accept: str | None


@dataclass
class Workload(Scheduler):
    """Launches short tasks forever (until told to stop) and records everything."""

    detector: LeaderDetector
    rng: random.Random
    launching: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0
    accepts: list[AcceptRecord] = field(default_factory=list)
    updates: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    last_message: float = 0.0
    held: list[tuple[float, Offer, str | None]] = field(default_factory=list)
    lost_reasons: dict[str, str] = field(default_factory=dict)

    def _touch(self) -> None:
        self.last_message = time.monotonic()

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        self._touch()
        leader = self.detector.current()
        for offer in offers:
            if not self.launching:
                driver.decline_offer(offer.offer_id, refuse_seconds=1)
            elif self.rng.random() < 0.3:
                # Hold it a while: a failover may happen before we accept it.
                self.held.append((time.monotonic() + self.rng.uniform(0.3, 1.5), offer, leader))
            else:
                self._accept(driver, offer, leader)

    def release_held(self, driver: SchedulerDriver) -> None:
        now = time.monotonic()
        due = [h for h in self.held if h[0] <= now]
        self.held = [h for h in self.held if h[0] > now]
        for _, offer, leader in due:
            if self.launching:
                self._accept(driver, offer, leader)
            else:
                driver.decline_offer(offer.offer_id, refuse_seconds=1)

    def _accept(self, driver: SchedulerDriver, offer: Offer, leader: str | None) -> None:
        left = Resources.parse(offer.resources)
        tasks = []
        while left.contains(TASK) and len(tasks) < 5:
            left = left - TASK
            with self.lock:
                self.counter += 1
                task_id = f"chaos-{self.counter:06d}"
                self.updates[task_id] = []
            tasks.append(TaskInfo(task_id=task_id, agent_id=offer.agent_id,
                                  resources=str(TASK), command="sleep 0.3"))
        if not tasks:
            driver.decline_offer(offer.offer_id, refuse_seconds=0)
            return
        self.accepts.append(AcceptRecord(offer.offer_id, [t.task_id for t in tasks], leader,
                                         self.detector.current()))
        driver.launch_tasks([offer.offer_id], tasks, refuse_seconds=0)

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        self._touch()
        self.held = [h for h in self.held if h[1].offer_id != offer_id]

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        self._touch()
        with self.lock:
            self.updates.setdefault(status.task_id, []).append(status.state)
            if status.state == "TASK_LOST":
                self.lost_reasons[status.task_id] = f"{status.reason}: {status.message}"

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.errors.append(message)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--signal", choices=("KILL", "TERM"), default="KILL")
    parser.add_argument("--session-timeout", type=float, default=1.0)
    parser.add_argument("--masters", type=int, default=3)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--zk-size", type=int, default=3, choices=(1, 3))
    parser.add_argument("--kill-zk-member", action="store_true",
                        help="also kill one ZooKeeper member half way through")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    sig = signal.SIGKILL if args.signal == "KILL" else signal.SIGTERM
    print(f"chaos: {args.kills} kills with SIG{args.signal}, session {args.session_timeout}s, "
          f"{args.masters} masters, {args.agents} agents, seed {seed}", flush=True)

    failures: list[str] = []
    failovers: list[float] = []
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        root = Path(tmp)
        ensemble = Ensemble(root / "zk", size=args.zk_size).start()
        zk_url = f"zk://{ensemble.hosts}/chaos"
        cluster = Cluster(root)
        masters = SupervisedMasters(cluster, zk_url, args.masters, args.session_timeout)
        detector = LeaderDetector(zk_url, session_timeout=2.0)
        workload = Workload(detector, rng)
        driver: SchedulerDriver | None = None
        try:
            detector.wait(60)
            cluster.master_url = zk_url
            for _ in range(args.agents):
                cluster.start_agent(resources="cpus:4;mem:1024")
            cluster.wait_agents(args.agents, timeout=60)
            driver = SchedulerDriver(workload, FrameworkInfo(name="chaos", failover_timeout=600),
                                     zk_url)
            driver.start()
            wait_until(lambda: workload.accepts, 30, what="first launches")
            stop_release = threading.Event()

            def pump() -> None:
                while not stop_release.is_set():
                    assert driver is not None
                    driver.call_soon(lambda: workload.release_held(driver))  # type: ignore[arg-type]
                    time.sleep(0.1)

            threading.Thread(target=pump, daemon=True).start()
            for k in range(args.kills):
                time.sleep(rng.uniform(1.5, 3.5))
                if args.kill_zk_member and k == args.kills // 2:
                    ensemble.servers[-1].kill()
                    print("killed one ZooKeeper member", flush=True)
                leader = detector.current()
                proc = masters.by_address(leader) if leader else None
                if proc is None or not proc.alive():
                    continue
                killed_at = time.monotonic()
                proc.send_signal(sig)
                wait_until(lambda old=leader: detector.current() not in (None, old), 30,
                           interval=0.01, what="a new leader")
                wait_until(lambda t=killed_at: workload.last_message > t, 30, interval=0.01,
                           what="the framework hearing from the new leader")
                failover = workload.last_message - killed_at
                failovers.append(failover)
                print(f"kill {k + 1}: new leader serving after {failover:.2f}s", flush=True)
            workload.launching = False
            stop_release.set()
            deadline = time.monotonic() + args.drain_timeout
            while time.monotonic() < deadline:
                with workload.lock:
                    pending = [t for t, u in workload.updates.items()
                               if not any(s in TERMINAL for s in u)]
                if not pending:
                    break
                time.sleep(0.5)
            time.sleep(2.0)  # let late duplicates show themselves
            state = cluster.state(timeout=10)
        finally:
            if driver is not None:
                driver.stop()
                driver.join(10)
            masters.stopping.set()
            detector.close()
            cluster.stop()
            ensemble.stop()

    with workload.lock:
        updates = dict(workload.updates)
    terminal = {t: [s for s in u if s in TERMINAL] for t, u in updates.items()}
    lost = sorted(t for t, u in terminal.items() if not u or "TASK_LOST" in u)
    multi = sorted(t for t, u in terminal.items() if len(u) > 1)
    duplicated = sorted(t for t, u in updates.items() if Counter(u)["TASK_RUNNING"] > 1)
    dropped = [a for a in workload.accepts if not any(updates.get(t) for t in a.task_ids)]
    cross = [a for a in workload.accepts
             if a.leader_at_offer and a.leader_at_accept
             and a.leader_at_offer != a.leader_at_accept
             and any("TASK_FINISHED" in updates.get(t, []) for t in a.task_ids)]
    if lost:
        failures.append(f"{len(lost)} tasks lost or without a terminal state: "
                        + ", ".join(f"{t} {updates[t]} {workload.lost_reasons.get(t, '')}"
                                    for t in lost[:5]))
    if multi:
        failures.append(f"{len(multi)} tasks with more than one terminal state: {multi[:5]}")
    if duplicated:
        failures.append(f"{len(duplicated)} tasks launched twice: {duplicated[:5]}")
    if dropped:
        failures.append(f"{len(dropped)} accepts silently dropped")
    busy = [a["id"] for a in state["agents"] if a["used_resources"]]
    if busy:
        failures.append(f"resources still used on agents {busy} after all work ended")
    finished = sum(1 for u in terminal.values() if u == ["TASK_FINISHED"])
    print(f"tasks launched={len(updates)} finished={finished} lost={len(lost)} "
          f"duplicated={len(duplicated)} accepts={len(workload.accepts)}")
    if failovers:
        print(f"failover (kill -> framework hears the new leader): "
              f"p50 {statistics.median(failovers):.2f}s p99 {percentile(failovers, 99):.2f}s "
              f"max {max(failovers):.2f}s")
    for failure in failures:
        print(f"INVARIANT FAILED: {failure}")
    print(f"reproduce: python tools/chaos.py --kills {args.kills} --signal {args.signal} "
          f"--session-timeout {args.session_timeout} --seed {seed}")
    p99 = percentile(failovers, 99) if failovers else 0.0
    print(f"kills={len(failovers)} lost={len(lost)} duplicated={len(duplicated)} "
          f"dropped_accepts={len(dropped)} cross_leader_accepts={len(cross)} "
          f"failover_p99={p99:.2f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
