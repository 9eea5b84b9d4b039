"""Running tasks as real processes: sandboxes, supervisors, isolation, recovery.

Each task gets a container: a sandbox directory (its files, ``stdout``, ``stderr``), a
record in the agent's task log and an events file (see :mod:`mesos_zmq.agent.checkpoint`),
cgroups from the isolator, and a supervisor process forked by the agent's launcher
(:mod:`mesos_zmq.agent.supervisor`, its own or shared with other tasks of a burst, see
:mod:`mesos_zmq.agent.launcher`) that starts the command and records how it ends.
Supervisors leave the agent's session, so stopping the agent (systemd's
``KillMode=process``, or a SIGKILL) leaves them and their tasks running; the next agent
finds them through the checkpoints and re-attaches.

The agent learns about events from a datagram the supervisor sends to the agent's
notification socket, and, as a fallback for datagrams sent while no agent listened,
by looking at every container once per ``POLL_INTERVAL``.

Who a task runs as: with ``switch_user`` (the agent's ``--switch-user``, on by
default, as in Mesos) a task that names a user runs as that user; the supervisor looks
it up and switches (see :mod:`mesos_zmq.agent.supervisor`), so an unknown user fails the
launch there, off the agent's loop. The agent's own HOME, USER and LOGNAME are then left
out of the task's environment: the supervisor puts the user's in.

A task with a ``disk`` resource has its sandbox watched by its supervisor when
``enforce_disk`` is on (``--enforce-container-disk-quota``).

A launch request that is too large for one packet to the launcher (a task with a big
environment) travels by a file under ``<work_dir>/meta/launch`` (see
:mod:`mesos_zmq.agent.launcher`), so a task's size is bounded by the validation limits
alone, never by a socket buffer.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import select
import signal as signals
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from mesos_zmq.agent import checkpoint
from mesos_zmq.agent.checkpoint import TaskCheckpoint, TaskLog
from mesos_zmq.agent.core import TaskView
from mesos_zmq.agent.events import (
    CoreRecord,
    Exited,
    Failed,
    Started,
    Supervising,
    SupervisorEvent,
    read_appended,
)
from mesos_zmq.agent.flags import CONTAINER_DISK_WATCH_INTERVAL, KILL_GRACE_PERIOD, default
from mesos_zmq.agent.gc import disk_limit_bytes
from mesos_zmq.agent.isolation import Isolator, Limits, Usage
from mesos_zmq.agent.launcher import (
    INLINE_REQUEST_BYTES,
    encode_request,
    spec_file_request,
    write_spec_file,
)
from mesos_zmq.agent.supervisor import (
    NOTIFY_SOCKET,
    SUN_PATH_MAX,
    SupervisorSpec,
    cancel_unstarted,
    load_events,
    notify_address,
    process_alive,
)
from mesos_zmq.errors import ConfigError, MesosZmqError, ResourceError
from mesos_zmq.protocol import TaskInfo
from mesos_zmq.resources import Resources

log = structlog.get_logger()

_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "USER", "LOGNAME", "TZ", "TMPDIR")
#: what a task running as a user of its own gets from that user instead of the agent
_IDENTITY_ENV = frozenset({"HOME", "USER", "LOGNAME"})
#: how often every container is looked at, for events whose datagram was lost
POLL_INTERVAL = 1.0
#: how long a recovering agent waits for a supervisor that created its events file
#: but has not written to it yet
SUPERVISOR_START_GRACE = 2.0
#: the agent's single-instance lock, in its ``meta/`` (see ``Containerizer._take_lock``)
LOCK_FILE = "agent.lock"
#: the most notification datagrams read in one turn of the agent's loop (more wait for
#: the next turn): a burst of them never holds up heartbeats and updates
NOTIFY_BATCH = 1024
MB = 1024 * 1024
#: (framework id, task id): task ids are unique only within a framework
TaskKey = tuple[str, str]


@dataclass(slots=True)
class Container:
    framework_id: str
    task_id: str
    container_id: str
    events: Path
    sandbox: Path
    limits: Limits
    gpus: list[str] = field(default_factory=list)
    supervisor_pid: int | None = None
    supervisor_start: int | None = None
    #: forked by this agent (reaped with waitpid) rather than recovered
    child: bool = False
    #: its supervisor came from the running launcher, which releases the cgroups once
    #: it has reaped it (a shared supervisor releases each task's as soon as it ended):
    #: the agent need not (it would do the same work twice, on its loop, while a burst
    #: of launches waits)
    released_by_launcher: bool = False
    task_pid: int | None = None
    last_seq: int = 0
    events_size: int = -1
    #: bytes of the events file read and consumed: the next read starts here, so the
    #: agent's work per event does not grow with the file (0 after a restart: the
    #: file is read once from the start, ``last_seq`` telling what is new)
    events_offset: int = 0
    #: events returned by ``new_events`` and not yet consumed, by seq: the offset
    #: just past each one's line, where the next read starts once it is consumed
    event_ends: dict[int, int] = field(default_factory=dict)
    exited: bool = False
    #: when it was handed to the launcher (monotonic), until it is started or judged
    #: late (see ``overdue_starts``); None for a recovered task
    launched_at: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.framework_id, self.task_id)


@dataclass(frozen=True, slots=True)
class Launch:
    """A task launched here and not yet forgotten, as its launch record says."""

    framework_id: str
    task: TaskInfo
    container_id: str
    gpus: tuple[str, ...] = ()


class GpuError(MesosZmqError):
    """Not enough free GPU devices for a task (the master allocated more than exist)."""


def task_user(task: TaskInfo, switch_user: bool) -> str:
    """The user the task's supervisor must run it as ("": the agent's own user)."""
    return task.user if switch_user else ""


def limits_for(resources: Resources, cpu_hard_limit: bool,
               pids_max: int | None = None) -> Limits:
    """What the isolator enforces for a task: its cpus and mem, and the agent's pids
    limit (``--cgroups-pids-max``; 0 or None: none)."""
    cpus = resources.scalar("cpus")
    mem = resources.scalar("mem")
    return Limits(
        cpus=cpus if cpus > 0 else None,
        cpu_hard_limit=cpu_hard_limit and cpus > 0,
        mem_bytes=int(mem * MB) if mem > 0 else None,
        pids_max=pids_max or None,
    )


class Containerizer:
    def __init__(self, work_dir: Path, isolator: Isolator, *,
                 gpu_devices: list[str] | None = None, cpu_hard_limit: bool = False,
                 pids_max: int | None = default("cgroups_pids_max"),
                 kill_grace: float = KILL_GRACE_PERIOD,
                 cgroups_root: str = "mesos-zmq",
                 switch_user: bool = default("switch_user"),
                 enforce_disk: bool = default("enforce_container_disk_quota"),
                 disk_interval: float = CONTAINER_DISK_WATCH_INTERVAL) -> None:
        self.work_dir = work_dir
        self.task_log = TaskLog(work_dir)
        #: every task not yet forgotten, by (framework id, task id)
        self.launches: dict[TaskKey, Launch] = {}
        #: last supervisor event consumed, per task not yet forgotten
        self.last_seqs: dict[TaskKey, int] = {}
        self.isolator = isolator
        self.cgroups_root = cgroups_root
        self.cpu_hard_limit = cpu_hard_limit
        self.pids_max = pids_max
        self.kill_grace = kill_grace
        self.switch_user = switch_user
        self.enforce_disk = enforce_disk
        self.disk_interval = disk_interval
        self.gpu_devices = list(gpu_devices or [])
        self.containers: dict[TaskKey, Container] = {}  # live containers
        self.by_events: dict[str, TaskKey] = {}  # events file -> task
        self.sandboxes: dict[TaskKey, Path] = {}
        #: launch requests too large for a packet go through files here
        self.launch_dir = work_dir / "meta" / "launch"
        # The lock first: what follows removes files (launch specs, the notification
        # socket) that another agent running on this work dir would still be using.
        self._lock: int | None = self._take_lock()
        self._clean_launch_dir()
        # Container ids start with this agent's own mark, so cleaning up orphans after a
        # restart never touches the containers of another agent on the same host. It is
        # derived from the work dir alone (as it was when the notification socket had an
        # abstract name of that hash), so it stays the same across restarts and upgrades.
        digest = hashlib.sha1(os.path.abspath(work_dir).encode()).hexdigest()
        self.prefix = digest[8:20]
        self.notify_name = notify_address(str(work_dir))
        self.notify = self._bind_notify()
        self._last_poll = 0.0
        self._last_alive_check = 0.0
        self._last_start_check = 0.0
        self._reaped: list[TaskKey] = []  # tasks whose supervisor the launcher reaped
        self.launcher_sock, self.launcher = self._spawn_launcher()

    def _take_lock(self) -> int:
        """Take the work dir's single-instance lock; returns its descriptor, held until
        :meth:`close` (the kernel drops it with the process, however that ends).

        An ``flock`` on ``meta/agent.lock``, a file of the agent's user in its 0700
        ``meta/``: no other user can open it, let alone hold it. (The abstract socket
        name that served as the lock before had no permissions: any local user, a
        task's left running across an agent restart, could bind it while the agent was
        down and keep it from starting.) Close-on-exec, so neither the launcher nor the
        supervisors ever hold it after the agent is gone."""
        path = self.work_dir / "meta" / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            self.task_log.close()
            raise ConfigError(f"cannot use --work-dir {self.work_dir}: cannot open {path}: "
                              f"{exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            self.task_log.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ConfigError(
                    f"another agent is already running with --work-dir {self.work_dir}"
                ) from None
            raise ConfigError(f"cannot use --work-dir {self.work_dir}: cannot lock {path}: "
                              f"{exc.strerror}") from None
        return fd

    def _bind_notify(self) -> socket.socket:
        """Bind the socket supervisors notify (at :func:`notify_address`, a file in
        ``meta/``: see there why), non-blocking.

        Under the lock, so a socket file found there was left by an earlier agent of
        this work dir: it is replaced, at the same path, which the supervisors that
        agent started still send to. A path too long for a ``sockaddr_un`` (a deep work
        dir) is bound through a descriptor of ``meta/``, as supervisors send to it."""
        meta_path = self.work_dir / "meta"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            meta = os.open(meta_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(NOTIFY_SOCKET, dir_fd=meta)
                if len(self.notify_name) <= SUN_PATH_MAX:
                    sock.bind(self.notify_name)
                else:
                    sock.bind(f"/proc/self/fd/{meta}/{NOTIFY_SOCKET}")
                # meta/ keeps other users out already; the socket is the agent's alone
                os.chmod(NOTIFY_SOCKET, 0o600, dir_fd=meta)
            finally:
                os.close(meta)
        except OSError as exc:
            sock.close()
            self._release_lock()
            self.task_log.close()
            raise ConfigError(f"cannot bind the agent's notification socket in "
                              f"{meta_path}: {exc.strerror}") from None
        sock.setblocking(False)
        return sock

    def _release_lock(self) -> None:
        """Let another agent start on this work dir (once: the descriptor is gone)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _clean_launch_dir(self) -> None:
        """Create the launch spec directory, readable by the agent's user alone, and drop
        the files a previous agent wrote and its launcher never read (their tasks are
        written off by recovery, since no supervisor started them)."""
        self.launch_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.launch_dir, 0o700)
        for stale in self.launch_dir.iterdir():
            with contextlib.suppress(OSError):
                stale.unlink()

    def _spawn_launcher(self) -> tuple[socket.socket, subprocess.Popen[bytes]]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        proc = subprocess.Popen(
            [sys.executable, "-m", "mesos_zmq.agent.launcher", str(theirs.fileno()),
             self.isolator.kind, self.cgroups_root],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=False,
        )
        theirs.close()
        ours.setblocking(False)
        return ours, proc

    def launcher_replies(self) -> None:
        """Read what the launcher said: supervisors forked, supervisors reaped (each
        reply names the events files of a supervisor's tasks, see
        :mod:`mesos_zmq.agent.launcher`)."""
        while True:
            try:
                data = self.launcher_sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                self._launcher_died()
                break
            try:
                reply = json.loads(data)
            except ValueError:
                continue
            if not isinstance(reply, dict):
                continue
            if "error" in reply:
                log.error("launcher refused a request", error=reply["error"])
            pid = reply.get("pid")
            keys = reply.get("started") or reply.get("reaped")
            if not isinstance(pid, int) or not isinstance(keys, list):
                continue
            started = "started" in reply
            for key in keys:
                task = self.by_events.get(key) if isinstance(key, str) else None
                c = self.containers.get(task) if task else None
                if c is None:
                    continue
                if started:
                    c.supervisor_pid = pid
                elif c.supervisor_pid == pid or c.supervisor_pid is None:
                    c.supervisor_pid = None  # reaped: its pid may be reused from now on
                    c.child = False
                    self._reaped.append(c.key)

    def _launcher_died(self) -> None:
        """Start a new launcher; supervisors of the old one are watched by polling, and
        their cgroups released here (the new launcher does not know them)."""
        log.error("the task launcher exited; starting a new one")
        for c in self.containers.values():
            c.child = False
            c.released_by_launcher = False
        self.launcher_sock.close()
        self.launcher.wait()
        self.launcher_sock, self.launcher = self._spawn_launcher()

    def close(self, wait: bool = False) -> None:
        """Stop using the launcher (it exits by itself; supervisors stay). ``wait``: let
        it finish releasing the cgroups of tasks that just ended (a drain)."""
        self.task_log.close()
        self.notify.close()
        # Supervisors sending now find no socket (and drop the datagram) rather than a
        # dead one; the next agent binds a new one at the same path.
        with contextlib.suppress(OSError):
            os.unlink(os.fsdecode(self.notify_name))
        self.launcher_sock.close()
        if wait:
            try:
                self.launcher.wait(10)
            except subprocess.TimeoutExpired:
                pass
        # Last: the next agent may start once this one has let go of everything.
        self._release_lock()

    # ----------------------------------------------------------------- task log
    def launched(self, key: TaskKey) -> bool:
        """Whether the task was launched here and is not forgotten yet."""
        return key in self.launches

    def keys(self) -> set[TaskKey]:
        """Every task launched here and not forgotten, or with a container here."""
        return set(self.launches) | set(self.containers)

    def record(self, records: list[tuple[TaskKey, CoreRecord]],
               seq: tuple[TaskKey, int] | None = None) -> None:
        """Append the core's records (and the last event consumed) to the task log, in
        one write; records of tasks never launched here are dropped."""
        self.task_log.append(checkpoint.batch_records(records, seq, self.launched))

    def compact(self, view: Callable[[TaskKey], TaskView | None]) -> int:
        """Rewrite the task log with what a restart needs of each task still known to
        the core (``view``): its launch, its state and the last event consumed.
        Returns how many tasks it kept."""
        live = []
        for key, launch in self.launches.items():
            task = view(key)
            if task is None:
                continue
            live.append(TaskCheckpoint(
                framework_id=launch.framework_id, info=launch.task,
                container_id=launch.container_id, gpus=list(launch.gpus), state=task.state,
                exit_code=task.exit_code, healthy=task.healthy, pending=list(task.pending),
                kill_reason=task.kill_reason, last_seq=self.last_seqs.get(key, 0)))
        self.task_log.compact(live)
        return len(live)

    # ----------------------------------------------------------------- paths
    def sandbox_path(self, framework_id: str, task_id: str) -> Path:
        return self.work_dir / "frameworks" / framework_id / "tasks" / task_id

    def sandbox(self, key: TaskKey) -> Path:
        """The task's sandbox (where it is, or would be, when not known here)."""
        return self.sandboxes.get(key) or self.sandbox_path(*key)

    def sandbox_removed(self, key: TaskKey) -> None:
        """The task's sandbox was garbage-collected."""
        self.sandboxes.pop(key, None)

    def environment(self, agent_id: str, framework_id: str, task: TaskInfo,
                    sandbox: Path, gpus: list[str], user: str = "") -> dict[str, str]:
        """``user``: the task runs as that user, whose identity the supervisor adds."""
        inherited = [k for k in _INHERITED_ENV if not (user and k in _IDENTITY_ENV)]
        env = {k: os.environ[k] for k in inherited if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update(
            MESOS_TASK_ID=task.task_id,
            MESOS_FRAMEWORK_ID=framework_id,
            MESOS_AGENT_ID=agent_id,
            MESOS_SANDBOX=str(sandbox),
            MESOS_DIRECTORY=str(sandbox),
        )
        try:
            ports = [p for lo, hi in Resources.parse(task.resources).ranges("ports")
                     for p in range(lo, hi + 1)]
        except Exception:
            ports = []
        if ports:
            env["PORTS"] = ",".join(str(p) for p in ports)
            env["PORT"] = str(ports[0])
            for i, port in enumerate(ports):
                env[f"PORT{i}"] = str(port)
        # A task sees exactly its own GPUs (none at all when it asked for none).
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(gpus) if gpus else "void"
        env.update(task.env)
        return env

    # ----------------------------------------------------------------- GPUs
    def _gpus_in_use(self) -> set[str]:
        return {g for c in self.containers.values() if not c.exited for g in c.gpus}

    def _take_gpus(self, count: int) -> list[str]:
        if count <= 0:
            return []
        used = self._gpus_in_use()
        free = [g for g in self.gpu_devices if g not in used]
        if len(free) < count:
            raise GpuError(f"task needs {count} GPUs but only {len(free)} are free")
        return free[:count]

    # ----------------------------------------------------------------- launch
    def launch(self, agent_id: str, framework_id: str, task: TaskInfo) -> Container:
        """Checkpoint the task, prepare its isolation and fork its supervisor.

        Raises OSError (or GpuError, IsolationError) when it cannot be started; the
        command's own start failure arrives later as a ``failed`` event.
        """
        resources = Resources.parse(task.resources)
        gpus = self._take_gpus(int(resources.scalar("gpus")))
        container_id = f"{self.prefix}-{uuid.uuid4().hex}"
        sandbox = self.sandbox_path(framework_id, task.task_id)
        events = checkpoint.events_path(self.work_dir, framework_id, task.task_id)
        # A forgotten task of the same id left its events file (kept until GC): it is
        # stale, and the new supervisor must be able to create its own.
        with contextlib.suppress(FileNotFoundError):
            events.unlink()
        # The one write that must precede the start: a task never exists unrecorded.
        self.task_log.append([checkpoint.launch_record(framework_id, task, container_id,
                                                       gpus)])
        self.launches[(framework_id, task.task_id)] = Launch(framework_id, task, container_id,
                                                             tuple(gpus))
        limits = limits_for(resources, self.cpu_hard_limit, self.pids_max)
        argv = ["/bin/sh", "-c", task.command] if task.shell else list(task.argv)
        grace = task.kill_grace_period if task.kill_grace_period is not None else self.kill_grace
        user = task_user(task, self.switch_user)
        spec = SupervisorSpec(
            events=str(events), sandbox=str(sandbox), argv=argv,
            env=self.environment(agent_id, framework_id, task, sandbox, gpus, user),
            health_check=task.health_check, kill_grace=grace,
            notify_name=self.notify_name, user=user,
            disk_limit=disk_limit_bytes(resources.scalar("disk")) if self.enforce_disk
            else None,
            disk_interval=self.disk_interval,
        )
        container = Container(framework_id=framework_id, task_id=task.task_id,
                              container_id=container_id, events=events, sandbox=sandbox,
                              limits=limits, gpus=gpus, child=True,
                              launched_at=time.monotonic())
        self._track(container)
        request = encode_request(str(events), spec, container_id, limits)
        spec_file: Path | None = None
        if len(request) > INLINE_REQUEST_BYTES:
            spec_file = write_spec_file(self.launch_dir, container_id, request)
            request = spec_file_request(str(events), spec_file)
        try:
            self._send_request(request)
        except OSError:
            if spec_file is not None:
                with contextlib.suppress(OSError):
                    spec_file.unlink()
            raise
        container.released_by_launcher = True  # the launcher that has the request
        return container

    def can_request(self) -> bool:
        """Whether the launcher's socket has room for a request now (the kernel says so
        while it is at most a quarter full: a few dozen requests wait for the launcher,
        the rest in the agent's queue, in order)."""
        try:
            _, writable, _ = select.select([], [self.launcher_sock], [], 0)
        except (OSError, ValueError):
            return True  # a closed socket: sending finds out, and starts a new launcher
        return bool(writable)

    def _send_request(self, request: bytes) -> None:
        """Hand a request to the launcher, starting a new one if it died."""
        for _ in range(1000):
            try:
                self.launcher_sock.send(request)
                return
            except BlockingIOError:
                # Never block on a full socket: the launcher may be waiting for us to
                # read its replies.
                self.launcher_replies()
                time.sleep(0.001)
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE:
                    # Too large for a packet is this request's fault, not the launcher's:
                    # starting launchers again and again would not help.
                    raise OSError(f"launch request of {len(request)} bytes is too large "
                                  "for the launcher's socket") from None
                self._launcher_died()
        raise OSError("the task launcher does not take requests")

    def _track(self, container: Container) -> None:
        self.containers[container.key] = container
        self.by_events[str(container.events)] = container.key
        self.sandboxes[container.key] = container.sandbox

    # ----------------------------------------------------------------- recovery
    def recover(self) -> list[TaskCheckpoint]:
        """Re-attach to every checkpointed task; returns their checkpoints.

        Containers of tasks whose final update was already acknowledged are removed.
        Orphaned cgroups (no checkpoint refers to them) are destroyed.
        """
        found = list(self.task_log.load().values())
        self.task_log.compact(found)
        for cp in found:
            events = checkpoint.events_path(self.work_dir, cp.framework_id, cp.info.task_id)
            try:
                limits = limits_for(Resources.parse(cp.info.resources), self.cpu_hard_limit)
            except ResourceError as exc:
                # Recorded by an agent that did not check (or under other limits): the
                # task is still watched and reported, just without memory enforcement.
                log.error("recovered task has unreadable resources", task_id=cp.info.task_id,
                          framework_id=cp.framework_id, error=str(exc))
                limits = Limits()
            container = Container(
                framework_id=cp.framework_id, task_id=cp.info.task_id,
                container_id=cp.container_id, events=events,
                sandbox=self.sandbox_path(cp.framework_id, cp.info.task_id), limits=limits,
                gpus=cp.gpus, last_seq=cp.last_seq,
            )
            self.launches[container.key] = Launch(cp.framework_id, cp.info, cp.container_id,
                                                  tuple(cp.gpus))
            self.last_seqs[container.key] = cp.last_seq
            recorded = load_events(events)
            if not recorded and not container.exited:
                recorded = self._await_supervisor(events)
            for event in recorded:
                if isinstance(event, Supervising) and event.pid is not None:
                    container.supervisor_pid = event.pid
                    container.supervisor_start = event.start
                if isinstance(event, Started) and event.pid is not None:
                    container.task_pid = event.pid
                if isinstance(event, Exited | Failed) and event.seq <= cp.last_seq:
                    container.exited = True
            self._track(container)
        known = {c.container_id for c in self.containers.values() if not c.exited}
        for container_id in self.isolator.containers():
            if container_id.startswith(self.prefix + "-") and container_id not in known:
                log.warning("destroying orphaned container", container_id=container_id)
                self.isolator.destroy(container_id)
        return found

    @staticmethod
    def _await_supervisor(events: Path) -> list[SupervisorEvent]:
        """A task logged but with nothing recorded by a supervisor: one may be starting
        right now (forked just before the old agent died). Give it a moment, then write
        the task off so that a late supervisor cannot start it unseen."""
        deadline = time.monotonic() + SUPERVISOR_START_GRACE
        while events.exists() and time.monotonic() < deadline:
            recorded = load_events(events)
            if recorded:
                return recorded
            time.sleep(0.05)
        if events.exists():
            return load_events(events)
        cancel_unstarted(events, "the agent restarted before the task was started")
        return load_events(events)

    # ----------------------------------------------------------------- events
    def pending_events(self, now: float) -> list[TaskKey]:
        """Tasks that may have new events: notified ones, and all of them once a
        ``POLL_INTERVAL`` (datagrams sent while no agent listened are lost)."""
        due: set[TaskKey] = set()
        # Only the agent's user can send here (the socket is in meta/, 0700), and a
        # datagram only names a task whose events file is then read again, so one
        # naming anything else is dropped; bounded, so a burst cannot stall the loop.
        for _ in range(NOTIFY_BATCH):
            try:
                data = self.notify.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            task = self.by_events.get(data.decode(errors="replace"))
            if task is not None:
                due.add(task)
        if now - self._last_poll >= POLL_INTERVAL:
            self._last_poll = now
            for key, c in self.containers.items():
                if c.exited:
                    continue
                try:
                    size = (c.events).stat().st_size
                except OSError:
                    size = -1
                if size != c.events_size:
                    due.add(key)
        return sorted(due)

    def new_events(self, key: TaskKey) -> list[SupervisorEvent]:
        """The task's events not yet consumed, read from where the last consumed one
        ended (see :func:`~mesos_zmq.agent.events.read_appended`): an event returned but
        not consumed is returned again, as when the whole file was read each time."""
        c = self.containers.get(key)
        if c is None:
            return []
        try:
            c.events_size = (c.events).stat().st_size
        except OSError:
            c.events_size = -1
        read, end = read_appended(c.events, c.events_offset, c.last_seq)
        if not read:
            c.events_offset = end  # nothing there to consume: never read it again
            c.event_ends.clear()
            return []
        c.event_ends = {event.seq: line_end for event, line_end in read}
        c.event_ends[read[-1][0].seq] = end  # past the lines after it that are no events
        return [event for event, _ in read]

    def consumed(self, key: TaskKey, event: SupervisorEvent) -> None:
        c = self.containers.get(key)
        if c is None:
            return
        end = c.event_ends.pop(event.seq, None)
        if end is not None and end > c.events_offset:
            c.events_offset = end
        c.last_seq = max(c.last_seq, event.seq)
        self.last_seqs[key] = c.last_seq
        if isinstance(event, Started) and event.pid is not None:
            c.task_pid = event.pid
        if isinstance(event, Exited | Failed):
            c.exited = True

    def lost_supervisors(self, now: float, force: bool = False) -> list[TaskKey]:
        """Tasks whose supervisor is gone (reported once each); the caller reads their
        events first, since a supervisor records the task's end before it exits."""
        self.launcher_replies()
        lost, self._reaped = self._reaped, []
        if force or now - self._last_alive_check >= POLL_INTERVAL:
            self._last_alive_check = now
            for c in self.containers.values():
                if c.child or c.exited or c.key in lost:
                    continue
                if c.supervisor_pid is None or not self._alive(c.supervisor_pid,
                                                               c.supervisor_start):
                    c.supervisor_pid = None
                    lost.append(c.key)
        return lost

    @staticmethod
    def _alive(pid: int, start: int | None) -> bool:
        return process_alive(pid, start)

    # ----------------------------------------------------------------- signals
    def signal(self, key: TaskKey, signum: int) -> None:
        """Signal the task's process group; SIGKILL also reaches its whole cgroup."""
        c = self.containers.get(key)
        if c is None or c.exited:
            return
        if c.task_pid is not None:
            try:
                os.killpg(c.task_pid, signum)
            except ProcessLookupError:
                pass
            except PermissionError as exc:
                log.warning("cannot signal task", task_id=c.task_id,
                            framework_id=c.framework_id, error=str(exc))
        if signum == signals.SIGKILL:
            for pid in self.isolator.pids(c.container_id):
                if pid == c.supervisor_pid:
                    continue  # it records how the task ended, then leaves by itself
                try:
                    os.kill(pid, signals.SIGKILL)
                except OSError:
                    pass

    def oom_killed(self, key: TaskKey) -> bool:
        c = self.containers.get(key)
        return c is not None and self.isolator.oom_killed(c.container_id)

    def overdue_starts(self, now: float, timeout: float) -> list[TaskKey]:
        """Tasks launched ``timeout`` seconds ago or more and not started (nor ended),
        each returned once. Looked at every :data:`POLL_INTERVAL` at most."""
        if now - self._last_start_check < POLL_INTERVAL:
            return []
        self._last_start_check = now
        late = []
        for c in self.containers.values():
            if c.launched_at is None:
                continue
            if c.task_pid is not None or c.exited:
                c.launched_at = None  # started (or ended): nothing to watch
            elif now - c.launched_at >= timeout:
                c.launched_at = None
                late.append(c.key)
        return late

    def kill_supervisor(self, key: TaskKey) -> None:
        """SIGKILL the task's supervisor (stuck: it was given the task long ago and
        has not started it); its end is found as any supervisor's."""
        c = self.containers.get(key)
        if c is None or c.supervisor_pid is None:
            return
        if self._alive(c.supervisor_pid, c.supervisor_start):
            with contextlib.suppress(OSError):
                os.kill(c.supervisor_pid, signals.SIGKILL)

    def write_off(self, key: TaskKey, why: str) -> bool:
        """Keep a launched task from starting: its events file is created with a
        ``failed`` event, unless its supervisor created it first (False: it is starting,
        or has). A supervisor that comes later finds the file taken and starts nothing
        (see :func:`~mesos_zmq.agent.supervisor.cancel_unstarted`)."""
        c = self.containers.get(key)
        if c is None or c.exited:
            return False
        try:
            return cancel_unstarted(c.events, why)
        except OSError:
            return False

    def destroy(self, key: TaskKey) -> None:
        """The task ended: kill what it left behind and release its cgroups and GPUs.

        Supervisors started through this agent's launcher are in their task's cgroups
        until they exit, and the launcher destroys the cgroups when it reaps them (also
        after it told us so); a recovered task (its launcher died with the old agent)
        is cleaned up here."""
        c = self.containers.pop(key, None)
        if c is None:
            return
        self.by_events.pop(str(c.events), None)
        if not c.released_by_launcher:
            self.isolator.destroy(c.container_id)
        if c.task_pid is not None:
            try:
                os.killpg(c.task_pid, signals.SIGKILL)  # stragglers of a posix container
            except OSError:
                pass

    def forget(self, key: TaskKey) -> None:
        """Its last update was acknowledged: drop the checkpoints (the sandbox stays)."""
        c = self.containers.get(key)
        if c is not None and not c.exited:
            return  # still running: keep it
        if c is not None:
            self.containers.pop(key, None)
            self.by_events.pop(str(c.events), None)
        if self.launches.pop(key, None) is None:
            return  # never launched here (a refused id, a kill of an unknown task)
        self.last_seqs.pop(key, None)
        self.task_log.append([checkpoint.forget_record(*key)])
        # The events file stays until the sandbox is garbage-collected: deleting files
        # while launching makes every later file creation slower (ext4 skips recently
        # freed inodes), and launches create several per task.

    # ----------------------------------------------------------------- usage
    def usage_all(self) -> dict[TaskKey, Usage]:
        """What each running task uses (tasks that cannot be measured are left out)."""
        measured = {key: self.usage(key) for key in list(self.containers)}
        return {key: usage for key, usage in measured.items() if usage is not None}

    def enforce_all(self) -> list[TaskKey]:
        """Posix isolation only: kill every task over its memory limit; those killed."""
        return [key for key in list(self.containers) if self.enforce(key)]

    def is_running(self, key: TaskKey) -> bool:
        """Whether the task has a container whose end was not consumed yet."""
        c = self.containers.get(key)
        return c is not None and not c.exited

    def usage(self, key: TaskKey) -> Usage | None:
        c = self.containers.get(key)
        if c is None or c.exited:
            return None
        return self.isolator.usage(c.container_id, c.task_pid)

    def enforce(self, key: TaskKey) -> bool:
        """Posix isolation only: kill a task over its memory limit; True if it was."""
        c = self.containers.get(key)
        if c is None or c.exited:
            return False
        return self.isolator.enforce(c.container_id, c.task_pid, c.limits)

    def running(self) -> int:
        return sum(1 for c in self.containers.values() if not c.exited)
