"""End-to-end launch benchmark: how fast does the cluster run many short tasks?

Starts a real master and agents (separate processes, loopback, a temporary work dir),
then a framework (SDK, in this process) that launches ``--tasks`` copies of ``true``
as fast as offers allow. Prints throughput (tasks/s from the first launch to the last
terminal update) and offer-to-RUNNING latency percentiles, split into where that time
went (waiting for and making the start, the agent noticing it, the update's way to the
framework: see :func:`stages`), where the CPU time went
(master, agents, their launchers, the supervisors and tasks the launchers reaped, this
process: on a small host a burst is CPU-bound, and this says whose), how closely the
tasks started in the order they were offered, then the command to reproduce. Nothing
here asserts: figures are for humans to compare.

    python tools/bench_launch.py [--tasks 2000] [--agents 2] [--no-fsync] [--zk] [--auth]

``--auth`` also runs the single master with keys (CurveZMQ on every socket, principals
from the handshake) and prints its throughput against the run without, in one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mesos_zmq.protocol import FrameworkInfo, Offer, TaskInfo, TaskStatus  # noqa: E402
from mesos_zmq.resources import Resources  # noqa: E402
from mesos_zmq.scheduler import Scheduler, SchedulerDriver  # noqa: E402
from mesos_zmq.tasks import TERMINAL  # noqa: E402
from mesos_zmq.testing.zookeeper import Ensemble  # noqa: E402
from tests.cluster import Cluster  # noqa: E402

TASK_RES = Resources.parse("cpus:0.01;mem:1")


class Launcher(Scheduler):
    def __init__(self, total: int) -> None:
        self.total = total
        self.launched = 0
        self.offer_seen: dict[str, float] = {}
        self.running_at: dict[str, float] = {}
        #: per task, on the wall clock: when the framework saw its offer, when its
        #: agent made the RUNNING update (the update's timestamp), when it arrived
        self.offer_wall: dict[str, float] = {}
        self.update_wall: dict[str, tuple[float, float]] = {}
        #: when each task's supervisor recorded it started (wall clock), read at the end
        self.started: dict[str, float] = {}
        self.ended: dict[str, str] = {}
        #: why tasks did not finish: message -> count
        self.failures: dict[str, int] = {}
        self.first_launch = 0.0
        self.last_end = 0.0
        self.done = threading.Event()
        #: CPU seconds by role, measured as the run ends (empty where /proc is missing)
        self.cpu: dict[str, float] = {}
        #: how far the start order strayed from the offer order (see start_order)
        self.order: tuple[int, int, int] = (0, 0, 0)
        #: what creating a file in the work dir cost just before the run, in ms
        self.file_ms = 0.0

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        now = time.perf_counter()
        wall = time.time()
        for offer in offers:
            left = Resources.parse(offer.resources)
            tasks: list[TaskInfo] = []
            while self.launched < self.total and left.contains(TASK_RES):
                task_id = f"t{self.launched:06d}"
                self.launched += 1
                left = left - TASK_RES
                self.offer_seen[task_id] = now
                self.offer_wall[task_id] = wall
                tasks.append(TaskInfo(task_id=task_id, agent_id=offer.agent_id,
                                      resources=str(TASK_RES), command="true"))
            if tasks:
                if not self.first_launch:
                    self.first_launch = now
                driver.launch_tasks([offer.offer_id], tasks, refuse_seconds=0)
            else:
                driver.decline_offer(offer.offer_id, refuse_seconds=60)
        if self.launched >= self.total:
            driver.suppress_offers()

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        now = time.perf_counter()
        if status.state == "TASK_RUNNING":
            self.running_at.setdefault(status.task_id, now)
            self.update_wall.setdefault(status.task_id, (status.timestamp, time.time()))
        elif status.state in TERMINAL and status.task_id not in self.ended:
            self.ended[status.task_id] = status.state
            if status.state != "TASK_FINISHED":
                why = f"{status.state} {status.reason}: {status.message[:120]}"
                self.failures[why] = self.failures.get(why, 0) + 1
            self.last_end = now
            if len(self.ended) >= self.total:
                self.done.set()


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User+system CPU seconds of a live process: its own, and its reaped children's."""
    with open(f"/proc/{pid}/stat") as handle:
        data = handle.read()
    fields = data[data.rindex(")") + 2:].split()
    tick = os.sysconf("SC_CLK_TCK")
    return ((int(fields[11]) + int(fields[12])) / tick,
            (int(fields[13]) + int(fields[14])) / tick)


