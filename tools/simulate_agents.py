"""Many simulated agents against a real master, over the real protocol.

Each simulated agent has its own DEALER socket (so the master pays for every connection
as it would in production), registers, heartbeats, re-registers with its tasks after
its master goes silent or a new leader is elected (``--master zk://...``), and runs
fake tasks: a ``run_tasks`` is answered TASK_RUNNING at once, then TASK_FINISHED (or
TASK_FAILED, ``--failure-rate``) after the task's duration, each update resent with
exponential back-off and jitter until the master relays its acknowledgement, as a real
agent does. A task's duration is its env ``SIM_SECONDS`` when set (a negative value
runs until killed), else ``--task-seconds``; kills answer TASK_KILLED.

The agents are spread over ``--processes`` worker processes; each worker reports its
counters to the parent twice a second. :class:`Fleet` is the API that
``tools/bench_cluster.py`` drives; run alone it prints the counters as it goes and a
last line in ``key=value`` form:

    python tools/simulate_agents.py --master tcp://127.0.0.1:5050 --agents 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import heapq
import itertools
import multiprocessing as mp
import os
import queue
import random
import resource
import select
import signal
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import zmq  # noqa: E402

from mesos_zmq.backoff import Backoff  # noqa: E402
from mesos_zmq.errors import ProtocolError  # noqa: E402
from mesos_zmq.protocol import (  # noqa: E402
    PROTOCOL_VERSION,
    Acknowledge,
    AgentRegistered,
    Envelope,
    Error,
    Heartbeat,
    KillTask,
    Message,
    Refused,
    RegisterAgent,
    ReregisterAgent,
    RunTasks,
    ShutdownFramework,
    StatusUpdate,
    TaskInfo,
    TaskStatus,
    decode_frame,
    encode,
    to_wire,
)
from mesos_zmq.transport import (  # noqa: E402
    MAX_EPOCH,
    RECONNECT_IVL_MAX_MS,
    RECONNECT_IVL_MS,
    normalize_address,
)

COUNTERS = (
    "agents", "registered", "register_sent", "reregister_sent", "reconnects",
    "leader_changes", "heartbeats_sent", "frames_in", "run_tasks", "tasks_started",
    "tasks_ended", "tasks_forgotten", "updates_sent", "update_retries", "acks",
    "errors", "stale_epoch", "bad_frames", "reregistered_acks", "retunes",
    # agents back since the latest leader change: each counted at its FIRST
    # re-registration after that change (reregistered_acks counts every answer, and an
    # agent may hear two, the second after others were back)
    "reregistered_agents",
    # not counts: when (time.monotonic() in ms, one clock for every process on the host)
    # an agent last heard it was registered / re-registered; the fleet takes the latest
    "last_registered_ms", "last_reregistered_ms",
    # when the latest of those first re-registrations came (what a failover is timed by)
    "last_first_reregistered_ms",
)

TERMINAL_STATES = ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED")


@dataclass
class Config:
    master: str
    agents: int = 1000
    processes: int = 2
    resources: str = "cpus:8;mem:16384;disk:65536"
    task_seconds: float = 0.0
    failure_rate: float = 0.0
    #: first status-update retry; doubles with jitter up to ``update_retry_max``
    update_retry: float = 10.0
    update_retry_max: float = 600.0
    #: registration: first attempt after a random delay in [0, factor], the bound
    #: doubling on each retry up to 60 s (as Mesos's agent)
    backoff_factor: float = 1.0
    seed: int = 1
    #: hostnames are ``sim-<prefix>-<n>``: two fleets on one master do not collide
    prefix: str = "a"
    #: added to the workers' nice value: simulated agents stand in for other machines,
    #: and on a small host a positive value keeps them from taking the cores the
    #: master they measure needs (0: the same priority as the master)
    nice: int = 0


@dataclass
class _Task:
    info: TaskInfo
    framework_id: str
    state: str = "TASK_STAGING"
    #: updates not yet acknowledged, the head in flight
    updates: deque[TaskStatus] = field(default_factory=deque)
    #: resends of the head so far (its back-off step)
    attempts: int = 0
    #: the report's fixed part, packed when the task arrives (see report_parts)
    packed: bytes = b""


# --------------------------------------------------------------- re-registration frames
# An agent's re-registration is msgpack, and msgpack is concatenation: a map is its
# header then its keys and values, each packed on its own. So the frame is assembled from
# pieces packed once (each task's report but its state, when the task arrives), not
# encoded whole at the moment it is sent: after a failover 10,000 agents each sent one
# within a second or two, 80 us each to encode with ten tasks, on the cores the new
# leader needs (this process stands in for other machines). The bytes are exactly what
# ``encode(ReregisterAgent(...))`` makes (tests/unit/test_simulated_agents.py).

#: ``[version, type, request_id (none), body]``: the array's header and its first three
_ENVELOPE_HEAD = b"\x94" + msgpack.packb([PROTOCOL_VERSION, ReregisterAgent.TYPE, ""])[1:]
_STATES: dict[str, bytes] = {}
#: msgpack's packer as ``encode`` uses it (one per process: a worker's agents are driven
#: by one thread)
_pack = msgpack.Packer(use_bin_type=True).pack


def _map_head(count: int) -> bytes:
    return bytes((0x80 | count,)) if count < 16 else b"\xde" + count.to_bytes(2, "big")


def _array_head(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def report_parts(info: TaskInfo, framework_id: str) -> bytes:
    """A TaskReport's map up to its state's value: the three fields a simulated agent
    sets (its exit code, None, is left out as ``to_wire`` leaves out defaults)."""
    pack = _pack
    return (_map_head(3) + pack("task") + pack(to_wire(info)) + pack("framework_id")
            + pack(framework_id) + pack("state"))


def reregistration_frame(agent_id: str, hostname: str, resources: str,
                         tasks: list[tuple[bytes, str]]) -> bytes:
    """``encode(ReregisterAgent(agent_id, hostname, resources, tasks=reports))`` from
    each report's :func:`report_parts` and state."""
    pack = _pack
    body = to_wire(ReregisterAgent(agent_id=agent_id, hostname=hostname,
                                   resources=resources))
    parts = [_ENVELOPE_HEAD, _map_head(len(body) + (1 if tasks else 0))]
    for name in _REREGISTER_FIELDS:
        if name == "tasks":
            if tasks:
                parts += [pack("tasks"), _array_head(len(tasks))]
                for packed, state in tasks:
                    state_bytes = _STATES.get(state)
                    if state_bytes is None:
                        state_bytes = _STATES[state] = pack(state)
                    parts += [packed, state_bytes]
        elif name in body:
            parts += [pack(name), pack(body[name])]
    return b"".join(parts)


