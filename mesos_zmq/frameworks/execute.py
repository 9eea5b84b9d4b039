"""The framework behind ``mesos-zmq run`` (like mesos-execute).

It waits for offers, launches ``instances`` copies of one command, streams each
task's stdout and stderr by reading its sandbox files through the master, and ends
with an exit code: 0 when every instance finished, else the exit code of the first
instance that failed (1 when none is known, e.g. the task was LOST).

It says what it is doing on its ``progress`` stream (stderr in the CLI), one line
each, prefixed ``run:``: that it waits for an offer and, when the wait lasts, why
(from the cluster state: no agent could ever hold one instance, or the agents that
could are busy), where each task was launched, and how each ended with the reason
(``TASK_FAILED: memory limit 64 MB exceeded (exit code 137)``). With several
instances each output line is prefixed with its instance (``task-0 | ...``) and
progress counts are printed as they change (at most once a second). A master that
never answers ends the run after ``connect_timeout`` seconds with
:class:`~mesos_zmq.cli.client.MasterUnreachable`.

Output is followed by polling: every ~150 ms each open file of a started task gets a
``ReadFile`` from where the last one stopped, with at most one read outstanding per
file so chunks are written in order. A file is drained when the agent says
``done`` (the task is terminal and everything was read); a task whose agent can no
longer answer is given up on a few seconds after it ended, so the command always
returns.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from mesos_zmq.auth.keys import ClientKeys
from mesos_zmq.cli.client import MasterUnreachable, RequestRefused, request
from mesos_zmq.detector import LeaderDetector, NoLeader, parse_master_url
from mesos_zmq.errors import MesosZmqError, ResourceError
from mesos_zmq.protocol import (
    Error,
    FileData,
    FrameworkInfo,
    GetState,
    Message,
    Offer,
    State,
    TaskInfo,
    TaskStatus,
)
from mesos_zmq.resources import Resources, format_scalar, is_ancestor_role
from mesos_zmq.scheduler import DriverStatus, Refusal, Scheduler, SchedulerDriver
from mesos_zmq.scheduler.validation import safe_id
from mesos_zmq.tasks import TERMINAL, TaskState

#: seconds between polls of the open output files
POLL_INTERVAL = 0.15
#: bytes asked for per read
READ_CHUNK = 65536
#: after a task ended, how long to keep trying to drain its files
DRAIN_GRACE = 5.0
#: a read unanswered for this long is sent again
READ_TIMEOUT = 2.0
#: exit code when ``timeout`` expires (as timeout(1) does)
TIMEOUT_EXIT_CODE = 124
#: seconds a master has to accept the subscription before ``run`` gives up
DEFAULT_CONNECT_TIMEOUT = 30.0
#: seconds without a launch (while instances wait) before the cluster state is asked why
EXPLAIN_AFTER = 2.0
#: seconds between two looks at the cluster state while waiting
EXPLAIN_INTERVAL = 3.0
#: most seconds between two progress lines of a multi-instance run
PROGRESS_INTERVAL = 1.0

#: end states with nothing to read: the task never started in a sandbox
_NEVER_RAN = frozenset({TaskState.ERROR, TaskState.DROPPED})


@dataclass
class _Stream:
    """One sandbox file being followed; with a ``prefix``, written line by line."""

    path: str
    out: BinaryIO
    prefix: bytes = b""
    offset: int = 0
    in_flight_since: float | None = None
    drained: bool = False
    partial: bytearray = field(default_factory=bytearray)

    def write(self, data: bytes) -> None:
        if not self.prefix:
            self.out.write(data)
            self.out.flush()
            return
        self.partial += data
        *lines, rest = bytes(self.partial).split(b"\n")
        if lines:
            self.out.write(b"".join(self.prefix + line + b"\n" for line in lines))
            self.out.flush()
        self.partial = bytearray(rest)

    def close(self) -> None:
        """Nothing more will be read: write a last unterminated line, if any."""
        if self.drained:
            return
        self.drained = True
        if self.partial:
            self.out.write(self.prefix + bytes(self.partial) + b"\n")
            self.out.flush()
            self.partial.clear()


@dataclass
class _Instance:
    """One copy of the command."""

    index: int
    task_id: str
    label: str
    agent_id: str = ""
    hostname: str = ""
    launched: bool = False
    state: str = ""
    exit_code: int | None = None
    message: str = ""
    ended_at: float | None = None
    streams: list[_Stream] = field(default_factory=list)


class ExecuteFramework(Scheduler):
    """Launch ``instances`` copies of a command and follow their output.

    All scheduling state is touched only in the driver thread (callbacks and
    :meth:`poll_files`, which the caller schedules with ``driver.call_soon``); the
    caller reads :attr:`finished` and then :meth:`exit_code`, and may call
    :meth:`explain_wait` and :meth:`report_progress` from its own thread (they only
    read, and write whole lines under a lock).
    """

    def __init__(
        self,
        command: str,
        *,
        instances: int = 1,
        resources: Resources,
        ports: int = 0,
        env: dict[str, str] | None = None,
        shell: bool = True,
        argv: list[str] | None = None,
        name: str = "mesos-zmq-run",
        task_id: str = "",
        role: str = "*",
        stdout: BinaryIO,
        stderr: BinaryIO,
        progress: BinaryIO | None = None,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if instances < 1:
            raise ValueError("instances must be at least 1")
        if ports < 0:
            raise ValueError("ports must not be negative")
        self.command = command
        self.resources = resources
        self.ports = ports
        self.env = dict(env or {})
        self.shell = shell
        self.argv = list(argv or [])
        self.name = name
        self.role = role
        self.stdout = stdout
        self.stderr = stderr
        self.progress = progress
        self.quiet = quiet
        self.clock = clock
        # Unique by default, so that two runs never share an id (ids are per framework,
        # but a script naming one with `logs`/`kill` should not have to say which).
        prefix = task_id or f"{name}-{uuid.uuid4().hex[:8]}"
        width = len(f"task-{instances - 1}")
        self.instances = [
            _Instance(i, task_id if task_id and instances == 1 else f"{prefix}-{i}",
                      f"task-{i}".ljust(width))
            for i in range(instances)]
        for inst in self.instances:
            if not safe_id(inst.task_id):
                raise ValueError(
                    f"task id {inst.task_id[:64]!r} (from the name or task id) must use "
                    "letters, digits, '_', '.' and '-' only, at most 200 of them")
        self._by_id = {inst.task_id: inst for inst in self.instances}
        self.pending = list(self.instances)
        self.failed: list[_Instance] = []  # in the order they failed
        self.finished = False
        self.fatal_error: str | None = None
        self.registered_at: float | None = None
        #: when the last instance was launched (or the subscription, before any)
        self.last_launch: float | None = None
        self.killing = False  # set when this run kills its own tasks (timeout, Ctrl-C)
        self._lock = threading.Lock()
        self._last_wait_reason = ""
        self._last_progress = ""
        self._last_progress_at = -PROGRESS_INTERVAL

    # ----------------------------------------------------------------- reporting
    def say(self, text: str, *, always: bool = False) -> None:
        """One line on the progress stream (``always``: even when quiet)."""
        if self.progress is None or (self.quiet and not always):
            return
        with self._lock:
            self.progress.write(f"run: {text}\n".encode())
            self.progress.flush()

    def _label(self, inst: _Instance) -> str:
        return inst.task_id if len(self.instances) == 1 else inst.label.strip()

    # ----------------------------------------------------------------- subscription
    def registered(self, driver: SchedulerDriver, framework_id: str,
                   master_info: dict[str, Any]) -> None:
        self.registered_at = self.last_launch = self.clock()
        count = len(self.instances)
        what = "an offer" if count == 1 else f"offers for {count} tasks"
        each = "" if count == 1 else " each"
        self.say(f"waiting for {what} of {self._need_text()}{each} "
                 f"(framework {framework_id})")

    def reregistered(self, driver: SchedulerDriver, master_info: dict[str, Any]) -> None:
        self.say("subscribed again to the master")

    def disconnected(self, driver: SchedulerDriver) -> None:
        self.say("the master went silent: reconnecting")

    def _need_text(self) -> str:
        text = str(self.resources)
        return f"{text};ports:{self.ports}" if self.ports else text

    # ----------------------------------------------------------------- offers
    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            if not self.pending:
                driver.decline_offer(offer.offer_id, refuse_seconds=60)
                continue
            left = Resources.parse(offer.resources)
            tasks: list[TaskInfo] = []
            launched: list[_Instance] = []
            while self.pending:
                fit = self._fit(left, offer.role)
                if fit is None:
                    break
                needed, ports = fit
                left = left - needed
                inst = self.pending.pop(0)
                inst.agent_id = offer.agent_id
                inst.hostname = offer.hostname
                launched.append(inst)
                env = dict(self.env)
                env.update({f"PORT{i}": str(port) for i, port in enumerate(ports)})
                tasks.append(
                    TaskInfo(
                        task_id=inst.task_id,
                        agent_id=offer.agent_id,
                        name=self.name,
                        resources=str(needed),
                        command=self.command,
                        argv=self.argv,
                        shell=self.shell,
                        env=env,
                    )
                )
            if tasks:
                driver.launch_tasks([offer.offer_id], tasks, refuse_seconds=5.0)
                self.last_launch = self.clock()
                self.say(f"launched {self._span(launched)} on {offer.hostname or '?'} "
                         f"(agent {offer.agent_id})")
                for inst in launched:
                    inst.launched = True
            else:
                driver.decline_offer(offer.offer_id, refuse_seconds=1.0)
        if not self.pending:
            driver.suppress_offers()

    def _span(self, launched: list[_Instance]) -> str:
        """``mesos-zmq-run-1a2b-0`` for one task, ``task-0..task-3 (...-0..3)`` for more."""
        if len(self.instances) == 1:
            return launched[0].task_id
        first, last = launched[0], launched[-1]
        if first is last:
            return f"{self._label(first)} ({first.task_id})"
        return (f"{self._label(first)}..{self._label(last)} "
                f"({first.task_id}..{last.index})")

    def _fit(self, left: Resources, role: str) -> tuple[Resources, list[int]] | None:
        """What one instance takes from ``left``: unreserved first, else the offer role's
        reservation (the master matches resources by role exactly)."""
        for pool_role in dict.fromkeys(("*", role)):
            if pool_role == "*":
                pool, needed = left.unreserved(), self.resources
            else:
                pool, needed = left.reserved(pool_role), self.resources.flatten(pool_role)
            ports: list[int] = []
            if self.ports:
                try:
                    ports = pool.take_ports(self.ports)
                except ResourceError:
                    continue
                needed = needed + Resources.from_ports(ports, pool_role)
            if pool.contains(needed):
                return needed, ports
        return None

    # ----------------------------------------------------------------- updates
    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        inst = self._by_id.get(status.task_id)
        if inst is None or inst.ended_at is not None:
            return
        inst.state = status.state
        if status.agent_id:
            inst.agent_id = status.agent_id
        terminal = status.state in TERMINAL
        if (status.state == TaskState.RUNNING or terminal) and not inst.streams:
            prefix = f"{inst.label} | ".encode() if len(self.instances) > 1 else b""
            inst.streams = [_Stream("stdout", self.stdout, prefix),
                            _Stream("stderr", self.stderr, prefix)]
        if not terminal:
            return
        inst.ended_at = self.clock()
        inst.exit_code = status.exit_code
        inst.message = status.message
        if status.state != TaskState.FINISHED:
            self.failed.append(inst)
        # One task: always say how it ended. Several: the failures (counts say the rest).
        if len(self.instances) == 1 or status.state != TaskState.FINISHED:
            self.say(f"{self._label(inst)} {status.state}{self._why(status)}",
                     always=status.state != TaskState.FINISHED)
        if status.state in _NEVER_RAN:
            for stream in inst.streams:
                stream.close()
        self._check_done()

    def _why(self, status: TaskStatus) -> str:
        """``: memory limit 64 MB exceeded (exit code 137)``: the reason in words."""
        message = status.message.strip()
        if message[:1].isupper() and message[1:2].islower():
            message = message[0].lower() + message[1:]  # "Command exited..." mid-sentence
        reason = status.reason
        if reason == "REASON_CONTAINER_LIMITATION_MEMORY":
            mem = self.resources.scalar("mem")
            text = f"memory limit {format_scalar(mem)} MB exceeded" if mem else message
        elif status.state == TaskState.KILLED and reason == "REASON_TASK_KILLED":
            text = "killed by this run" if self.killing else "killed by operator"
        elif reason == "REASON_AGENT_DRAINING":
            text = "killed: its agent is being drained"
        else:
            text = message or reason.removeprefix("REASON_").lower().replace("_", " ")
        code = status.exit_code
        if code is not None and f"status {code}" not in text:
            text = f"{text} (exit code {code})" if text else f"exit code {code}"
        return f": {text}" if text else ""

    def refused(self, driver: SchedulerDriver, refusal: Refusal) -> None:
        what = f"a {refusal.request}" if refusal.request else "a request"
        self.say(f"the master refused {what}: {refusal.message}", always=True)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.fatal_error = message
        self.say(f"error from the master: {message}", always=True)

    # ----------------------------------------------------------------- progress
    def counts(self) -> dict[str, int]:
        """How many instances are waiting, starting, running, finished and failed."""
        result = {"waiting": 0, "starting": 0, "running": 0, "finished": 0, "failed": 0}
        for inst in list(self.instances):
            if inst.ended_at is not None:
                result["finished" if inst.state == TaskState.FINISHED else "failed"] += 1
            elif inst.state == TaskState.RUNNING:
                result["running"] += 1
            elif inst.launched:
                result["starting"] += 1
            else:
                result["waiting"] += 1
        return result

    def report_progress(self, final: bool = False) -> None:
        """A counts line for multi-instance runs, when they changed (at most 1/s)."""
        if len(self.instances) == 1:
            return
        text = ", ".join(f"{n} {what}" for what, n in self.counts().items() if n)
        now = self.clock()
        if text == self._last_progress or (
                not final and now - self._last_progress_at < PROGRESS_INTERVAL):
            return
        self._last_progress, self._last_progress_at = text, now
        self.say(f"{len(self.instances)} tasks: {text}")

    def waiting_since(self) -> float | None:
        """Since when instances wait without a launch (None: nothing waits)."""
        if not self.pending or self.last_launch is None:
            return None
        return self.last_launch

    def explain_wait(self, state: dict[str, Any]) -> None:
        """Say why nothing launches, from the cluster ``state``, when the reason changed."""
        reason = explain_wait(state, self.resources, self.role, self.ports)
        if reason != self._last_wait_reason:
            self._last_wait_reason = reason
            self.say(f"still waiting: {reason}")

    # ----------------------------------------------------------------- output
    def poll_files(self, driver: SchedulerDriver) -> None:
        """Ask for more of every open stream (call in the driver thread)."""
        now = self.clock()
        for inst in self.instances:
            for stream in inst.streams:
                if stream.drained:
                    continue
                if inst.ended_at is not None and now - inst.ended_at > DRAIN_GRACE:
                    stream.close()  # the agent is gone or not answering
                    continue
                if stream.in_flight_since is not None and now - stream.in_flight_since < (
                    READ_TIMEOUT
                ):
                    continue
                self._read(driver, inst, stream, now)
        self._check_done()

    def _read(self, driver: SchedulerDriver, inst: _Instance, stream: _Stream, now: float) -> None:
        stream.in_flight_since = now
        driver.read_file(
            inst.agent_id, inst.task_id, stream.path, stream.offset, READ_CHUNK,
            self._on_data(driver, inst, stream),
        )

    def _on_data(
        self, driver: SchedulerDriver, inst: _Instance, stream: _Stream
    ) -> Callable[[Message], None]:
        sent_offset = stream.offset

        def callback(reply: Message) -> None:
            if stream.drained or stream.offset != sent_offset:
                return  # a late answer to a read that was already re-sent
            stream.in_flight_since = None
            if isinstance(reply, FileData):
                if reply.offset == stream.offset and reply.data:
                    stream.write(reply.data)
                    stream.offset += len(reply.data)
                if reply.done and stream.offset >= reply.size:
                    stream.close()
                elif reply.data and stream.offset < reply.size:
                    self._read(driver, inst, stream, self.clock())  # more is there now
            elif (
                isinstance(reply, Error)
                and inst.ended_at is not None
                and reply.code != "not_registered"
            ):
                # Sandbox gone or agent lost. (A local not_registered only means we are
                # resubscribing, so that one is retried until the grace period ends.)
                stream.close()
            self._check_done()

        return callback

    def _check_done(self) -> None:
        self.finished = all(
            inst.ended_at is not None and all(s.drained for s in inst.streams)
            for inst in self.instances
        )

    def exit_code(self) -> int:
        """0 if every instance finished, else the first failure's code (1 if unknown)."""
        if not self.failed and all(i.state == TaskState.FINISHED for i in self.instances):
            return 0
        if self.failed and self.failed[0].exit_code:
            return self.failed[0].exit_code
        return 1