def cpu_by_role(cluster: Cluster, framework: float) -> dict[str, float]:
    """Where the CPU time of a run went: each agent's launcher is its child, and the
    supervisors (with their tasks) are the launcher's reaped children."""
    cpu = {"master": 0.0, "agents": 0.0, "launchers": 0.0, "supervisors and tasks": 0.0,
           "framework": framework}
    try:
        for proc in cluster.procs:
            if not proc.alive():
                continue
            own, _ = cpu_seconds(proc.pid)
            role = "agents" if proc.name.startswith("agent") else "master"
            cpu[role] += own
            if role != "agents":
                continue
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as handle:
                for child in handle.read().split():
                    own, reaped = cpu_seconds(int(child))
                    cpu["launchers"] += own
                    cpu["supervisors and tasks"] += reaped
    except (OSError, ValueError):
        return {}
    return cpu


def started_times(root: Path, agents: int) -> list[dict[str, float]]:
    """Per agent: when each task's supervisor recorded it ``started`` (wall clock), by
    task id."""
    found: list[dict[str, float]] = []
    for i in range(agents):
        started: dict[str, float] = {}
        for path in (root / f"agent{i}" / "meta" / "events").glob("*/*"):
            for line in path.read_text().splitlines():
                event = json.loads(line)
                if event.get("event") == "started":
                    started[path.name] = event["time"]
        found.append(started)
    return found


def start_order(started_by_agent: list[dict[str, float]]) -> tuple[int, int, int]:
    """How the tasks' start order (each task's ``started`` event, as its supervisor
    recorded it) compares with the order they were offered in, per agent (task ids
    count up in offer order): (tasks seen, neighbours in offer order that started the
    other way round, most places a task started behind its place in the offer order)."""
    seen = inverted = behind = 0
    for by_task in started_by_agent:
        started = list(by_task.items())
        offered = sorted(started)
        times = [t for _, t in offered]
        inverted += sum(1 for a, b in itertools.pairwise(times) if b < a)
        rank = {name: n for n, (name, _) in enumerate(sorted(started, key=lambda s: s[1]))}
        behind = max([behind, *(rank[name] - n for n, (name, _) in enumerate(offered))])
        seen += len(started)
    return seen, inverted, behind


def stages(scheduler: Launcher) -> dict[str, tuple[float, float]]:
    """Where offer-to-RUNNING went, as (p50, p99) in ms, on the wall clock: from the
    offer to the ``started`` event (the queue to start, then the start), from there to
    the agent's RUNNING update (the agent noticing the event: a notification, or its
    once-a-second look at every task when one was lost), and from the update to the
    framework (the agent's checkpoint and send, the master). Tasks with all three."""
    parts: dict[str, list[float]] = {"offer to started": [], "started to update": [],
                                     "update to framework": []}
    for task, started in scheduler.started.items():
        offered = scheduler.offer_wall.get(task)
        update = scheduler.update_wall.get(task)
        if offered is None or update is None:
            continue
        made, seen = update
        parts["offer to started"].append((started - offered) * 1000)
        parts["started to update"].append((made - started) * 1000)
        parts["update to framework"].append((seen - made) * 1000)
    return {name: (statistics.median(v), percentile(v, 99))
            for name, v in parts.items() if v}