_REREGISTER_FIELDS = [f.name for f in dataclasses.fields(ReregisterAgent)]


class _Agent:
    __slots__ = (
        "agent_id",
        "back",
        "generation",
        "heard",
        "hostname",
        "index",
        "interval",
        "last_sent",
        "limit",
        "max_epoch",
        "register_attempts",
        "registered",
        "reregistration",
        "sock",
        "tasks",
    )

    def __init__(self, index: int, hostname: str) -> None:
        self.index = index
        self.hostname = hostname
        self.sock: zmq.Socket[bytes] | None = None
        self.agent_id = ""
        self.registered = False
        self.heard = 0.0
        #: when it last sent the master a status update (a sign of life, as good as a
        #: heartbeat: the agent's rule in mesos_zmq.agent.core)
        self.last_sent = 0.0
        self.limit = 10.0
        self.interval = 1.0
        self.register_attempts = 0
        self.max_epoch = 0
        self.tasks: dict[tuple[str, str], _Task] = {}
        #: the encoded re-registration while its tasks stay as they are (an agent
        #: retries several times in a failover; encoding 10 task reports is costly, and
        #: this process stands in for thousands of machines on a shared host)
        self.reregistration: bytes | None = None
        #: bumped on every reconnect: timers of an older connection are void
        self.generation = 0
        #: re-registered since the latest leader change (its first answer was counted)
        self.back = False


