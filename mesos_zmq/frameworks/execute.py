"""The framework behind ``mesos-zmq run`` (like mesos-execute).

It waits for offers, launches ``instances`` copies of one command, streams each
task's stdout and stderr by reading its sandbox files through the master, and ends
with an exit code: 0 when every instance finished, else the exit code of the first
instance that did not (1 when none is known, e.g. the task was LOST).
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from mesos_zmq.protocol import Error, FileData, FrameworkInfo, Message, Offer, TaskInfo, TaskStatus
from mesos_zmq.resources import Resources
from mesos_zmq.scheduler import Scheduler, SchedulerDriver
from mesos_zmq.tasks import TERMINAL

POLL_INTERVAL = 0.15
READ_CHUNK = 256 * 1024
#: after a task ended, how long to keep trying to drain its files
DRAIN_GRACE = 5.0
READ_TIMEOUT = 5.0


@dataclass
class _Stream:
    path: str
    out: BinaryIO
    offset: int = 0
    in_flight_since: float | None = None
    drained: bool = False


@dataclass
class _Instance:
    task_id: str
    agent_id: str = ""
    state: str = ""
    exit_code: int | None = None
    message: str = ""
    ended_at: float | None = None
    streams: list[_Stream] = field(default_factory=list)


class ExecuteFramework(Scheduler):
    def __init__(self, command: str, *, instances: int, resources: Resources,
                 env: dict[str, str], shell: bool, argv: list[str] | None,
                 name: str, stdout: BinaryIO, stderr: BinaryIO) -> None:
        self.command = command
        self.resources = resources
        self.env = env
        self.shell = shell
        self.argv = argv or []
        self.name = name
        self.stdout = stdout
        self.stderr = stderr
        prefix = f"{name}-{uuid.uuid4().hex[:8]}"
        self.instances = [_Instance(f"{prefix}-{i}") for i in range(instances)]
        self.pending = list(self.instances)
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.failure: str | None = None

    # ----------------------------------------------------------------- offers
    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            left = Resources.parse(offer.resources)
            tasks: list[TaskInfo] = []
            while self.pending and left.contains(self.resources):
                inst = self.pending.pop(0)
                left = left - self.resources
                inst.agent_id = offer.agent_id
                tasks.append(TaskInfo(
                    task_id=inst.task_id, agent_id=offer.agent_id, name=self.name,
                    resources=str(self.resources), command=self.command, argv=self.argv,
                    shell=self.shell, env=self.env,
                ))
            if tasks:
                driver.launch_tasks([offer.offer_id], tasks, refuse_seconds=5)
            else:
                driver.decline_offer(offer.offer_id, refuse_seconds=30 if not self.pending else 1)
        if not self.pending:
            driver.suppress_offers()

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        inst = next((i for i in self.instances if i.task_id == status.task_id), None)
        if inst is None:
            return
        inst.state = status.state
        if status.agent_id:
            inst.agent_id = status.agent_id
        if status.state in ("TASK_RUNNING", *TERMINAL) and not inst.streams:
            inst.streams = [_Stream("stdout", self.stdout), _Stream("stderr", self.stderr)]
        if status.state in TERMINAL and inst.ended_at is None:
            inst.ended_at = time.monotonic()
            inst.exit_code = status.exit_code
            inst.message = status.message
            if status.state not in ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED"):
                self.stderr.write(
                    f"task {inst.task_id} {status.state}: {status.message}\n".encode())
                self.stderr.flush()
                for stream in inst.streams:
                    stream.drained = True  # no sandbox worth reading
            if status.state == "TASK_DROPPED" or status.state == "TASK_ERROR":
                for stream in inst.streams:
                    stream.drained = True

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.failure = message
        self.stderr.write(f"error: {message}\n".encode())
        self.stderr.flush()

    # ----------------------------------------------------------------- output
    def poll_files(self, driver: SchedulerDriver) -> None:
        """Ask for more of every open stream (called in the driver thread)."""
        now = time.monotonic()
        for inst in self.instances:
            for stream in inst.streams:
                if stream.drained:
                    continue
                if inst.ended_at is not None and now - inst.ended_at > DRAIN_GRACE:
                    stream.drained = True
                    continue
                if (stream.in_flight_since is not None
                        and now - stream.in_flight_since < READ_TIMEOUT):
                    continue
                stream.in_flight_since = now
                driver.read_file(inst.agent_id, inst.task_id, stream.path, stream.offset,
                                 READ_CHUNK, self._on_data(inst, stream))
        self._check_done()

    def _on_data(self, inst: _Instance, stream: _Stream) -> Callable[[Message], None]:
        def callback(reply: Message) -> None:
            stream.in_flight_since = None
            if isinstance(reply, FileData):
                if reply.offset == stream.offset and reply.data:
                    stream.out.write(reply.data)
                    stream.out.flush()
                    stream.offset += len(reply.data)
                if reply.done and stream.offset >= reply.size:
                    stream.drained = True
            elif isinstance(reply, Error) and inst.ended_at is not None:
                stream.drained = True  # sandbox gone or agent lost: nothing more to read
            self._check_done()

        return callback

    def _check_done(self) -> None:
        if all(i.ended_at is not None and all(s.drained for s in i.streams)
               for i in self.instances):
            self.finished.set()

    def exit_code(self) -> int:
        if self.failure is not None and not any(i.ended_at for i in self.instances):
            return 1
        for inst in self.instances:
            if inst.state != "TASK_FINISHED":
                return inst.exit_code if inst.exit_code else 1
        return 0


def run_command(
    master: str,
    command: str,
    *,
    instances: int = 1,
    cpus: float = 0.1,
    mem: float = 32.0,
    disk: float = 0.0,
    name: str = "mesos-zmq-run",
    role: str = "*",
    env: dict[str, str] | None = None,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
    timeout: float | None = None,
    shell: bool = True,
    argv: list[str] | None = None,
) -> int:
    """Run ``command`` as ``instances`` tasks and return the exit code to use."""
    scalars = {"cpus": cpus, "mem": mem}
    if disk:
        scalars["disk"] = disk
    framework = ExecuteFramework(
        command, instances=instances, resources=Resources.from_scalars(scalars), env=env or {},
        shell=shell, argv=argv, name=name,
        stdout=stdout or sys.stdout.buffer, stderr=stderr or sys.stderr.buffer,
    )
    driver = SchedulerDriver(framework, FrameworkInfo(name=name, roles=[role]), master)
    driver.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    code = 0
    try:
        while not framework.finished.is_set():
            if driver.status.value == "DRIVER_ABORTED":
                return 1
            if deadline is not None and time.monotonic() > deadline:
                framework.stderr.write(f"timed out after {timeout:g}s\n".encode())
                framework.stderr.flush()
                for inst in framework.instances:
                    if inst.ended_at is None and inst.agent_id:
                        driver.kill_task(inst.task_id, inst.agent_id)
                time.sleep(1.0)
                return 124
            driver.call_soon(lambda: framework.poll_files(driver))
            framework.finished.wait(POLL_INTERVAL)
        code = framework.exit_code()
    finally:
        driver.stop(failover=False)
        driver.join(5.0)
    return code