def settle(cluster: Cluster, timeout: float = 5.0) -> None:
    """Wait (a few seconds at most) until no agent's launcher has a child left: a
    supervisor's CPU time counts only once it is reaped, and a shared supervisor may
    outlive the last update of its tasks by a moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        try:
            for proc in cluster.procs:
                if not proc.alive() or not proc.name.startswith("agent"):
                    continue
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as handle:
                    for launcher in handle.read().split():
                        with open(f"/proc/{launcher}/task/{launcher}/children") as kids:
                            busy = busy or bool(kids.read().split())
        except OSError:
            return
        if not busy:
            return
        time.sleep(0.05)


def file_cost(directory: Path, count: int = 200) -> float:
    """What creating a file in ``directory`` costs now, in ms (the files stay, until the
    run's work dir is removed).

    Why: a task's start creates four inodes (its events file, sandbox, stdout, stderr),
    and on ext4 without a journal (this host's disk) each creation first skips every
    inode of its group freed in the last minute or more: from 0.02 ms to 0.6 ms of CPU
    a file, after another run removed its work dir or tests churned /tmp. That moves
    this benchmark's figures by half, invisibly unless printed."""
    probe = directory / "file-cost-probe"
    probe.mkdir()
    began = time.perf_counter()
    for n in range(count):
        os.close(os.open(probe / str(n), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    return (time.perf_counter() - began) / count * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def measure(root: Path, args: argparse.Namespace, zk_hosts: str | None,
            secure: bool = False) -> Launcher | None:
    """One run: a fresh cluster, ``args.tasks`` tasks; None on timeout."""
    master_args = ["--allocation-interval", "0.1"] + (["--no-fsync"] if args.no_fsync else [])
    if zk_hosts is not None:
        master_args += ["--zk", f"zk://{zk_hosts}/bench-{root.name}", "--zk-session-timeout",
                        "2"]
    root.mkdir(parents=True, exist_ok=True)
    file_ms = file_cost(root)
    cluster = Cluster(root, master_args=master_args, secure=secure)
    try:
        cluster.start_master()
        if zk_hosts is not None:
            cluster.master_url = f"zk://{zk_hosts}/bench-{root.name}"
        for _ in range(args.agents):
            cluster.start_agent(resources="cpus:1000;mem:1000000;disk:10000")
        cluster.wait_agents(args.agents)
        scheduler = Launcher(args.tasks)
        scheduler.file_ms = file_ms
        keys = cluster.keys.client_keys("framework") if cluster.keys else None
        driver = SchedulerDriver(scheduler, FrameworkInfo(name="bench-launch"),
                                 cluster.master_url, keys=keys)
        before = os.times()
        driver.start()
        finished = scheduler.done.wait(args.timeout)
        after = os.times()
        settle(cluster)
        scheduler.cpu = cpu_by_role(cluster, after.user + after.system
                                    - before.user - before.system)
        if finished:
            by_agent = started_times(root, args.agents)
            scheduler.order = start_order(by_agent)
            scheduler.started = {t: at for d in by_agent for t, at in d.items()}
        driver.stop()
        driver.join(10)
    finally:
        cluster.stop()
    if not finished:
        print(f"timed out: {len(scheduler.ended)}/{args.tasks} tasks ended", file=sys.stderr)
        return None
    return scheduler


def report(label: str, scheduler: Launcher, tasks: int) -> float:
    elapsed = scheduler.last_end - scheduler.first_launch
    latencies = [
        (scheduler.running_at[t] - scheduler.offer_seen[t]) * 1000
        for t in scheduler.running_at if t in scheduler.offer_seen
    ]
    states: dict[str, int] = {}
    for state in scheduler.ended.values():
        states[state] = states.get(state, 0) + 1
    rate = tasks / elapsed
    print(f"[{label}] final states {states}")
    for why, count in sorted(scheduler.failures.items(), key=lambda kv: -kv[1])[:3]:
        print(f"[{label}] {count} x {why}")
    print(f"[{label}] throughput: {rate:.0f} tasks/s ({elapsed:.2f} s)")
    if latencies:
        print(f"[{label}] offer-to-RUNNING latency: p50 {statistics.median(latencies):.1f} ms, "
              f"p99 {percentile(latencies, 99):.1f} ms")
    split = ", ".join(f"{name} {p50:.0f}/{p99:.0f}"
                      for name, (p50, p99) in stages(scheduler).items())
    if split:
        print(f"[{label}] of which (p50/p99 ms): {split}")
    seen, inverted, behind = scheduler.order
    if seen:
        print(f"[{label}] start order: {inverted} of {seen} tasks started before the task "
              f"offered just ahead of them; at most {behind} places late")
    if scheduler.cpu:
        spent = ", ".join(f"{role} {seconds:.1f}" for role, seconds in scheduler.cpu.items())
        per_task = scheduler.cpu["supervisors and tasks"] / tasks * 1000
        print(f"[{label}] cpu seconds: {spent} ({per_task:.1f} ms a task in its supervisor)")
    print(f"[{label}] creating a file in the work dir cost {scheduler.file_ms:.3f} ms "
          "just before the run (see file_cost)")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--no-fsync", action="store_true", help="skip fsync of the master log")
    parser.add_argument("--zk", action="store_true",
                        help="also run with replicated masters (a local ZooKeeper) and "
                             "compare with the single master in the same run")
    parser.add_argument("--auth", action="store_true",
                        help="also run with keys (CurveZMQ, principals) and compare with "
                             "the run without in the same invocation")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    print(f"tasks: {args.tasks} `true` tasks on {args.agents} agents")
    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        single = measure(Path(tmp) / "single", args, None)
        if single is None:
            return 1
        single_rate = report("single master, directory log", single, args.tasks)
        if args.zk:
            ensemble = Ensemble(Path(tmp) / "zk", size=1).start()
            try:
                replicated = measure(Path(tmp) / "replicated", args, ensemble.hosts)
            finally:
                ensemble.stop()
            if replicated is None:
                return 1
            zk_rate = report("replicated masters, ZooKeeper log", replicated, args.tasks)
            print(f"ZooKeeper / single throughput: {zk_rate / single_rate:.2f}")
        if args.auth:
            secured = measure(Path(tmp) / "auth", args, None, secure=True)
            if secured is None:
                return 1
            auth_rate = report("single master with keys (CurveZMQ)", secured, args.tasks)
            print(f"with keys / without throughput: {auth_rate / single_rate:.2f}")
    flags = f" --tasks {args.tasks} --agents {args.agents}" + (
        " --no-fsync" if args.no_fsync else "") + (" --zk" if args.zk else "") + (
        " --auth" if args.auth else "")
    print(f"reproduce: python tools/bench_launch.py{flags}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