class _Worker:
    """The agents of one process, driven by one epoll and one timer heap.

    zmq's Poller walks every socket on every call (75 % of a worker's time at 3,300
    agents); epoll on the sockets' ZMQ_FD costs only what is ready. That descriptor
    signals edge-wise: a socket is drained until EAGAIN when it fires, and after every
    send (a send may take in the signal of a message that arrived meanwhile)."""

    def __init__(self, config: Config, number: int, first: int, count: int,
                 address: str) -> None:
        self.config = config
        self.number = number
        self.rng = random.Random(config.seed * 1_000_003 + first)
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        # libzmq's default is 1023; a failover replaces every socket while the closed
        # ones are still being reaped, so room for two sets and then some
        self.context.set(zmq.MAX_SOCKETS, 3 * count + 100)
        self.address = address
        self.agents = [_Agent(i, f"sim-{config.prefix}-{i}") for i in range(first, first + count)]
        self.by_fd: dict[int, _Agent] = {}
        self.epoll = select.epoll()
        #: agents whose sockets were sent on since they were last drained
        self.dirty: set[int] = set()
        self.timers: list[tuple[float, int, str, int, int, Any]] = []
        self.seq = itertools.count()
        self.register_backoff = Backoff(max(config.backoff_factor, 0.1),
                                        max(config.backoff_factor, 0.1, 60.0))
        self.update_backoff = Backoff(config.update_retry,
                                      max(config.update_retry, config.update_retry_max))
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.counts["agents"] = count

    # --------------------------------------------------------------- plumbing
    def at(self, when: float, kind: str, agent: _Agent, data: Any = None) -> None:
        heapq.heappush(self.timers, (when, next(self.seq), kind, agent.index - self.agents[0].index,
                                     agent.generation, data))

    def send(self, agent: _Agent, msg: Message, request_id: str = "") -> None:
        self.send_frame(agent, encode(msg, request_id))

    def send_frame(self, agent: _Agent, frame: bytes) -> None:
        if agent.sock is None:
            return
        try:
            agent.sock.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            pass  # the master is not reading: the retry timers send again
        self.dirty.add(agent.index)

    def disconnect(self, agent: _Agent) -> None:
        """Close the agent's socket: its timers, answers and retries end with it."""
        if agent.sock is not None:
            fd = agent.sock.getsockopt(zmq.FD)
            self.epoll.unregister(fd)
            del self.by_fd[fd]
            agent.sock.close(linger=0)
            agent.sock = None
        agent.generation += 1
        agent.registered = False

    def connect(self, agent: _Agent, now: float, delay_bound: float) -> None:
        """A new socket to the master; the first registration after a random delay in
        ``[0, delay_bound]`` (0: at once)."""
        self.disconnect(agent)
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 10_000)
        # As the real agent's socket (mesos_zmq.transport.ClientSocket): reconnection
        # backs off to a second. With libzmq's default (every 0.1 s for ever) 10,000
        # sockets knocking at a dead leader's port took the CPU a new leader needed:
        # its takeover ran 3-4 times slower than alone.
        sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        sock.connect(self.address)
        agent.sock = sock
        fd = sock.getsockopt(zmq.FD)
        self.by_fd[fd] = agent
        self.epoll.register(fd, select.EPOLLIN)
        self.dirty.add(agent.index)
        agent.register_attempts = 0
        agent.heard = now
        if delay_bound <= 0:
            self.register(agent, now)
        else:
            self.at(now + Backoff(delay_bound, max(delay_bound, 60.0)).full_jitter(0, self.rng),
                    "register", agent)

    # --------------------------------------------------------------- registration
    def register(self, agent: _Agent, now: float) -> None:
        if agent.registered:
            return
        if agent.agent_id:
            self.counts["reregister_sent"] += 1
            if agent.reregistration is None:
                agent.reregistration = reregistration_frame(
                    agent.agent_id, agent.hostname, self.config.resources,
                    [(t.packed, t.state) for t in agent.tasks.values()])
            self.send_frame(agent, agent.reregistration)
        else:
            self.counts["register_sent"] += 1
            self.send(agent, RegisterAgent(hostname=agent.hostname,
                                           resources=self.config.resources))
        # the agent's rule (mesos_zmq.agent.core): full jitter, the bound doubling from
        # the factor (at least 0.1 s) to a minute
        agent.register_attempts += 1
        self.at(now + self.register_backoff.full_jitter(agent.register_attempts, self.rng),
                "register", agent)

    def on_registered(self, agent: _Agent, msg: AgentRegistered, now: float) -> None:
        if agent.registered:
            return
        if agent.agent_id != msg.agent_id:
            agent.agent_id = msg.agent_id
            agent.reregistration = None
        agent.registered = True
        self.counts["last_registered_ms"] = int(now * 1000)
        if msg.reregistered:
            self.counts["last_reregistered_ms"] = int(now * 1000)
        agent.interval = msg.heartbeat_interval
        agent.limit = msg.heartbeat_interval * msg.missed_heartbeats
        self.counts["registered"] += 1
        if msg.reregistered:
            self.counts["reregistered_acks"] += 1
            if not agent.back:
                agent.back = True
                self.counts["reregistered_agents"] += 1
                self.counts["last_first_reregistered_ms"] = int(now * 1000)
        # spread the heartbeats of agents registered together over one interval
        self.at(now + self.rng.uniform(0, agent.interval), "beat", agent)
        self.at(now + agent.limit, "check", agent)
        for task in agent.tasks.values():
            if task.updates:
                task.attempts = 0
                self.send_head(agent, task, now)

    # --------------------------------------------------------------- tasks
    def on_run(self, agent: _Agent, msg: RunTasks, now: float) -> None:
        self.counts["run_tasks"] += 1
        for info in msg.tasks:
            key = (msg.framework_id, info.task_id)
            if key in agent.tasks:
                continue
            task = _Task(info, msg.framework_id, packed=report_parts(info, msg.framework_id))
            agent.tasks[key] = task
            agent.reregistration = None
            self.counts["tasks_started"] += 1
            self.update(agent, task, "TASK_RUNNING", now)
            seconds = self.config.task_seconds
            if "SIM_SECONDS" in info.env:
                try:
                    seconds = float(info.env["SIM_SECONDS"])
                except ValueError:
                    pass
            if seconds >= 0:
                self.at(now + seconds, "end", agent, key)

    def update(self, agent: _Agent, task: _Task, state: str, now: float,
               message: str = "") -> None:
        task.state = state
        agent.reregistration = None
        status = TaskStatus(task_id=task.info.task_id, framework_id=task.framework_id,
                            agent_id=agent.agent_id, state=state, uuid=uuid.uuid4().hex,
                            timestamp=time.time(), message=message)
        task.updates.append(status)
        if len(task.updates) == 1 and agent.registered:
            task.attempts = 0
            self.send_head(agent, task, now)

    def send_head(self, agent: _Agent, task: _Task, now: float) -> None:
        head = task.updates[0]
        self.counts["updates_sent"] += 1
        self.send(agent, StatusUpdate(status=head))
        agent.last_sent = now
        # the agent's rule: floored jitter from update_retry, doubling to the maximum
        self.at(now + self.update_backoff.floored_jitter(task.attempts, self.rng), "retry",
                agent,
                ((task.framework_id, task.info.task_id), head.uuid))

    def end(self, agent: _Agent, key: tuple[str, str], now: float, state: str) -> None:
        task = agent.tasks.get(key)
        if task is None or task.state in TERMINAL_STATES:
            return
        self.counts["tasks_ended"] += 1
        self.update(agent, task, state, now)

    def on_ack(self, agent: _Agent, msg: Acknowledge, now: float) -> None:
        key = (msg.framework_id, msg.task_id)
        task = agent.tasks.get(key)
        if task is None or not task.updates or task.updates[0].uuid != msg.uuid:
            return
        self.counts["acks"] += 1
        task.updates.popleft()
        if task.updates:
            task.attempts = 0
            self.send_head(agent, task, now)
        elif task.state in TERMINAL_STATES:
            del agent.tasks[key]
            agent.reregistration = None
            self.counts["tasks_forgotten"] += 1

    # --------------------------------------------------------------- the loop
    def on_frame(self, agent: _Agent, frame: bytes, now: float) -> None:
        """One frame from the master: a message, or a batch of them handled in order
        (a refused item counts as a bad frame, the others still count), stopping when
        one of them made the agent reconnect: the rest was for the old connection."""
        self.counts["frames_in"] += 1
        try:
            items = decode_frame(frame)
        except ProtocolError:
            self.counts["bad_frames"] += 1
            return
        sock = agent.sock
        for item in items:
            if isinstance(item, Refused):
                self.counts["bad_frames"] += 1
                continue
            self.on_envelope(agent, item, now)
            if agent.sock is not sock:
                return  # reconnected while handling it

    def on_envelope(self, agent: _Agent, envelope: Envelope, now: float) -> None:
        if envelope.epoch:
            if envelope.epoch > MAX_EPOCH:
                self.counts["stale_epoch"] += 1
                return
            if envelope.epoch < agent.max_epoch:
                self.counts["stale_epoch"] += 1
                return
            agent.max_epoch = envelope.epoch
        agent.heard = now
        msg = envelope.message
        if isinstance(msg, AgentRegistered):
            self.on_registered(agent, msg, now)
        elif isinstance(msg, RunTasks):
            self.on_run(agent, msg, now)
        elif isinstance(msg, Acknowledge):
            self.on_ack(agent, msg, now)
        elif isinstance(msg, KillTask):
            self.end(agent, (msg.framework_id, msg.task_id), now, "TASK_KILLED")
        elif isinstance(msg, ShutdownFramework):
            for key in [k for k in agent.tasks if k[0] == msg.framework_id]:
                self.end(agent, key, now, "TASK_KILLED")
        elif isinstance(msg, Heartbeat):
            if msg.interval and agent.registered and msg.interval != agent.interval:
                # the agent's rule (mesos_zmq.agent.core): the master retunes us
                agent.limit *= msg.interval / agent.interval
                agent.interval = msg.interval
                self.counts["retunes"] += 1
        elif isinstance(msg, Error):
            self.counts["errors"] += 1
            if msg.code == "not_registered":
                agent.registered = False
                self.at(now, "register", agent)

    def on_timer(self, kind: str, agent: _Agent, data: Any, now: float) -> None:
        if kind == "register":
            self.register(agent, now)
        elif kind == "connect":
            self.connect(agent, now, 0.0)
        elif kind == "beat":
            if agent.registered:
                if now - agent.last_sent < agent.interval:
                    self.at(agent.last_sent + agent.interval, "beat", agent)
                    return
                self.counts["heartbeats_sent"] += 1
                self.send(agent, Heartbeat())
                agent.last_sent = now
                self.at(now + agent.interval, "beat", agent)
        elif kind == "check":
            if now - agent.heard > agent.limit:
                self.counts["reconnects"] += 1
                self.connect(agent, now, self.config.backoff_factor)
            else:
                self.at(agent.heard + agent.limit + 0.01, "check", agent)
        elif kind == "end":
            failed = self.rng.random() < self.config.failure_rate
            self.end(agent, data, now, "TASK_FAILED" if failed else "TASK_FINISHED")
        elif kind == "retry":
            key, head_uuid = data
            task = agent.tasks.get(key)
            if task is None or not task.updates or task.updates[0].uuid != head_uuid:
                return
            if agent.registered:
                self.counts["update_retries"] += 1
                task.attempts += 1
                self.send_head(agent, task, now)

    def drain(self, agent: _Agent) -> None:
        sock = agent.sock
        if sock is None:
            return
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.on_frame(agent, frame, time.monotonic())
            if agent.sock is not sock:
                return  # reconnected while handling it

    def new_leader(self, address: str, now: float) -> None:
        """Every agent leaves the old leader at once and registers with the new one
        after a random delay in ``[0, backoff_factor]``, as the real agent does.

        A real agent opens its new connection when it hears of the leader and sends
        its first registration after that delay; here the socket is opened at the
        moment of the first registration instead. The master sees the same frames at
        the same moments, but the simulation does not open thousands of sockets in one
        go in one thread (up to a second of CPU on a small host, during which none of
        its agents' answers were read and the master's cores were shared with it).
        """
        self.counts["leader_changes"] += 1
        self.address = address
        bound = Backoff(self.config.backoff_factor, max(self.config.backoff_factor, 60.0))
        for agent in self.agents:
            self.disconnect(agent)
            agent.back = False
            self.at(now + bound.full_jitter(0, self.rng), "connect", agent)

    def run(self, stop: EventType, report: Any, detector: Any) -> None:
        now = time.monotonic()
        for agent in self.agents:
            self.connect(agent, now, self.config.backoff_factor)
        next_report = now
        while not stop.is_set():
            now = time.monotonic()
            wait = 0.05
            if self.timers:
                wait = max(0.0, min(wait, self.timers[0][0] - now))
            if self.dirty:
                wait = 0.0
            ready = {self.by_fd[fd].index for fd, _ in self.epoll.poll(wait)
                     if fd in self.by_fd}
            ready |= self.dirty
            self.dirty = set()
            first = self.agents[0].index
            for index in ready:
                self.drain(self.agents[index - first])
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, kind, offset, generation, data = heapq.heappop(self.timers)
                agent = self.agents[offset]
                # a task ends on its own time, whatever became of the connection
                if generation == agent.generation or kind == "end":
                    self.on_timer(kind, agent, data, now)
            if detector is not None:
                changed = detector.changed()
                if changed is not None and normalize_address(changed) != self.address:
                    self.new_leader(normalize_address(changed), now)
            if now >= next_report:
                next_report = now + 0.5
                report.put((self.number, dict(self.counts)))
        report.put((self.number, dict(self.counts)))
        for agent in self.agents:
            if agent.sock is not None:
                agent.sock.close(linger=0)
        self.context.term()


