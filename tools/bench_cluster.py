"""One master at scale: registration, idle cost, throughput, reads, memory, failover.

Starts a real master (its own process, loopback, a temporary work dir; ``--zk`` starts
a 3-node ZooKeeper ensemble and two masters), a fleet of simulated agents
(``tools/simulate_agents.py``: each its own socket, the real protocol) and a raw
framework in its own process that accepts every offer and acknowledges every update.
Then, in order:

1. registration: seconds until every agent is registered (from the fleet's start);
2. idle: the master's CPU (% of one core) with heartbeats only, and its RSS before and
   after (a connection's ZeroMQ memory grows with its first few hundred messages:
   ``--heartbeat-interval 0.2 --max-agent-heartbeats 0 --seconds 300`` shows where it
   settles);
3. churn: tasks/s from accept to the acknowledged TASK_FINISHED, with latencies;
4. reads (``--active`` long tasks first, 10 per agent by default): how long a full
   ``state`` takes to answer, and the framework's rate while reads run against its rate
   without them;
5. failover (``--zk``): SIGKILL the leader; seconds until every agent re-registered
   (each at its first re-registration with the new leader) and the framework was
   offered again; tasks lost. The ``--active`` long tasks run during it (filled here
   when the reads phase is skipped).

Nothing here asserts: it prints each phase's figures, the command to reproduce, and a
last line in ``key=value`` form.

    python tools/bench_cluster.py [--agents 10000] [--zk] [--seconds 15]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from datetime import datetime
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import zmq  # noqa: E402

from mesos_zmq.cli.client import request  # noqa: E402
from mesos_zmq.errors import MesosZmqError  # noqa: E402
from mesos_zmq.protocol import (  # noqa: E402
    Accept,
    Acknowledge,
    Decline,
    Envelope,
    Error,
    FrameworkInfo,
    GetState,
    GetTasks,
    Heartbeat,
    Message,
    Offer,
    Offers,
    Revive,
    State,
    StatusUpdate,
    Subscribe,
    Subscribed,
    Suppress,
    TaskInfo,
    Tasks,
    batches,
    decode,
    decode_frame,
    encode,
)
from mesos_zmq.resources import Resources  # noqa: E402
from mesos_zmq.transport import normalize_address  # noqa: E402
from tools.simulate_agents import Config, Fleet  # noqa: E402

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE"}
SHORT = Resources.parse("cpus:0.1;mem:16")
LONG = Resources.parse("cpus:0.25;mem:32")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- framework


class _Framework:
    """A raw framework: one DEALER, no SDK, as cheap per task as Python allows."""

    def __init__(self, master: str, report: Any, commands: Any, inflight: int) -> None:
        self.master = master
        self.inflight = inflight
        self.held: deque[Offer] = deque()
        self.report = report
        self.commands = commands
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sock = self._socket(master)
        self.framework_id = ""
        self.interval = 1.0
        self.mode = "idle"
        self.target_long = 0
        self.counts = {"launched": 0, "long_launched": 0, "terminal": 0, "finished": 0,
                       "lost": 0, "offers": 0, "accepts": 0, "declines": 0, "errors": 0,
                       "subscribed": 0, "long_running": 0}
        self.long_running: set[str] = set()
        self.accepted_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.last_offer_at = 0.0
        #: wall time of the first offer since the last reconnection (0: none yet)
        self.first_offer_at = 0.0
        self.seq = 0
        #: what a turn of the loop has to send, in batch frames at its end (as the SDK's
        #: driver sends: the acknowledgements of a turn's updates go as one frame)
        self.outbox: list[bytes] = []

    def _socket(self, master: str) -> zmq.Socket[bytes]:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, -1)
        sock.connect(normalize_address(master))
        return sock

    def send(self, msg: Any) -> None:
        self.outbox.append(encode(msg, uuid.uuid4().hex[:12]))

    def flush(self) -> None:
        for frame in batches(self.outbox):
            self.sock.send(frame)
        self.outbox = []

    def subscribe(self) -> None:
        info = FrameworkInfo(name="bench", roles=["*"], framework_id=self.framework_id,
                             failover_timeout=3600.0)
        self.send(Subscribe(framework=info))

    def on_offers(self, msg: Offers) -> None:
        self.last_offer_at = time.time()
        if not self.first_offer_at:
            self.first_offer_at = self.last_offer_at
        self.counts["offers"] += len(msg.offers)
        self.held.extend(msg.offers)

    def launch(self, now: float) -> None:
        """Use held offers while work may start: long tasks up to their target, short
        ones while fewer than ``inflight`` are unfinished (a framework with a queue of
        work; accepting everything at once measures only the master's backlog)."""
        while self.held:
            long_left = self.target_long - self.counts["long_launched"] \
                if self.mode == "fill" else 0
            room = self.inflight - len(self.accepted_at)
            if self.mode == "idle" or (long_left <= 0 and room <= 0):
                if self.mode == "idle":
                    offers = [o.offer_id for o in self.held]
                    self.held.clear()
                    self.counts["declines"] += len(offers)
                    self.send(Decline(framework_id=self.framework_id, offer_ids=offers,
                                      refuse_seconds=3600))
                return
            offer = self.held.popleft()
            left = Resources.parse(offer.resources)
            tasks = []
            while long_left > 0 or room > 0:
                long = long_left > 0
                need = LONG if long else SHORT
                if not left.contains(need):
                    break
                left = left - need
                self.seq += 1
                task_id = f"{'L' if long else 's'}{self.seq}"
                env = {"SIM_SECONDS": "-1"} if long else {"SIM_SECONDS": "0"}
                tasks.append(TaskInfo(task_id=task_id, agent_id=offer.agent_id,
                                      resources=str(need), command="true", env=env))
                self.counts["launched"] += 1
                if long:
                    long_left -= 1
                    self.counts["long_launched"] += 1
                else:
                    room -= 1
                    self.accepted_at[task_id] = now
            self.counts["accepts"] += 1
            self.send(Accept(framework_id=self.framework_id, offer_ids=[offer.offer_id],
                             tasks=tasks, refuse_seconds=0))

    def on_update(self, msg: StatusUpdate, now: float) -> None:
        status = msg.status
        if status.uuid:
            self.send(Acknowledge(framework_id=self.framework_id, agent_id=status.agent_id,
                                  task_id=status.task_id, uuid=status.uuid))
        if status.state == "TASK_RUNNING" and status.task_id.startswith("L") \
                and status.task_id not in self.long_running:
            self.long_running.add(status.task_id)  # a retried update counts once
            self.counts["long_running"] += 1
        if status.state in TERMINAL:
            self.counts["terminal"] += 1
            if status.state == "TASK_FINISHED":
                self.counts["finished"] += 1
            else:
                self.counts["lost"] += 1
            started = self.accepted_at.pop(status.task_id, None)
            if started is not None:
                self.latencies.append(now - started)

    def command(self, cmd: dict[str, Any]) -> None:
        old = self.mode
        self.mode = cmd.get("mode", self.mode)
        self.target_long = int(cmd.get("long", self.target_long))
        if cmd.get("reconnect"):
            self.flush()  # the old connection's, as if sent at once
            self.sock.close(linger=0)
            self.sock = self._socket(cmd["reconnect"])
            self.first_offer_at = 0.0
            self.subscribe()
        if self.mode != "idle" and old == "idle" and self.framework_id:
            self.send(Revive(framework_id=self.framework_id))
        if self.mode == "idle" and self.framework_id:
            self.send(Suppress(framework_id=self.framework_id))
        if cmd.get("latencies"):
            lat = sorted(self.latencies)
            self.latencies = []
            self.report.put(("latencies", lat))

    def run(self, stop: EventType) -> None:
        self.subscribe()
        next_beat = next_report = time.monotonic()
        while not stop.is_set():
            if self.sock.poll(20):
                for _ in range(2000):
                    try:
                        frame = self.sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    now = time.monotonic()
                    for item in decode_frame(frame, max_bytes=1 << 30):
                        msg = item.message if isinstance(item, Envelope) else None
                        if isinstance(msg, Offers):
                            self.on_offers(msg)
                        elif isinstance(msg, StatusUpdate):
                            self.on_update(msg, now)
                        elif isinstance(msg, Subscribed):
                            self.framework_id = msg.framework_id
                            self.interval = msg.heartbeat_interval
                            self.counts["subscribed"] += 1
                        elif isinstance(msg, Error) or msg is None:
                            self.counts["errors"] += 1
            now = time.monotonic()
            try:
                while True:
                    self.command(self.commands.get_nowait())
            except queue.Empty:
                pass
            if self.framework_id:
                self.launch(now)
            if now >= next_beat and self.framework_id:
                next_beat = now + self.interval
                self.send(Heartbeat())
            self.flush()
            if now >= next_report:
                next_report = now + 0.25
                self.report.put(("counts", {**self.counts, "last_offer_at": self.last_offer_at,
                                            "first_offer_at": self.first_offer_at,
                                            "time": time.time()}))
        self.sock.close(linger=0)
        self.context.term()


def _framework_main(master: str, report: Any, commands: Any, stop: EventType,
                    inflight: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.set_threshold(50_000, 10, 10)  # as the master's: less of the shared cores
    _Framework(master, report, commands, inflight).run(stop)


class FrameworkProc:
    def __init__(self, master: str, inflight: int) -> None:
        ctx = mp.get_context("spawn")
        self.report: Any = ctx.Queue()
        self.commands: Any = ctx.Queue()
        self.stop_event = ctx.Event()
        self.proc = ctx.Process(target=_framework_main, daemon=True, name="bench-framework",
                                args=(master, self.report, self.commands, self.stop_event,
                                      inflight))
        self.counts: dict[str, Any] = {}
        self.latencies: list[float] | None = None
        self.proc.start()

    def poll(self) -> dict[str, Any]:
        while True:
            try:
                kind, data = self.report.get_nowait()
            except queue.Empty:
                return self.counts
            if kind == "counts":
                self.counts = data
            else:
                self.latencies = data

    def mode(self, mode: str, **extra: Any) -> None:
        self.commands.put({"mode": mode, **extra})

    def rate(self, seconds: float) -> float:
        """Terminal updates acknowledged per second over ``seconds`` from now."""
        first = dict(self.poll())
        start = time.monotonic()
        time.sleep(seconds)
        last = self.poll()
        return (last.get("terminal", 0) - first.get("terminal", 0)) / (time.monotonic() - start)

    def take_latencies(self) -> list[float]:
        self.latencies = None
        self.commands.put({"latencies": True})
        deadline = time.monotonic() + 10
        while self.latencies is None and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.05)
        return self.latencies or []

    def stop(self) -> None:
        self.stop_event.set()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


# --------------------------------------------------------------------------- master


class Master:
    def __init__(self, root: Path, port: int, extra: list[str], name: str = "master",
                 log_level: str = "warning") -> None:
        self.address = f"tcp://127.0.0.1:{port}"
        self.log_path = root / f"{name}.log"
        self.log = self.log_path.open("w")
        args = [sys.executable, "-m", "mesos_zmq", "master", "--port", str(port),
                "--work-dir", str(root / name), "--log-level", log_level, *extra]
        self.popen = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        self.process = psutil.Process(self.popen.pid)

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return float(self.process.memory_info().rss) / 2**20

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()


def read_state(address: str, timeout: float = 60.0, request: Message | None = None,
               count: bool = True) -> tuple[float, int, int]:
    """Seconds a full ``get_state`` (or ``request``) takes to come back, its size, and
    the tasks it holds (``count`` False: not counted, -1; decoding 20 MB costs this
    process 0.3-0.5 s of CPU, which on a small host competes with the framework whose
    rate is being measured, as an operator's CLI on another machine would not)."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, -1)
    sock.connect(address)
    try:
        time.sleep(0.05)  # connected before the clock starts
        started = time.monotonic()
        sock.send(encode(request or GetState(), "read"))
        if not sock.poll(int(timeout * 1000)):
            return float("nan"), 0, 0
        frame = sock.recv()
        seconds = time.monotonic() - started
        if not count:
            return seconds, len(frame), -1
        msg = decode(frame, max_bytes=1 << 30).message
        tasks = len(msg.state.get("tasks", []) if isinstance(msg, State) else
                    msg.tasks if isinstance(msg, Tasks) else [])
        return seconds, len(frame), tasks
    finally:
        sock.close(linger=0)
        context.term()


def master_counters(address: str) -> dict[str, int]:
    """The master's counters (a state summary without tasks); empty if it did not say."""
    try:
        reply = request(address, GetState(tasks_limit=0), timeout=30.0, keys=None)
    except MesosZmqError:
        return {}
    counters = reply.state.get("counters", {}) if isinstance(reply, State) else {}
    return {str(k): v for k, v in counters.items() if isinstance(v, int)}


def wait_master(address: str, timeout: float = 30.0) -> None:
    # Asked with a page of one task, not a state read: a state read starts the master's
    # read cache, whose upkeep (a few % of the master under churn, for a minute after
    # the last state read) is measured in the reads phase, not before it.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seconds, _, _ = read_state(address, timeout=1.0, request=GetTasks(limit=1))
        if seconds == seconds:  # not NaN
            return
    raise SystemExit(f"the master at {address} did not answer in {timeout:g}s")


def cpu_percent(master: Master, seconds: float) -> float:
    before, start = master.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (master.cpu_seconds() - before) / (time.monotonic() - start)


def cpu_of(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each role's processes, and by the
    whole machine (``machine``: what else competed for its cores shows up there)."""
    seconds: dict[str, float] = {}
    for role, role_pids in pids.items():
        total = 0.0
        for pid in role_pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        seconds[role] = total
    machine = psutil.cpu_times()
    seconds["machine"] = machine.user + machine.system + machine.nice
    return seconds


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of one process (ZeroMQ names its I/O thread
    ZMQbg/IO/0; Python threads show as the interpreter's name)."""
    seconds: dict[str, float] = {}
    try:
        threads = psutil.Process(pid).threads()
    except psutil.Error:
        return seconds
    for thread in threads:
        try:
            name = Path(f"/proc/{pid}/task/{thread.id}/comm").read_text().strip()
        except OSError:
            continue
        name = "main" if thread.id == pid else name
        seconds[name] = seconds.get(name, 0.0) + thread.user_time + thread.system_time
    return seconds


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * q))]


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=4, help="simulated agent processes")
    parser.add_argument("--active", type=int, default=None,
                        help="long tasks held during the read and failover phases "
                             "(10 per agent)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measure")
    parser.add_argument("--inflight", type=int, default=5000,
                        help="short tasks the framework keeps unfinished at most")
    parser.add_argument("--zk", action="store_true",
                        help="two masters on a 3-node ZooKeeper ensemble, then a failover")
    parser.add_argument("--zk-session", type=float, default=4.0)
    parser.add_argument("--heartbeat-interval", type=float, default=None)
    parser.add_argument("--max-agent-heartbeats", type=float, default=None,
                        help="the master's cap on agents' beats a second (0: none); with a "
                             "short --heartbeat-interval and a long --seconds the idle "
                             "phase shows the RSS a connection reaches once its first few "
                             "hundred messages have passed (see bench_zmq_memory.py)")
    parser.add_argument("--sim-nice", type=int, default=0,
                        help="nice value added to the simulated agents: they stand in for "
                             "10,000 other hosts; 10 leaves the master the cores it would "
                             "have in a real cluster (0: all at the same priority)")
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument("--skip", default="", help="phases to skip: churn,reads,failover")
    parser.add_argument("--master-log-level", default="warning",
                        help="info shows where a takeover's time goes (master*.log in the "
                             "work dir printed first)")
    args = parser.parse_args()
    # stopped with SIGTERM, it still stops what it started (the finally below)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    skip = set(filter(None, args.skip.split(",")))
    active = 10 * args.agents if args.active is None else args.active
    figures: dict[str, Any] = {"agents": args.agents, "sim_nice": args.sim_nice}
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    extra = ["--no-fsync"] if args.no_fsync else []
    if args.heartbeat_interval is not None:
        extra += ["--heartbeat-interval", str(args.heartbeat_interval)]
    if args.max_agent_heartbeats is not None:
        extra += ["--max-agent-heartbeats", str(args.max_agent_heartbeats)]
    masters: list[Master] = []
    ensemble = None
    fleet = framework = None
    try:
        if args.zk:
            from mesos_zmq.testing.zookeeper import Ensemble

            ensemble = Ensemble(root / "zk", size=3).start()
            url = f"zk://{ensemble.hosts}/bench"
            extra += ["--zk", url, "--zk-session-timeout", str(args.zk_session)]
            masters = [Master(root, free_port(), extra, f"master{i}", args.master_log_level)
                       for i in range(2)]
            target = url
            leader = leader_of(masters, url)
        else:
            masters = [Master(root, free_port(), extra, log_level=args.master_log_level)]
            target = masters[0].address
            wait_master(target)
            leader = masters[0]
        print(f"master pid={leader.popen.pid} address={leader.address} work={root}", flush=True)

        # 1. registration
        fleet = Fleet(Config(master=target, agents=args.agents, processes=args.processes,
                             nice=args.sim_nice))
        fleet.start()
        took = fleet.wait("registered", args.agents, timeout=max(120.0, args.agents / 100),
                          at="last_registered_ms")
        totals = fleet.totals()
        figures["register_s"] = round(took, 2) if took is not None else "none"
        figures["register_attempts"] = totals["register_sent"]
        figures["reconnects_during_register"] = totals["reconnects"]
        print(f"registration: {figures['register_s']} s for {args.agents} agents "
              f"({totals['register_sent']} registration messages, {totals['reconnects']} "
              "reconnects)", flush=True)

        # 2. idle
        time.sleep(2)
        # ZeroMQ's share of a connection grows with its first few hundred messages
        # (bench_zmq_memory.py): the RSS now, next to the one after the idle phase,
        # shows how much of that climb the idle phase's beats made
        figures["registered_rss_mb"] = round(leader.rss_mb())
        beats_before = fleet.totals()["heartbeats_sent"]
        figures["idle_cpu_pct"] = round(cpu_percent(leader, args.seconds), 1)
        # what the agents send (the master's --max-agent-heartbeats sets their interval)
        beats = fleet.totals()["heartbeats_sent"] - beats_before
        figures["idle_agent_beats_per_s"] = round(beats / args.seconds)
        figures["idle_beats_per_agent"] = round(beats / args.agents)
        figures["idle_rss_mb"] = round(leader.rss_mb())
        figures["agents_lost_idle"] = fleet.totals()["reconnects"]
        print(f"idle: master {figures['idle_cpu_pct']} % of a core "
              f"({figures['idle_agent_beats_per_s']} agent heartbeats a second, "
              f"{figures['idle_beats_per_agent']} an agent), RSS "
              f"{figures['registered_rss_mb']} MB before, {figures['idle_rss_mb']} MB after; "
              f"{figures['agents_lost_idle']} agents reconnected",
              flush=True)

        # the raw framework speaks to one master (told of a failover by this script)
        framework = FrameworkProc(leader.address, args.inflight)
        # 3. churn
        if "churn" not in skip:
            framework.mode("churn")
            time.sleep(3)
            framework.take_latencies()
            # whose CPU the churn takes (on a small machine all roles share its cores)
            roles = {"master": [leader.popen.pid], "agents_sim": fleet.pids,
                     "framework": [framework.proc.pid] if framework.proc.pid else []}
            if ensemble is not None:
                roles["zookeeper"] = [srv.process.pid for srv in ensemble.servers
                                      if srv.process is not None]
                roles["standby"] = [m.popen.pid for m in masters if m is not leader]
            cpu_before, started = cpu_of(roles), time.monotonic()
            rate = framework.rate(args.seconds)
            cpu_after, spent = cpu_of(roles), time.monotonic() - started
            lat = framework.take_latencies()
            cpu = cpu_percent(leader, 2)
            shares = {role: round(100 * (cpu_after[role] - cpu_before[role]) / spent)
                      for role in cpu_after}
            figures.update({f"churn_cpu_{role}_pct": v for role, v in shares.items()})
            figures["churn_tasks_per_s"] = round(rate)
            figures["churn_p50_s"] = round(pct(lat, 0.5), 3)
            figures["churn_p95_s"] = round(pct(lat, 0.95), 3)
            figures["churn_master_cpu_pct"] = round(cpu)
            figures["update_retries"] = fleet.totals()["update_retries"]
            print(f"churn: {rate:.0f} tasks/s accept->FINISHED acked; latency p50 "
                  f"{figures['churn_p50_s']} s p95 {figures['churn_p95_s']} s; master "
                  f"{cpu:.0f} % CPU; {figures['update_retries']} update retries; CPU % of a "
                  "core by role: " + ", ".join(f"{r} {v}" for r, v in shares.items()),
                  flush=True)

        # 4. reads with many active tasks
        if "reads" not in skip:
            framework.mode("fill", long=active)
            deadline = time.monotonic() + max(120.0, active / 500)
            while time.monotonic() < deadline:
                if framework.poll().get("long_running", 0) >= active:
                    break
                time.sleep(0.5)
            # The first state read after a quiet minute finds the master's read cache
            # cold: it is answered by a forked child while the cache fills. Timed on
            # its own (state_read_first_s); the rates below are those of reads in a
            # steady stream, as an operator's dashboard polls.
            figures["state_read_first_s"] = round(read_state(leader.address, count=False)[0], 3)
            time.sleep(3)
            before = framework.rate(args.seconds / 2)
            reads: list[float] = []
            sizes: list[int] = []
            shown = 0
            first = dict(framework.poll())
            started = time.monotonic()
            while time.monotonic() - started < args.seconds:
                # the first answer is decoded (the tasks it shows), the others sized
                seconds, size, counted = read_state(leader.address, count=not reads)
                shown = counted if counted >= 0 else shown
                reads.append(seconds)
                sizes.append(size)
            during = (framework.poll().get("terminal", 0) - first.get("terminal", 0)) / (
                time.monotonic() - started)
            # the rate without reads, measured on both sides of them (the cluster may
            # still be settling after the fill)
            base = (before + framework.rate(args.seconds / 2)) / 2
            # and at a dashboard's pace: one full read a second
            first = dict(framework.poll())
            paced_start = time.monotonic()
            while time.monotonic() - paced_start < args.seconds:
                tick = time.monotonic()
                read_state(leader.address, count=False)
                time.sleep(max(0.0, tick + 1.0 - time.monotonic()))
            paced = (framework.poll().get("terminal", 0) - first.get("terminal", 0)) / (
                time.monotonic() - paced_start)
            # what the CLI asks by default: a summary with the newest 100 tasks, a page
            pages = sorted(read_state(leader.address, request=GetTasks(limit=100))[0]
                           for _ in range(5))
            summaries = sorted(read_state(leader.address, request=GetState(tasks_limit=100))[0]
                               for _ in range(5))
            figures["tasks_page_s"] = round(pages[2], 3)
            figures["state_summary_s"] = round(summaries[2], 3)
            print(f"reads: a page of 100 tasks (get_tasks) median {figures['tasks_page_s']} s, "
                  f"the state with the newest 100 tasks {figures['state_summary_s']} s",
                  flush=True)
            figures["active_tasks"] = framework.poll().get("long_running", 0)
            figures["state_read_s"] = round(statistics.median(reads), 3)
            figures["state_read_max_s"] = round(max(reads), 3)
            figures["state_mb"] = round(max(sizes) / 2**20, 1)
            figures["state_tasks"] = shown
            figures["rate_without_reads"] = round(base)
            figures["rate_during_reads"] = round(during)
            figures["rate_ratio"] = round(during / base, 2) if base else "nan"
            figures["reads_per_s"] = round(len(reads) / args.seconds, 1)
            figures["rate_ratio_one_read_a_second"] = round(paced / base, 2) if base else "nan"
            figures["rss_mb"] = round(leader.rss_mb())
            print(f"reads: {len(reads)} full state reads of {figures['state_mb']} MB "
                  f"({shown} tasks shown, {figures['active_tasks']} long tasks): median "
                  f"{figures['state_read_s']} s, max {figures['state_read_max_s']} s; "
                  f"framework {base:.0f} tasks/s without reads, {during:.0f} during "
                  f"(ratio {figures['rate_ratio']} at {figures['reads_per_s']} reads a second "
                  f"back to back, {figures['rate_ratio_one_read_a_second']} at one a second); "
                  f"master RSS {figures['rss_mb']} MB",
                  flush=True)
            # how the master answered them (forked children, a cache fill...): the
            # outliers above are often explained here
            counters = master_counters(leader.address)
            print("reads: master counters " + (", ".join(
                f"{k}={v}" for k, v in sorted(counters.items())
                if k.startswith(("state_read", "read_cache", "replies_withheld")))
                or "none"), flush=True)

        # 5. failover
        if args.zk and "failover" not in skip:
            if "reads" in skip and active:
                # the --active long tasks the reads phase would have left running: a
                # takeover's cost grows with the tasks the agents report
                framework.mode("fill", long=active)
                deadline = time.monotonic() + max(120.0, active / 500)
                while (time.monotonic() < deadline
                       and framework.poll().get("long_running", 0) < active):
                    time.sleep(0.5)
            figures["failover_active_tasks"] = framework.poll().get("long_running", 0)
            framework.mode("churn")
            time.sleep(3)
            # each agent counted at its first re-registration after the leader change
            before = fleet.totals()["reregistered_agents"]
            survivor = next(m for m in masters if m is not leader)
            roles = {"new_leader": [survivor.popen.pid], "agents_sim": fleet.pids,
                     "framework": [framework.proc.pid] if framework.proc.pid else [],
                     "zookeeper": [srv.process.pid for srv in ensemble.servers
                                   if srv.process is not None] if ensemble else []}
            cpu_before = cpu_of(roles)
            threads_before = thread_cpu(survivor.popen.pid)
            killed_at = time.monotonic()
            killed_wall = time.time()
            leader.popen.send_signal(signal.SIGKILL)
            leader.popen.wait()
            # as a framework watching ZooKeeper would: to the next master at once (its
            # subscription waits in ZeroMQ until that master leads and listens)
            framework.mode("churn", reconnect=survivor.address)
            took = None
            timeline = []  # (seconds after the kill, agents re-registered, their attempts)
            deadline = killed_at + max(120.0, args.agents / 50)
            while time.monotonic() < deadline:
                totals = fleet.totals()
                back = totals["reregistered_agents"] - before
                timeline.append((round(time.monotonic() - killed_at, 1), back,
                                 totals["reregister_sent"]))
                if back >= args.agents:
                    # when the last agent heard its first answer (workers report twice
                    # a second)
                    took = totals["last_first_reregistered_ms"] / 1000 - killed_at
                    break
                time.sleep(0.5)
            # Whose CPU the failover took: on one small machine the simulated agents,
            # ZooKeeper and the framework compete with the new leader for its cores.
            cpu_after = cpu_of(roles)
            threads_after = thread_cpu(survivor.popen.pid)
            wall = time.monotonic() - killed_at
            used = {role: round(cpu_after[role] - cpu_before[role], 2) for role in cpu_after}
            figures.update({f"failover_cpu_{role}_s": v for role, v in used.items()})
            print(f"failover CPU seconds over {wall:.1f} s of wall time on "
                  f"{psutil.cpu_count()} cores: "
                  + ", ".join(f"{role} {v}" for role, v in used.items())
                  + "; the new leader's threads: " + ", ".join(
                      f"{name} {threads_after[name] - threads_before.get(name, 0.0):.2f}"
                      for name in sorted(threads_after)), flush=True)
            # where the time goes: waiting for the new leader, or a slow climb, or a tail
            print("failover timeline (s, re-registered, re-registrations sent): "
                  + " ".join(f"{t}:{n}/{sent}" for t, n, sent in timeline[::2]), flush=True)
            offered = None
            while time.monotonic() - killed_at < 120:
                # the first offer it received from the new leader (reported 4 times
                # a second: the moment it came, not when this process heard of it)
                first_offer = framework.poll().get("first_offer_at", 0)
                if first_offer > killed_wall:
                    offered = first_offer - killed_wall
                    break
                time.sleep(0.05)
            elected = elected_at(survivor.log_path)
            figures["failover_elected_s"] = (round(elected - killed_wall, 2)
                                             if elected is not None else "unknown")
            figures["failover_reregistered_s"] = round(took, 2) if took is not None else "none"
            figures["failover_offered_s"] = round(offered, 2) if offered else "none"
            figures["zk_session_s"] = args.zk_session
            print(f"failover: elected {figures['failover_elected_s']} s after the kill (from "
                  "the new leader's log at --master-log-level info), all agents "
                  f"re-registered {figures['failover_reregistered_s']} s "
                  f"after the kill, framework offered again after "
                  f"{figures['failover_offered_s']} s (session {args.zk_session:g} s)",
                  flush=True)
            leader = survivor

        if ensemble is not None:
            alive = [srv for srv in ensemble.servers if srv.alive()]
            figures["zk_alive"] = f"{len(alive)}/{len(ensemble.servers)}"
            figures["zk_rss_mb"] = max(
                (round(psutil.Process(srv.process.pid).memory_info().rss / 2**20)
                 for srv in alive if srv.process is not None), default=0)
        counts = framework.poll()
        figures["tasks_not_finished"] = counts.get("lost", 0)
        figures["framework_errors"] = counts.get("errors", 0)
        figures["agent_errors"] = fleet.totals()["errors"]
    finally:
        if framework is not None:
            framework.stop()
        if fleet is not None:
            fleet.stop()
        for master in masters:
            master.stop()
        if ensemble is not None:
            ensemble.stop()
    print("reproduce: python tools/bench_cluster.py " + " ".join(sys.argv[1:]))
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 0


def elected_at(log_path: Path) -> float | None:
    """When the master whose log this is became the leader (its ``elected leader``
    line, logged at info), as a wall-clock time; None if it did not say."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if '"elected leader"' not in line:
            continue
        try:
            stamp = json.loads(line)["timestamp"]
        except (ValueError, KeyError):
            return None
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return None


def leader_of(masters: list[Master], url: str) -> Master:
    from mesos_zmq.detector import LeaderDetector

    detector = LeaderDetector(url)
    try:
        address = normalize_address(detector.wait(60))
    finally:
        detector.close()
    for master in masters:
        if master.address == address:
            wait_master(address)
            return master
    raise SystemExit(f"the leader {address} is none of the masters started")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
