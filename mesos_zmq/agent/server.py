"""The agent's I/O shell: socket, processes, disk and signals around :class:`AgentCore`.

Signals: SIGINT and SIGUSR1 drain (kill every task, deliver the final updates for a
short while, exit); SIGTERM exits at once and leaves tasks running, which is what a
restart under systemd's ``KillMode=process`` wants. Either way the agent's last word
to the master is ``agent_stopping``: no more offers on it, no task sent to it, until
it re-registers (within the master's heartbeat limit, or its tasks are given up).
SIGKILL leaves tasks running too, but the master learns of it only from the missed
heartbeats: tasks live under their own supervisors, and the next agent started on the
same work dir re-attaches to them from the checkpoints before it re-registers.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog
import zmq

from mesos_zmq.agent import checkpoint
from mesos_zmq.agent import flags as agent_flags
from mesos_zmq.agent.containerizer import Containerizer
from mesos_zmq.agent.core import AgentCore, Effects, RecoveredTask, TaskKey, safe_id
from mesos_zmq.agent.events import Exited, Failed
from mesos_zmq.agent.files import SandboxPathError, read_chunk
from mesos_zmq.agent.gc import expired, max_sandbox_age
from mesos_zmq.agent.host_resources import detect_gpus, detect_resources
from mesos_zmq.agent.isolation import detect_isolator
from mesos_zmq.attributes import parse_attributes
from mesos_zmq.auth.keys import client_keys
from mesos_zmq.collector import tune_collector
from mesos_zmq.detector import LeaderDetector, NoLeader
from mesos_zmq.errors import AuthError, ConfigError, MesosZmqError, ResourceError
from mesos_zmq.protocol import Error, FileData, ReadFile, TaskInfo, encode
from mesos_zmq.transport import ClientSocket

log = structlog.get_logger()

#: tasks spawned per loop iteration before the socket is looked at again
LAUNCH_BATCH = 16
#: how long a starting agent waits for ZooKeeper to name a leading master
LEADER_WAIT = 60.0
#: exit status after a local drain (SIGINT/SIGUSR1): the unit's RestartPreventExitStatus
EXIT_DRAINED = 10
#: how long a stopping agent gives its last word to the master to go out
STOP_LINGER_MS = 1000
#: how often memory limits are checked when no cgroup enforces them
ENFORCE_INTERVAL = 0.5


@dataclass(slots=True)
class AgentConfig:
    """An agent's settings; defaults, ranges and help of its flags are in
    :mod:`mesos_zmq.agent.flags` (the CLI's options are built from there)."""

    master: str = "tcp://127.0.0.1:5050"
    work_dir: str = agent_flags.default("work_dir")
    resources: str | None = agent_flags.default("resources")
    attributes: str = agent_flags.default("attributes")
    hostname: str = ""
    kill_grace_period: float = agent_flags.KILL_GRACE_PERIOD
    #: first wait before an unacknowledged status update goes again (then doubling,
    #: with jitter, up to agent_flags.STATUS_UPDATE_RETRY_MAX)
    status_update_retry: float = agent_flags.STATUS_UPDATE_RETRY
    #: bound of the random wait before the first registration with a master (then
    #: doubling per retry, up to agent_flags.REGISTRATION_BACKOFF_MAX)
    registration_backoff_factor: float = agent_flags.REGISTRATION_BACKOFF_FACTOR
    #: auto | cgroups-v1 | cgroups-v2 | posix
    isolation: str = agent_flags.default("isolation")
    cgroups_root: str = agent_flags.default("cgroups_root")
    #: also cap cpu time at the task's cpus (CFS quota), not only share it
    cgroups_enable_cfs: bool = agent_flags.default("cgroups_enable_cfs")
    #: pids limit of every task's cgroup (0 or None: no limit, the pids cgroup is not
    #: joined)
    cgroups_pids_max: int | None = agent_flags.default("cgroups_pids_max")
    #: run each task as its user (Mesos's --switch_user)
    switch_user: bool = agent_flags.default("switch_user")
    #: kill a task whose sandbox outgrows its disk, measured every interval seconds
    enforce_container_disk_quota: bool = agent_flags.default("enforce_container_disk_quota")
    container_disk_watch_interval: float = agent_flags.default("container_disk_watch_interval")
    #: GPU device indices to hand out (default: detected with nvidia-smi)
    gpu_devices: list[str] | None = None
    #: seconds a launched task may wait to be started before it is failed
    executor_registration_timeout: float = agent_flags.default("executor_registration_timeout")
    #: seconds between usage reports to the master (and posix memory enforcement)
    usage_interval: float = agent_flags.default("usage_interval")
    #: how long finished tasks' sandboxes are kept, shortened as the disk fills
    gc_delay: float = agent_flags.default("gc_delay")
    gc_disk_headroom: float = agent_flags.default("gc_disk_headroom")
    disk_watch_interval: float = agent_flags.default("disk_watch_interval")
    #: this agent's CurveZMQ key pair file and the masters' public key (default: from
    #: MESOS_ZMQ_KEY / MESOS_ZMQ_MASTER_KEY; neither: a master without keys)
    key: str | None = None
    master_key: str | None = None

    def validate(self) -> None:
        """Refuse out-of-range settings with the flag's name (also for a config built
        in code, not from the command line)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        problems = agent_flags.range_problems(values)
        if problems:
            raise ConfigError(problems[0])


class AgentServer:
    def __init__(self, config: AgentConfig) -> None:
        config.validate()
        self.config = config
        self.work_dir = Path(config.work_dir)
        try:
            # The task log and events files hold every task's environment (its secrets
            # too): only the agent may read them. Sandboxes are reached through the
            # work dir, so it stays open to the tasks' users; meta/ does not.
            (self.work_dir / "meta").mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.work_dir / "meta", 0o700)  # made 0755 by older versions
        except OSError as exc:
            raise ConfigError(f"cannot use --work-dir {self.work_dir}: {exc.strerror}") from None
        gpus = config.gpu_devices if config.gpu_devices is not None else detect_gpus()
        try:
            resources = detect_resources(str(self.work_dir), config.resources, len(gpus))
            parse_attributes(config.attributes)
        except ResourceError as exc:
            raise ConfigError(f"--resources: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"--attributes: {exc}") from None
        self.id_path = self.work_dir / "meta" / "agent_id"
        agent_id = self.id_path.read_text().strip() if self.id_path.exists() else None
        self.core = AgentCore(
            hostname=config.hostname or socket.gethostname(),
            resources=resources,
            attributes=config.attributes,
            agent_id=agent_id or None,
            new_id=lambda: uuid.uuid4().hex,
            kill_grace=config.kill_grace_period,
            retry_interval=config.status_update_retry,
            registration_backoff_factor=config.registration_backoff_factor,
            # the jitter that keeps agents apart: from the system, different per agent
            rng=random.Random(),
        )
        # Before recovery, which may already report how tasks ended while we were down.
        self.core.wall_offset = time.time() - time.monotonic()
        isolator = detect_isolator(config.cgroups_root, config.isolation)
        if config.cgroups_pids_max and not isolator.limits_pids:
            log.warning("no usable pids cgroup controller: --cgroups-pids-max is not "
                        "enforced, a task may fork without bound", isolation=isolator.kind,
                        pids_max=config.cgroups_pids_max)
        self.containerizer = Containerizer(
            self.work_dir, isolator, gpu_devices=gpus,
            cpu_hard_limit=config.cgroups_enable_cfs, kill_grace=config.kill_grace_period,
            cgroups_root=config.cgroups_root, pids_max=config.cgroups_pids_max,
            switch_user=config.switch_user,
            enforce_disk=config.enforce_container_disk_quota,
            disk_interval=config.container_disk_watch_interval,
        )
        try:
            keys = client_keys(config.key, config.master_key)
        except AuthError as exc:
            raise ConfigError(str(exc)) from None
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            self.detector = LeaderDetector(config.master)
            address = self.detector.wait(LEADER_WAIT)
        except NoLeader as exc:
            raise ConfigError(f"--master: {exc}") from None
        self.client = ClientSocket(self.context, address, keys)
        self._next_auth_warning = 0.0
        self._stop: str | None = None  # None | "leave" | "drain"
        # Spawning is slow (a fork each): launch in small batches between socket
        # reads so heartbeats and updates keep flowing during a big RunTasks.
        self._launch_queue: deque[tuple[str, TaskInfo]] = deque()
        #: the tasks of ``_launch_queue`` (a kill finds a queued launch here)
        self._queued: set[TaskKey] = set()
        #: encoded messages for the master, sent at the end of the loop's turn in as few
        #: frames as batches allow (a burst of task starts is one frame, not hundreds)
        self._outbox: list[bytes] = []
        self._log = log.bind(hostname=self.core.hostname)
        self._next_usage = 0.0
        self._next_compact_check = 0.0
        self._next_gc = 0.0
        self._next_enforce = 0.0
        self._recover()

    def _check_handshake(self, now: float) -> None:
        """A master refusing our key never answers: say why, every 10 s while it
        lasts (keys may be fixed on the master without restarting the agent)."""
        problem = self.client.auth_problem()
        if problem and now >= self._next_auth_warning:
            self._next_auth_warning = now + 10.0
            self._log.error("cannot register", reason=problem)

    # ----------------------------------------------------------------- recovery
    def _recover(self) -> None:
        """Re-attach to the tasks a previous agent left running (before registering)."""
        found = self.containerizer.recover()
        if not found:
            return
        now = time.monotonic()
        recovered = [
            RecoveredTask(framework_id=cp.framework_id, info=cp.info, state=cp.state,
                          exit_code=cp.exit_code, healthy=cp.healthy, pending=cp.pending,
                          kill_reason=cp.kill_reason)
            for cp in found
        ]
        self._apply(self.core.recover(recovered, now))
        for cp in found:
            self._consume_events((cp.framework_id, cp.info.task_id))
        self._check_supervisors(force=True)
        self._log.info("recovered tasks", tasks=len(found),
                       running=self.containerizer.running())

    def request_stop(self, drain: bool) -> None:
        self._stop = "drain" if drain else "leave"

    @property
    def drained(self) -> bool:
        """Stopped by a local drain (SIGINT/SIGUSR1): the machine is meant to stay out
        of service, so the exit status tells a supervisor not to restart it."""
        return self._stop == "drain"

    # ----------------------------------------------------------------- loop
    def serve_forever(self) -> None:
        self.core.wall_offset = time.time() - time.monotonic()
        self._log.info("agent starting", master=self.client.address,
                       resources=str(self.core.resources), agent_id=self.core.agent_id)
        self._apply(self.core.connected(time.monotonic()))
        drain_until: float | None = None
        try:
            while True:
                if self._stop == "leave":
                    break
                if self._stop == "drain" and drain_until is None:
                    self._log.info("draining: killing tasks")
                    self._apply(self.core.shutdown(time.monotonic()))
                    drain_until = time.monotonic() + self.config.kill_grace_period + 3.0
                if drain_until is not None and (
                    time.monotonic() > drain_until
                    or (not self.core.tasks and self.containerizer.running() == 0)
                ):
                    break
                # Supervisors poke the notification socket, so idle waits can be long.
                # Launches waiting for room at the launcher wait for it here, along with
                # everything else, rather than in a loop of their own.
                blocked = bool(self._launch_queue) and not self.containerizer.can_request()
                timeout = 0 if self._launch_queue and not blocked else 50
                poller = zmq.Poller()
                poller.register(self.client.socket, zmq.POLLIN)
                poller.register(self.containerizer.notify.fileno(), zmq.POLLIN)
                poller.register(self.containerizer.launcher_sock.fileno(),
                                zmq.POLLIN | (zmq.POLLOUT if blocked else 0))
                # What the last turn (or recovery, or the first registration) had to
                # say goes before waiting.
                self._send_outbox()
                ready = dict(poller.poll(timeout))
                if self.client.socket in ready:
                    self._drain_socket()
                self._launch_some()
                for key in self.containerizer.pending_events(time.monotonic()):
                    self._consume_events(key)
                self._check_supervisors()
                self._check_starts(time.monotonic())
                # Updates and replies go before the housekeeping below, which can take
                # a while (sandboxes removed, usage measured, the task log compacted).
                self._send_outbox()
                self._measure(time.monotonic())
                self._compact(time.monotonic())
                self._collect_garbage(time.monotonic())
                self._follow_leader()
                now = time.monotonic()
                if not self.core.registered:
                    self._check_handshake(now)
                self.core.wall_offset = time.time() - now
                self._apply(self.core.tick(now))
        finally:
            running = self.containerizer.running()
            if self._stop is not None:
                reason = "drained" if self._stop == "drain" else "restart"
                self._apply(self.core.stopping(reason))
            self._send_outbox()
            self.containerizer.close(wait=self._stop == "drain")
            self.client.close(linger_ms=STOP_LINGER_MS)
            self.context.term()
            self.detector.close()
            self._log.info("agent stopped", running_tasks=running)

    # ----------------------------------------------------------------- containers
    def _consume_events(self, key: TaskKey) -> None:
        """Feed the supervisor's new events to the core; what they caused is checkpointed
        (with the last event's number, in one write) before anything is sent."""
        events = self.containerizer.new_events(key)
        if not events:
            return
        total = Effects()
        ended = False
        for event in events:
            # The supervisor cannot always tell that the memory limit ended its task.
            oom = (isinstance(event, Exited) and not event.killed and not event.oom
                   and self.containerizer.oom_killed(key))
            total.extend(self.core.supervisor_event(key, event, time.monotonic(), oom=oom))
            self.containerizer.consumed(key, event)
            ended = ended or isinstance(event, Exited | Failed)
        self._apply(total, seq=(key, events[-1].seq))
        if ended:
            self.containerizer.destroy(key)

    def _measure(self, now: float) -> None:
        """Report usage now and then; without cgroups, also enforce memory limits."""
        posix = self.containerizer.isolator.kind == "posix"
        if posix and now >= self._next_enforce:
            self._next_enforce = now + ENFORCE_INTERVAL
            for key in self.containerizer.enforce_all():
                self._log.warning("task over its memory limit: killed",
                                  framework_id=key[0], task_id=key[1])
        if now < self._next_usage:
            return
        self._next_usage = now + self.config.usage_interval
        usage = {key: (u.cpu_seconds, u.rss_bytes, u.peak_bytes)
                 for key, u in self.containerizer.usage_all().items()}
        self._apply(self.core.report_usage(usage))

    def _check_supervisors(self, force: bool = False) -> None:
        for key in self.containerizer.lost_supervisors(time.monotonic(), force=force):
            self._consume_events(key)  # it may have recorded the end before dying
            if not self.containerizer.is_running(key):
                continue
            self._log.warning("task supervisor died", framework_id=key[0], task_id=key[1])
            self.containerizer.signal(key, signal.SIGKILL)
            self.containerizer.destroy(key)
            self._apply(self.core.supervisor_lost(key, time.monotonic()))

    def _check_starts(self, now: float) -> None:
        """Fail the tasks launched longer than ``executor_registration_timeout`` ago
        and still not started (Mesos fails the tasks of an executor that has not
        registered in time): a stopped launcher or a stuck supervisor would otherwise
        leave them staging for good, their resources held. Written off when their
        supervisor has not begun them (it starts nothing then); else the supervisor
        is killed, and reported lost as any (a shared one's other tasks with it)."""
        timeout = self.config.executor_registration_timeout
        killed = False
        for key in self.containerizer.overdue_starts(now, timeout):
            why = f"not started within {timeout:g} s (--executor-registration-timeout)"
            self._log.warning("task not started in time", framework_id=key[0],
                              task_id=key[1], timeout=timeout)
            if self.containerizer.write_off(key, why):
                self._consume_events(key)
            else:
                self.containerizer.kill_supervisor(key)
                killed = True
        if killed:
            self._check_supervisors(force=True)  # once, for every supervisor killed

    def _follow_leader(self) -> None:
        """A new leader was elected: connect to it and register there."""
        address = self.detector.changed()
        if address is not None and address != self.client.address:
            self._log.info("new leading master", address=address)
            self._send_outbox()  # the old connection's, as if sent at once
            self.client.reconnect(address)
            self._apply(self.core.connected(time.monotonic()))

    def _drain_socket(self) -> None:
        for envelope in self.client.receive_all():
            self._apply(self.core.handle(envelope.message, envelope.request_id,
                                         time.monotonic()))

    def _apply(self, fx: Effects, seq: tuple[TaskKey, int] | None = None) -> None:
        self._write_checkpoints(fx, seq)
        if fx.checkpoint_agent_id:
            self._checkpoint_id(fx.checkpoint_agent_id)
            self._log = self._log.bind(agent_id=fx.checkpoint_agent_id)
            self._log.info("registered with master")
        self._launch_queue.extend(fx.launch)
        self._queued.update((framework_id, task.task_id) for framework_id, task in fx.launch)
        for key in fx.cancel:
            self._cancel(key)
        for key, signum in fx.signal:
            self.containerizer.signal(key, signum)
        for request, request_id in fx.read_file:
            self._outbox.append(encode(self._read_file(request, request_id), request_id))
        for msg, request_id in fx.messages:
            self._outbox.append(encode(msg, request_id))
        for key in fx.forget:
            self.containerizer.forget(key)
        if fx.reconnect:
            self._log.warning("master silent: reconnecting")
            self._send_outbox()  # the old connection's, as if sent at once
            self.client.reconnect()
            self._apply(self.core.connected(time.monotonic()))

    def _send_outbox(self) -> None:
        if self._outbox:
            frames, self._outbox = self._outbox, []
            self.client.send_all(frames)

    def _write_checkpoints(self, fx: Effects, seq: tuple[TaskKey, int] | None) -> None:
        """Append the core's records to each task's log before anything is sent."""
        self.containerizer.record(fx.checkpoint, seq)

    def _collect_garbage(self, now: float) -> None:
        """Delete sandboxes of finished tasks once they are too old for the disk."""
        if now < self._next_gc:
            return
        self._next_gc = now + self.config.disk_watch_interval
        try:
            disk = shutil.disk_usage(self.work_dir)
        except OSError:
            return
        usage = disk.used / disk.total if disk.total else 0.0
        max_age = max_sandbox_age(self.config.gc_delay, self.config.gc_disk_headroom, usage)
        active = set(self.core.tasks) | self.containerizer.keys()
        candidates: list[tuple[str, float]] = []
        for events in (self.work_dir / "meta" / "events").glob("*/*"):
            if (events.parent.name, events.name) not in active:
                try:
                    candidates.append((str(events), events.stat().st_mtime))
                except OSError:
                    continue
        for sandbox in (self.work_dir / "frameworks").glob("*/tasks/*"):
            if (sandbox.parent.parent.name, sandbox.name) in active or not sandbox.is_dir():
                continue
            try:
                candidates.append((str(sandbox), sandbox.stat().st_mtime))
            except OSError:
                continue
        removed = 0
        for path in expired(candidates, time.time(), max_age):
            if Path(path).is_dir():
                shutil.rmtree(path, ignore_errors=True)
                self.containerizer.sandbox_removed((Path(path).parent.parent.name,
                                                    Path(path).name))
                removed += 1
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        if removed:
            self._log.info("sandboxes garbage-collected", removed=removed,
                           max_age_s=round(max_age), disk_usage=round(usage, 3))

    def _compact(self, now: float) -> None:
        """Keep the task log small: rewrite it with only what a restart would need."""
        if now < self._next_compact_check:
            return
        self._next_compact_check = now + 5.0
        if self.containerizer.task_log.size() < checkpoint.COMPACT_BYTES:
            return
        kept = self.containerizer.compact(self.core.checkpoint_view)
        self._log.info("task log compacted", tasks=kept)

    def _cancel(self, key: TaskKey) -> None:
        """A task killed before it started: if its launch is still queued here it never
        goes (``_launch_some`` skips ended tasks); if the launcher has it, its events
        file is written off first, so that its supervisor does not start it (as a
        restarted agent writes off a task whose supervisor never came). Too late for
        either (its supervisor has begun it): it is stopped once it has started."""
        if key in self._queued:
            self._apply(self.core.killed_unstarted(key, time.monotonic()))
        elif self.containerizer.write_off(key, "the task was killed before it started"):
            self._consume_events(key)

    def _launch_some(self) -> None:
        """Start the next few queued tasks, in the order they came, while the launcher
        has room for their requests: once it has not, the rest wait in the queue (where
        a kill still finds them unstarted) and the loop goes on sending updates."""
        for _ in range(LAUNCH_BATCH):
            if not self._launch_queue or not self.containerizer.can_request():
                return
            framework_id, task = self._launch_queue.popleft()
            key = (framework_id, task.task_id)
            self._queued.discard(key)
            if self.core.is_terminal(key):
                continue  # killed before it was started
            try:
                self.containerizer.launch(self.core.agent_id or "", framework_id, task)
            except (OSError, MesosZmqError) as exc:  # GpuError, IsolationError...
                self._log.warning("task failed to start", framework_id=framework_id,
                                  task_id=task.task_id, error=str(exc))
                self.containerizer.destroy(key)
                self._apply(self.core.spawn_failed(key, str(exc), time.monotonic()))
                continue

    def _read_file(self, request: ReadFile, request_id: str) -> FileData | Error:
        key = self._task_of_read(request)
        if isinstance(key, str):
            return Error(code="invalid", message=key, in_reply_to=request_id)
        sandbox = self.containerizer.sandbox(key)
        if not sandbox.is_dir():
            return Error(code="invalid", message=f"no sandbox for task {key[1][:64]!r} of "
                         f"framework {key[0][:64]!r}", in_reply_to=request_id)
        try:
            data, size = read_chunk(sandbox, request.path, request.offset, request.length)
        except SandboxPathError as exc:
            return Error(code="invalid", message=str(exc), in_reply_to=request_id)
        except Exception as exc:  # a task owns its sandbox: nothing in it may stop us
            self._log.exception("sandbox read failed", path=request.path[:100])
            return Error(code="internal", message=f"cannot read {request.path[:100]!r}: "
                         f"{type(exc).__name__}", in_reply_to=request_id)
        done = self.core.is_terminal(key) and request.offset + len(data) >= size
        return FileData(task_id=request.task_id, path=request.path, offset=request.offset,
                        data=data, size=size, done=done)

    def _task_of_read(self, request: ReadFile) -> TaskKey | str:
        """The task a read names, or why there is none. Task ids are unique only within
        a framework: without a framework id, an id used by several is refused."""
        if request.framework_id:
            key = (request.framework_id, request.task_id)
        else:
            known = {k for k in (*self.core.tasks, *self.containerizer.keys(),
                                 *self.core.completed)
                     if k[1] == request.task_id}
            if len(known) > 1:
                frameworks = ", ".join(sorted(k[0][:64] for k in known)[:10])
                return (f"task id {request.task_id[:64]!r} is used by {len(known)} "
                        f"frameworks here ({frameworks}): name one")
            if not known:
                return f"no task {request.task_id[:64]!r} on this agent"
            (key,) = known
        if not (safe_id(key[0]) and safe_id(key[1])):
            return "task and framework ids must be safe names"
        return key

    def _checkpoint_id(self, agent_id: str) -> None:
        tmp = self.id_path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            handle.write(agent_id)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.id_path)


def run_agent(config: AgentConfig) -> int:
    """Run an agent until a signal; returns the process exit code."""
    tune_collector()  # as the master's: a burst of launches and updates is one turn's
    server = AgentServer(config)

    def drain(signum: int, frame: FrameType | None) -> None:
        server.request_stop(drain=True)

    def leave(signum: int, frame: FrameType | None) -> None:
        server.request_stop(drain=False)

    signal.signal(signal.SIGINT, drain)
    signal.signal(signal.SIGUSR1, drain)
    signal.signal(signal.SIGTERM, leave)
    server.serve_forever()
    return EXIT_DRAINED if server.drained else 0