def explain_wait(state: dict[str, Any], need: Resources, role: str = "*",
                 ports: int = 0) -> str:
    """Why an instance needing ``need`` (and ``ports`` ports) in ``role`` is not launched.

    A framework is offered only free resources, so it cannot tell "too big for every
    agent" from "busy": the cluster ``state`` (as ``mesos-zmq state --json`` shows it)
    can. Each connected, undrained agent counts with what ``role`` may ever use there:
    unreserved resources, its own and its ancestors' reservations.
    """
    agents = [a for a in state.get("agents", [])
              if a.get("connected") and not a.get("drain")]
    if not agents:
        return "no agent is connected (or all are drained)"
    flat = need.flatten()
    usable: list[tuple[str, Resources, Resources]] = []  # (host, ever usable, free now)
    for agent in agents:
        try:
            total = Resources.parse(agent.get("resources", ""))
            dynamic = Resources.parse(agent.get("reserved", "") or "")
            used = Resources.parse(agent.get("used_resources", "") or "")
        except ResourceError:
            continue
        others = Resources.empty()
        for r in dynamic.roles():
            if r != role and not is_ancestor_role(r, role):
                others = others + dynamic.reserved(r).flatten()
        mine = total.allocatable_to(role).flatten().subtract_available(others)
        host = agent.get("hostname") or agent.get("id", "?")
        usable.append((host, mine, mine.subtract_available(used.flatten())))
    if not usable:
        return "no agent is connected (or all are drained)"

    def fits(pool: Resources) -> bool:
        return pool.contains(flat) and len(_port_list(pool)) >= ports

    if not any(fits(pool) for _, pool, _ in usable):
        for name in sorted(flat.names()):
            amount = flat.scalar(name)
            host, best = max(((h, p.scalar(name)) for h, p, _ in usable), key=lambda x: x[1])
            if best < amount:
                if not best:
                    return f"no agent has {name} (this run needs {name}:{format_scalar(amount)})"
                return (f"no agent has {name}:{format_scalar(amount)}; largest is "
                        f"{name}:{format_scalar(best)} ({host})")
        if ports:
            host, most = max(((h, len(_port_list(p))) for h, p, _ in usable),
                             key=lambda x: x[1])
            if most < ports:
                return f"no agent has {ports} ports; most is {most} ({host})"
        return f"no single agent has {_scalars_text(flat)} together"
    if any(fits(free) for _, _, free in usable):
        return "an agent has room: waiting for its offer (offers go round by fair share)"
    count = sum(1 for _, pool, _ in usable if fits(pool))
    return (f"the {count} agent(s) that can run it are busy: "
            "waiting for resources to be freed")