def _worker_main(config: Config, number: int, first: int, count: int, stop: EventType,
                 report: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us through ``stop``
    if config.nice:
        os.nice(config.nice)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a socket is a descriptor
    detector = None
    address = config.master
    if config.master.startswith("zk://"):
        from mesos_zmq.detector import LeaderDetector

        detector = LeaderDetector(config.master, session_timeout=10.0)
        address = detector.wait(60)
        detector.changed()
    worker = _Worker(config, number, first, count, normalize_address(address))
    # Thousands of agents in one process: their records out of the collector's sight,
    # and its young generation as large as the master's (mesos_zmq.master.server), so
    # the simulation takes less of the cores it shares with the master it measures.
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
    try:
        worker.run(stop, report, detector)
    finally:
        if detector is not None:
            detector.close()


class Fleet:
    """Start, watch and stop the worker processes of one simulated fleet."""

    def __init__(self, config: Config) -> None:
        self.config = config
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._queue: Any = ctx.Queue()
        self._latest: dict[int, dict[str, int]] = {}
        self._procs: list[Any] = []
        per = -(-config.agents // config.processes)
        for w in range(config.processes):
            first = w * per
            count = min(per, config.agents - first)
            if count <= 0:
                break
            self._procs.append(ctx.Process(
                target=_worker_main, args=(config, w, first, count, self._stop, self._queue),
                name=f"sim-agents-{w}", daemon=True))

    def start(self) -> None:
        for proc in self._procs:
            proc.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def totals(self) -> dict[str, int]:
        """The fleet's counters summed over its workers (as last reported); the
        ``*_ms`` moments are the latest of any worker."""
        while True:
            try:
                number, counts = self._queue.get_nowait()
            except queue.Empty:
                break
            self._latest[number] = counts  # each report is its worker's running totals
        out = dict.fromkeys(COUNTERS, 0)
        for counts in self._latest.values():
            for key, value in counts.items():
                if key.endswith("_ms"):
                    out[key] = max(out.get(key, 0), value)
                else:
                    out[key] = out.get(key, 0) + value
        return out

    def wait(self, key: str, at_least: int, timeout: float, at: str = "") -> float | None:
        """Seconds until ``totals()[key] >= at_least``, or None after ``timeout``.

        With ``at`` (a ``*_ms`` moment the workers report), the seconds until that
        moment instead: workers report twice a second, and the moment the last agent
        got its answer is what is measured, not when this process heard of it.
        """
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            totals = self.totals()
            if totals[key] >= at_least:
                if at and totals[at] / 1000 >= started:
                    return totals[at] / 1000 - started
                return time.monotonic() - started
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        self._stop.set()
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self.totals()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", required=True, help="tcp://host:port or zk://.../path")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--resources", default=Config.resources)
    parser.add_argument("--task-seconds", type=float, default=0.0)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--update-retry", type=float, default=10.0)
    parser.add_argument("--backoff-factor", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="run this long, then stop")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nice", type=int, default=0,
                        help="added to the workers' nice value (they stand in for other hosts)")
    args = parser.parse_args()
    fleet = Fleet(Config(master=args.master, agents=args.agents, processes=args.processes,
                         resources=args.resources, task_seconds=args.task_seconds,
                         failure_rate=args.failure_rate, update_retry=args.update_retry,
                         backoff_factor=args.backoff_factor, seed=args.seed,
                         nice=args.nice))
    started = time.monotonic()
    fleet.start()
    registered_at = None
    try:
        while time.monotonic() - started < args.seconds:
            time.sleep(1.0)
            totals = fleet.totals()
            if registered_at is None and totals["registered"] >= args.agents:
                registered_at = time.monotonic() - started
            print(" ".join(f"{k}={v}" for k, v in totals.items() if v), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
    totals = fleet.totals()
    print(f"reproduce: python tools/simulate_agents.py --master {args.master} "
          f"--agents {args.agents} --processes {args.processes} --seconds {args.seconds:g}")
    shown = "none" if registered_at is None else f"{registered_at:.2f}"
    print(f"all_registered_s={shown} " + " ".join(f"{k}={v}" for k, v in totals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
