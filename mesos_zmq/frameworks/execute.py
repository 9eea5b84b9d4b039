"""The framework behind ``mesos-zmq run`` (like mesos-execute).

It waits for offers, launches ``instances`` copies of one command, streams each
task's stdout and stderr by reading its sandbox files through the master, and ends
with an exit code: 0 when every instance finished, else the exit code of the first
instance that failed (1 when none is known, e.g. the task was LOST).

Output is followed by polling: every ~150 ms each open file of a started task gets a
``ReadFile`` from where the last one stopped, with at most one read outstanding per
file so chunks are written in order. A file is drained when the agent says
``done`` (the task is terminal and everything was read); a task whose agent can no
longer answer is given up on a few seconds after it ended, so the command always
returns.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from mesos_zmq.errors import ResourceError
from mesos_zmq.protocol import Error, FileData, FrameworkInfo, Message, Offer, TaskInfo, TaskStatus
from mesos_zmq.resources import Resources
from mesos_zmq.scheduler import DriverStatus, Scheduler, SchedulerDriver
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

#: end states with nothing to read: the task never started in a sandbox
_NEVER_RAN = frozenset({TaskState.ERROR, TaskState.DROPPED})
#: end states the user should be told about (their stdout cannot explain them)
_REPORTED = frozenset({TaskState.LOST, TaskState.ERROR, TaskState.DROPPED, TaskState.GONE})


@dataclass
class _Stream:
    """One sandbox file being followed."""

    path: str
    out: BinaryIO
    offset: int = 0
    in_flight_since: float | None = None
    drained: bool = False


@dataclass
class _Instance:
    """One copy of the command."""

    index: int
    task_id: str
    agent_id: str = ""
    state: str = ""
    exit_code: int | None = None
    message: str = ""
    ended_at: float | None = None
    streams: list[_Stream] = field(default_factory=list)


class ExecuteFramework(Scheduler):
    """Launch ``instances`` copies of a command and follow their output.

    All state is touched only in the driver thread (callbacks and :meth:`poll_files`,
    which the caller schedules with ``driver.call_soon``); the caller reads
    :attr:`finished` and then :meth:`exit_code`.
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
        stdout: BinaryIO,
        stderr: BinaryIO,
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
        self.stdout = stdout
        self.stderr = stderr
        self.clock = clock
        prefix = f"{name}-{uuid.uuid4().hex[:8]}"
        self.instances = [_Instance(i, f"{prefix}-{i}") for i in range(instances)]
        self._by_id = {inst.task_id: inst for inst in self.instances}
        self.pending = list(self.instances)
        self.failed: list[_Instance] = []  # in the order they failed
        self.finished = False
        self.fatal_error: str | None = None

    # ----------------------------------------------------------------- offers
    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            if not self.pending:
                driver.decline_offer(offer.offer_id, refuse_seconds=60)
                continue
            left = Resources.parse(offer.resources)
            tasks: list[TaskInfo] = []
            while self.pending:
                fit = self._fit(left, offer.role)
                if fit is None:
                    break
                needed, ports = fit
                left = left - needed
                inst = self.pending.pop(0)
                inst.agent_id = offer.agent_id
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
            else:
                driver.decline_offer(offer.offer_id, refuse_seconds=1.0)
        if not self.pending:
            driver.suppress_offers()

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
            inst.streams = [_Stream("stdout", self.stdout), _Stream("stderr", self.stderr)]
        if not terminal:
            return
        inst.ended_at = self.clock()
        inst.exit_code = status.exit_code
        inst.message = status.message
        if status.state != TaskState.FINISHED:
            self.failed.append(inst)
        if status.state in _REPORTED:
            detail = f" ({status.reason})" if status.reason else ""
            self.stderr.write(
                f"task {inst.task_id} {status.state}{detail}: {status.message}\n".encode()
            )
            self.stderr.flush()
        if status.state in _NEVER_RAN:
            for stream in inst.streams:
                stream.drained = True
        self._check_done()

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.stderr.write(f"error from the master: {message}\n".encode())
        self.stderr.flush()

    # ----------------------------------------------------------------- output
    def poll_files(self, driver: SchedulerDriver) -> None:
        """Ask for more of every open stream (call in the driver thread)."""
        now = self.clock()
        for inst in self.instances:
            for stream in inst.streams:
                if stream.drained:
                    continue
                if inst.ended_at is not None and now - inst.ended_at > DRAIN_GRACE:
                    stream.drained = True  # the agent is gone or not answering
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
                    stream.out.write(reply.data)
                    stream.out.flush()
                    stream.offset += len(reply.data)
                if reply.done and stream.offset >= reply.size:
                    stream.drained = True
                elif reply.data and stream.offset < reply.size:
                    self._read(driver, inst, stream, self.clock())  # more is there now
            elif (
                isinstance(reply, Error)
                and inst.ended_at is not None
                and reply.code != "not_registered"
            ):
                # Sandbox gone or agent lost. (A local not_registered only means we are
                # resubscribing, so that one is retried until the grace period ends.)
                stream.drained = True
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
    role: str = "*",
    env: dict[str, str] | None = None,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
    timeout: float | None = None,
    shell: bool = True,
    argv: list[str] | None = None,
) -> int:
    """Run ``command`` as ``instances`` tasks, stream their output, return the exit code.

    ``stdout``/``stderr`` default to ``sys.stdout.buffer``/``sys.stderr.buffer`` as
    they are when called (not when imported, so redirections are honoured). With
    ``shell=False`` the task runs ``argv`` directly. ``ports`` asks for that many
    ports per instance, passed to the task as ``PORT0``... The framework is torn down
    at the end (its tasks killed), also on timeout (exit code 124) or Ctrl-C.
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
        stdout=out,
        stderr=err,
    )
    driver = SchedulerDriver(framework, FrameworkInfo(name=name, roles=[role]), master)
    driver.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not framework.finished:
            if driver.status is not DriverStatus.RUNNING:
                return 1  # aborted: the error callback has said why
            if deadline is not None and time.monotonic() > deadline:
                err.write(f"timed out after {timeout:g}s; killing the tasks\n".encode())
                err.flush()
                return TIMEOUT_EXIT_CODE
            driver.call_soon(lambda: framework.poll_files(driver))
            time.sleep(POLL_INTERVAL)
        return framework.exit_code()
    finally:
        driver.stop(failover=False)
        driver.join(5.0)