def _scalars_text(res: Resources) -> str:
    return ";".join(f"{n}:{format_scalar(res.scalar(n))}" for n in sorted(res.names()))


def _port_list(pool: Resources) -> list[int]:
    return [p for lo, hi in pool.ranges("ports") for p in range(lo, hi + 1)]


def _wait_for_leader(master: str, timeout: float) -> None:
    """For a zk:// master: fail within ``timeout`` when no leader is known."""
    url = parse_master_url(master)
    if url.kind != "zk":
        return
    detector = LeaderDetector(url)
    try:
        detector.wait(timeout)
    except NoLeader as exc:
        raise MasterUnreachable(
            f"no leading master in {master} within {timeout:g}s ({exc}); "
            "check --master or wait longer with --connect-timeout") from None
    finally:
        detector.close()


def _cluster_state(master: str, keys: ClientKeys | None = None) -> dict[str, Any] | None:
    try:
        reply = request(master, GetState(), timeout=2.0, keys=keys)
    except (MasterUnreachable, RequestRefused, MesosZmqError):
        return None
    return reply.state if isinstance(reply, State) else None


def run_command(
    master: str,
    command: str,
    *,
    instances: int = 1,
    cpus: float = 0.1,
    mem: float = 32.0,
    disk: float = 0.0,
    ports: int = 0,
    name: str = "mesos-zmq-run",
    task_id: str = "",
    role: str = "*",
    env: dict[str, str] | None = None,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
    progress: BinaryIO | None = None,
    quiet: bool = False,
    timeout: float | None = None,
    connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
    shell: bool = True,
    argv: list[str] | None = None,
    cluster_state: Callable[[], dict[str, Any] | None] | None = None,
    keys: ClientKeys | None = None,
    user: str = "",
) -> int:
    """Run ``command`` as ``instances`` tasks, stream their output, return the exit code.

    ``stdout``/``stderr`` (the tasks' output) and ``progress`` (what ``run`` says it
    does, one ``run: ...`` line each; ``quiet`` keeps only failures and errors) default
    to ``sys.stdout.buffer``/``sys.stderr.buffer`` as they are when called (not when
    imported, so redirections are honoured). With ``shell=False`` the task runs
    ``argv`` directly. ``ports`` asks for that many ports per instance, passed to the
    task as ``PORT0``... The framework is torn down at the end (its tasks killed), also
    on timeout (exit code 124) or Ctrl-C. Raises :class:`MasterUnreachable` when no
    master accepted the subscription within ``connect_timeout`` seconds (None: wait
    for ever). ``cluster_state`` (default: ``GetState`` from ``master``) is asked, off
    the driver thread, why instances wait. ``keys``: the framework's CurveZMQ keys
    (default: MESOS_ZMQ_KEY / MESOS_ZMQ_MASTER_KEY). ``user``: who the tasks run as
    (default: the user running this).
    """
    scalars = {"cpus": cpus, "mem": mem}
    if disk:
        scalars["disk"] = disk
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr.buffer
    framework = ExecuteFramework(
        command,
        instances=instances,
        resources=Resources.from_scalars(scalars),
        ports=ports,
        env=env,
        shell=shell,
        argv=argv,
        name=name,
        task_id=task_id,
        role=role,
        stdout=out,
        stderr=err,
        progress=progress if progress is not None else sys.stderr.buffer,
        quiet=quiet,
    )
    started = time.monotonic()
    if connect_timeout is not None:
        _wait_for_leader(master, connect_timeout)
    driver = SchedulerDriver(framework, FrameworkInfo(name=name, roles=[role], user=user),
                             master, keys=keys)
    driver.start()
    stop = threading.Event()
    explainer = threading.Thread(
        target=_explain_loop, name="run-explain", daemon=True,
        args=(framework, cluster_state or (lambda: _cluster_state(master, keys)), stop),
    )
    explainer.start()
    deadline = None if timeout is None else started + timeout
    try:
        while not framework.finished:
            if driver.status is not DriverStatus.RUNNING:
                return 1  # aborted: the error callback has said why
            now = time.monotonic()
            if (connect_timeout is not None and framework.registered_at is None
                    and now - started > connect_timeout):
                raise MasterUnreachable(
                    f"no master accepted this framework at {master} within "
                    f"{connect_timeout:g}s (is it running? check --master, or wait longer "
                    "with --connect-timeout)")
            if deadline is not None and now > deadline:
                framework.killing = True
                framework.say(f"timed out after {timeout:g}s; killing the tasks", always=True)
                return TIMEOUT_EXIT_CODE
            driver.call_soon(lambda: framework.poll_files(driver))
            framework.report_progress()
            time.sleep(POLL_INTERVAL)
        framework.report_progress(final=True)
        return framework.exit_code()
    except KeyboardInterrupt:
        framework.killing = True
        raise
    finally:
        stop.set()
        driver.stop(failover=False)
        driver.join(5.0)


def _explain_loop(framework: ExecuteFramework,
                  cluster_state: Callable[[], dict[str, Any] | None],
                  stop: threading.Event) -> None:
    """While instances wait past :data:`EXPLAIN_AFTER`, say why (off the driver thread:
    a state request may take seconds)."""
    while not stop.wait(0.5):
        since = framework.waiting_since()
        if since is None or framework.clock() - since < EXPLAIN_AFTER:
            continue
        state = cluster_state()
        if state is not None and not stop.is_set() and framework.waiting_since() is not None:
            framework.explain_wait(state)
        if stop.wait(EXPLAIN_INTERVAL):
            return
