"""The task supervisor: a small process that outlives the agent.

Theory of operation
-------------------
The agent's launcher (:mod:`mesos_zmq.agent.launcher`) forks a supervisor for each task,
or one shared by a run of tasks that have nothing to watch while they run
(:func:`supervise_shared`; a fork, not an exec, so launching stays as cheap as a fork:
the child already has this module loaded). The supervisor leaves the agent's session,
starts the task in a session of its own (so a kill reaches every process the task
started, and the task's cgroups are joined before ``exec``), then waits for it.
Everything it learns goes to the task's append-only events file
(``<work_dir>/meta/events/<framework>/<task>``), one JSON object per line with an
increasing ``seq`` (typed in :mod:`mesos_zmq.agent.events`):

* ``supervising`` ``{"pid": …, "start": …}`` - the supervisor itself (its start time
  in clock ticks tells it from a recycled pid);
* ``started``  ``{"pid": …}`` - the command was exec'd;
* ``failed``   ``{"error": …}`` - it could not be started;
* ``health``   ``{"healthy": …, "message": …}`` - a health check result worth reporting;
* ``exited``   ``{"exit_code": …, "signal": …, "killed": …}`` - its true exit status
  (``killed`` says why the supervisor killed it itself, e.g. a failing health check).

That file is the task's status stream: an agent that was SIGKILLed and restarted reads
it from where its own checkpoint says it stopped, so a task that ended meanwhile is
reported with its real exit status. After each event the supervisor sends a one-line
datagram with the events file's path to the agent's notification socket (a Unix
socket file in the agent's ``meta/``, see :func:`notify_address`), so the agent reacts
at once without polling files; when no agent listens the datagram is simply dropped.

Supervisors take turns (:class:`Turn`): each makes its tasks' files (events,
sandbox, outputs) as soon as it is forked, then waits for the supervisor forked before
it to have started its tasks (a pipe that reads end of file; :data:`ORDER_WAIT` at
most) before it starts its own, and hands the turn on once they are started and
recorded, so tasks start in the order they came while the next supervisor's files are
made side by side.

Health checks run here too, so they keep running (and keep killing unhealthy tasks)
while the agent is down; so does the disk watch: a task with a ``disk`` resource has
its sandbox measured every ``disk_interval`` seconds (:class:`SandboxUsage`, a few
thousand entries at a time between looks at the task) and is killed once it holds
more (``exited`` with ``disk`` saying what was measured; the agent fails the task with
REASON_CONTAINER_LIMITATION_DISK).

The task's user. With a ``user`` in its spec (the agent's ``--switch-user``), the
supervisor, which runs as the agent's user (root), looks the user up (uid, primary
group, supplementary groups, home), gives it the sandbox and the task's ``stdout`` and
``stderr``, joins the task's cgroups (as root: the task could not), and starts the
task with those ids, so that ``exec`` happens as the user; health-check commands run as
the user too. A user this host does not know, or any other user while the agent is not
root, fails the launch (:class:`UserError`), as in Mesos. From then on the sandbox is
the user's: whatever the supervisor does in it (create the output files, measure it)
starts from a descriptor of the sandbox (reached through the agent's own directories)
and goes on one name at a time with ``O_NOFOLLOW``, so that a link the task planted
cannot make a root process write, chown or walk anything outside (the agent's reads
are :mod:`mesos_zmq.agent.files`).

The child never touches ZeroMQ or logging (it inherited their state from a threaded
parent): it only uses the OS, writes its events, and leaves with ``os._exit``.

Signals. The supervisor lives in the agent's systemd unit, so ``systemctl kill`` without
``--kill-whom=main`` signals it along with the agent and the tasks. It survives the
signals such a command (or an operator's ``kill``) would send - SIGHUP, SIGINT, SIGQUIT,
SIGTERM, SIGUSR1, SIGUSR2 - because it alone can record how its task ends; it leaves as
soon as the task has ended. (SIGKILL still ends it: the agent then fails the task and
kills it.) It catches them with a handler that does nothing rather than ignoring them:
``exec`` resets caught signals to their default action but keeps ignored ones ignored,
so the task and its health-check commands start with every signal at its default and
none blocked, whatever the agent or the launcher had set.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from mesos_zmq.agent.du import DiskWatch
from mesos_zmq.agent.events import (
    Exited,
    Failed,
    Health,
    Started,
    Supervising,
    SupervisorEvent,
    decode_event,
    encode_event,
)
from mesos_zmq.agent.flags import CONTAINER_DISK_WATCH_INTERVAL, KILL_GRACE_PERIOD
from mesos_zmq.agent.isolation import join_cgroups
from mesos_zmq.agent.run_as import (
    RunAs,
    open_outputs,
    resolve_user,
    task_environment,
)

if TYPE_CHECKING:  # the launcher, which forks supervisors, stays small without it
    from mesos_zmq.protocol import HealthCheck

#: the events a supervisor writes
WrittenEvent = Supervising | Started | Failed | Health | Exited
#: a signal disposition, as ``signal.signal`` takes it
Handler = Callable[[int, FrameType | None], Any] | int


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    """Everything a supervisor needs, decided by the agent before the fork."""

    events: str
    sandbox: str
    argv: list[str]
    env: dict[str, str]
    cgroup_procs: list[str] = field(default_factory=list)
    health_check: HealthCheck | None = None
    kill_grace: float = KILL_GRACE_PERIOD
    notify_name: bytes = b""
    #: the user the task runs as ("": the agent's own, nothing is switched)
    user: str = ""
    #: the most its sandbox may hold, in bytes (None: not watched)
    disk_limit: int | None = None
    disk_interval: float = CONTAINER_DISK_WATCH_INTERVAL


#: the agent's notification socket, in its ``meta/`` directory
NOTIFY_SOCKET = "notify"
#: the longest path a ``sockaddr_un`` holds (108 bytes, with the terminating NUL)
SUN_PATH_MAX = 107


def notify_address(work_dir: str) -> bytes:
    """The path of the notification socket of the agent with this work dir.

    A socket file in ``meta/`` rather than an abstract name (as it was): abstract names
    have no permissions, so any local user (a task's, whose processes outlive an agent
    restart) could bind the name while the agent was down, or send it datagrams. In
    ``meta/`` (0700) only the agent's user can bind, connect or send: supervisors run
    as that user (only the task itself takes on another user's ids). The path stays the
    same across agent restarts, so supervisors started by an earlier agent reach the
    next one. The agent's single-instance lock is a separate ``flock`` (see
    :class:`~mesos_zmq.agent.containerizer.Containerizer`); paths longer than a
    ``sockaddr_un`` holds are reached through a descriptor (see :func:`notify_send`).
    """
    return os.fsencode(os.path.join(os.path.abspath(work_dir), "meta", NOTIFY_SOCKET))


# ------------------------------------------------------------------------ the events


class _Events:
    """Appends events and pokes the agent; never raises."""

    def __init__(self, spec: SupervisorSpec, sock: socket.socket | None = None) -> None:
        """``sock``: the notification socket to send through, shared by the tasks of
        a shared supervisor (one socket for all of them, not one each); None: one of
        its own, closed with it."""
        self.path = spec.events
        self.seq = 0
        self.notify_name = spec.notify_name
        # O_EXCL: the file must be ours. If it exists, a restarted agent found this task
        # without a supervisor and wrote it off (see cancel_unstarted); raises
        # FileExistsError, and the task is never started.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        try:
            self.fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:  # the framework's first task here
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.fd = os.open(self.path, flags, 0o644)
        self.own_sock = sock is None
        self.sock = notify_socket() if sock is None else sock

    def close(self) -> None:
        os.close(self.fd)
        if self.sock is not None and self.own_sock:
            self.sock.close()

    def write(self, event: WrittenEvent, notify: bool = True) -> None:
        """Append one event (numbered and timed here); ``notify`` pokes the agent (not
        needed for an event the agent can just as well read along with the next one).

        The line is :func:`~mesos_zmq.agent.events.encode_event`'s, built from the
        event's fields without copying the event: a supervisor is a fork of the
        launcher, and every object it touches costs it a copied page."""
        self.seq += 1
        body = {"seq": self.seq, "event": event.TAG, "time": time.time()}
        body.update(event.fields())
        try:
            os.write(self.fd, (json.dumps(body) + "\n").encode())
        except OSError:
            pass
        if notify and self.sock is not None and self.notify_name:
            try:
                notify_send(self.sock, self.notify_name, self.path.encode())
            except OSError:
                pass  # no agent listening, or its queue is full: it polls as a fallback


def notify_socket() -> socket.socket | None:
    """A socket to poke the agent through (None if there can be none: the agent polls).

    Never connected: each datagram is addressed on its own, so the kernel checks the
    sender's permission on ``meta/`` at every send, and a socket that reached a task by
    mistake would not carry the supervisor's access with it (it is close-on-exec
    anyway). An agent that restarts binds a new socket at the same path, which a
    connected socket would not follow."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    except OSError:
        return None
    sock.setblocking(False)
    return sock


def notify_send(sock: socket.socket, address: bytes, data: bytes) -> None:
    """Send ``data`` to the agent's notification socket at ``address``.

    A path too long for a ``sockaddr_un`` (a deep work dir) is reached through a
    descriptor of its directory, ``/proc/self/fd/<fd>/notify``, as the agent bound it.
    Raises OSError: no agent listening (ENOENT, ECONNREFUSED), its queue full
    (EAGAIN); the agent polls for what it missed."""
    if address.startswith(b"\0") or len(address) <= SUN_PATH_MAX:
        sock.sendto(data, address)
        return
    directory, name = os.path.split(address)
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.sendto(data, b"/proc/self/fd/%d/%s" % (fd, name))
    finally:
        os.close(fd)


def open_fds() -> list[int]:
    """The descriptors this process has open."""
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def _close_inherited_fds(fds: list[int] | None = None) -> None:
    """Drop the agent's sockets and files (ZeroMQ's among them) from this process:
    ``fds``, the forking process's as it listed them just before the fork, or all."""
    if fds is None:
        fds = open_fds()
    for fd in fds:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass


#: signals a supervisor outlives (see the module docstring)
SURVIVED_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
                              signal.SIGUSR1, signal.SIGUSR2})


def _survive(signum: int, frame: FrameType | None) -> None:
    """Catch and drop a survived signal (caught, not ignored: exec resets it)."""


#: ``signal``'s C functions, without the module's wrappers: those turn every handler
#: into an enum (raising and catching an exception per call for a function handler),
#: and a forked supervisor pays a copied page for each object that work touches
_SIGNAL_C = sys.modules["_signal"]
#: what a child of the forking process must change (see :func:`fork_ready`)
_signal_plan: list[tuple[int, Handler]] | None = None


def signal_plan() -> list[tuple[int, Handler]]:
    """The dispositions this process must change to be a supervisor: survived signals
    get :func:`_survive`; SIGPIPE and SIGXFSZ stay ignored, as Python has them (a
    vanished agent or a full disk must not kill us; the task gets them back at their
    default); every other signal caught or ignored goes back to its default."""
    plan: list[tuple[int, Handler]] = []
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        # The C module's own SIG_IGN and SIG_DFL: it accepts no other objects for them.
        wanted: Handler
        if signum in SURVIVED_SIGNALS:
            wanted = _survive
        elif signum in (signal.SIGPIPE, signal.SIGXFSZ):
            wanted = _SIGNAL_C.SIG_IGN
        else:
            wanted = _SIGNAL_C.SIG_DFL
        try:
            if signal.getsignal(signum) != wanted:
                plan.append((signum, wanted))
        except (OSError, ValueError):
            pass  # a signal number the C library keeps for itself
    return plan


def fork_ready() -> None:
    """Work out once, in a process that forks many supervisors (the launcher) and whose
    own dispositions are final, what each of its children must change: a child then
    makes a handful of calls instead of looking at every signal (each object a forked
    child touches costs it a copied page)."""
    global _signal_plan
    _signal_plan = signal_plan()


def _reset_signals() -> None:
    """Give this process the dispositions a supervisor needs and its task should inherit
    (see :func:`signal_plan`), and block nothing. Only the signals that differ are
    touched, so a launch costs a few system calls, not sixty."""
    for signum, wanted in _signal_plan if _signal_plan is not None else signal_plan():
        try:
            _SIGNAL_C.signal(signum, wanted)
        except (OSError, ValueError):
            pass  # a signal number the C library keeps for itself
    _SIGNAL_C.pthread_sigmask(signal.SIG_SETMASK, ())


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state first)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    fields = data[data.rindex(b")") + 2:].split()
    return fields if len(fields) > 19 else None


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), to tell it from a recycled pid."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def process_alive(pid: int, start: int | None) -> bool:
    """``pid`` runs (not a zombie) and, when ``start`` is given, is that same process.
    One small read, as the agent asks this of every recovered supervisor each second."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return False
    return start is None or int(fields[19]) == start


def run_forked(spec: SupervisorSpec,
               prepare: Callable[[], list[str]] | None = None,
               finish: Callable[[], bool] | None = None,
               inherited: list[int] | None = None,
               started: int | None = None, after: int | None = None) -> NoReturn:
    """Entry point in the forked child; never returns.

    ``prepare`` runs here rather than in the agent, so the agent's loop pays only for
    the checkpoint and the request: it creates the sandbox and returns the cgroup.procs
    files to join (the launcher made the cgroups, with their limits, before the fork),
    and an error in it, or one the launcher met making the cgroups, is reported as the
    task's ``failed`` event. ``finish`` runs once the task has ended: it says whether
    the memory limit killed it. (The launcher releases the cgroups once this process
    has exited.) A launcher calls :func:`fork_ready` first, and lists its descriptors
    (:func:`open_fds`) for ``inherited`` before it forks a batch, so that each child has
    less to do here. ``started`` and ``after``: its place in the order of starts (see
    :class:`Turn`).
    """
    code = 1
    try:
        kept = (started, after)
        _detach_from_launcher([fd for fd in (open_fds() if inherited is None else inherited)
                               if fd not in kept])
        code = supervise(spec, prepare, finish, Turn(after, started))
    finally:
        os._exit(code)


#: longest a supervisor waits for the one forked before it to start its tasks before it
#: starts its own anyway, in seconds: only a supervisor that hangs (a user lookup that
#: never answers) or a host so busy that 64 execs take this long makes it wait that
#: long; the order of starts is given up then, never the tasks
ORDER_WAIT = 2.0


class Turn:
    """A supervisor's place in the order of starts (see :mod:`mesos_zmq.agent.launcher`):
    it starts its task(s) once ``after`` reads end of file (the supervisor forked before
    it has started its own, or died), or after :data:`ORDER_WAIT`, and hands the turn
    on by closing ``started`` once they are started (or could not be). Each only once;
    None: no turn to wait for, none to hand on."""

    def __init__(self, after: int | None = None, started: int | None = None) -> None:
        self.after = after
        self.started = started

    def wait(self) -> None:
        after, self.after = self.after, None
        if after is None:
            return
        try:
            select.select([after], [], [], ORDER_WAIT)
        except (OSError, ValueError):
            pass  # no turn to wait for: start now
        try:
            os.close(after)
        except OSError:
            pass

    def hand_on(self) -> None:
        """Once this supervisor's starts are over (never before its own turn came)."""
        self.wait()
        started, self.started = self.started, None
        if started is not None:
            try:
                os.close(started)
            except OSError:
                pass


def _detach_from_launcher(inherited: list[int] | None) -> None:
    """What a supervisor does first in the child forked from the launcher: keep the
    launcher's heap shared (no collection), leave its session and its signal set-up,
    close what it inherited (``inherited``; None: every descriptor it has), and put
    /dev/null on 0-2."""
    gc.disable()  # the child's copy of the launcher's heap stays shared
    os.setsid()
    signal.set_wakeup_fd(-1)  # the launcher's; closed just below
    _reset_signals()
    _close_inherited_fds(inherited)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def supervise(spec: SupervisorSpec, prepare: Callable[[], list[str]] | None = None,
              finish: Callable[[], bool] | None = None, turn: Turn | None = None) -> int:
    """Start the task (in its ``turn``: its events, sandbox and outputs are made before),
    watch it and its health, record how it ended."""
    turn = Turn() if turn is None else turn
    try:
        try:
            events = _Events(spec)
        except FileExistsError:
            return 0  # written off by a restarted agent before we began: do nothing
        except OSError:
            return 1  # no place to record anything: the agent sees a supervisor that died
        try:
            return _supervise(spec, events, prepare, finish, turn)
        finally:
            events.close()
    finally:
        turn.hand_on()  # (already, unless it ended before its start)


def _supervise(spec: SupervisorSpec, events: _Events, prepare: Callable[[], list[str]] | None,
               finish: Callable[[], bool] | None, turn: Turn) -> int:
    pid = os.getpid()
    events.write(Supervising(pid=pid, start=process_start(pid)), notify=False)
    try:
        run_as = resolve_user(spec.user)  # first: an unknown user creates nothing
        procs = list(spec.cgroup_procs)
        if prepare is not None:
            procs += prepare()
        env = task_environment(spec.env, run_as)
        out, err = open_outputs(spec.sandbox, run_as)
        try:
            # The supervisor joins the task's cgroups itself and the task inherits them
            # (as Mesos's executors live in their task's container): one migration per
            # hierarchy, done as root before the task's ids are taken on, and the task
            # is started with a plain fork + exec, with no Python code run in between.
            turn.wait()
            join_cgroups(procs)
            task = _start(spec, env, run_as, out, err)
        finally:
            os.close(out)
            os.close(err)
    except Exception as exc:  # anything: the agent must hear why it did not start
        _finish(finish)
        events.write(Failed(error=str(exc)))
        turn.hand_on()
        return 1
    if procs:
        _spare_from_oom_killer()  # after the fork: the task keeps the default score
    events.write(Started(pid=task, supervisor=os.getpid()))
    turn.hand_on()  # once recorded: the next task's start is recorded after this one's
    if spec.health_check is None and spec.disk_limit is None:
        # Nothing to do meanwhile: just wait (the common case, kept cheap).
        _, status = os.waitpid(task, 0)
        killed = disk = ""
    else:
        status, killed, disk = _Watcher(task, spec, events, env, run_as).wait()
    oom = _finish(finish)
    if os.WIFSIGNALED(status):
        events.write(Exited(exit_code=None, signal=os.WTERMSIG(status), killed=killed,
                            oom=oom, disk=disk))
    else:
        events.write(Exited(exit_code=os.waitstatus_to_exitcode(status), signal=None,
                            killed=killed, oom=oom, disk=disk))
    return 0


def _start(spec: SupervisorSpec, env: dict[str, str], run_as: RunAs | None, out: int,
           err: int) -> int:
    """Start the task in a session of its own (stdin from /dev/null, its outputs on
    ``out`` and ``err``, in its sandbox, with the ids of its user); returns its pid.

    ``subprocess`` does it in C, with vfork unless ids are switched: nothing of this
    process is copied (nor charged to the task's memory cgroup, which it has joined).
    Not ``os.posix_spawn``, though it costs a supervisor a fifth less CPU time: glibc's
    leaves the task with the two signals glibc keeps for itself (32 and 33) ignored,
    and a task must start with no signal ignored."""
    uid, gid, groups = run_as.ids() if run_as is not None else (None, None, None)
    proc = subprocess.Popen(
        spec.argv, cwd=spec.sandbox, env=env, stdin=subprocess.DEVNULL,
        stdout=out, stderr=err, start_new_session=True, close_fds=True,
        user=uid, group=gid, extra_groups=groups,
    )
    proc.returncode = 0  # reaped by the supervisor, never by Popen
    return proc.pid


def _spare_from_oom_killer() -> None:
    """The supervisor shares the task's memory cgroup: the OOM killer must pick the
    task, never the process that records how the task ended."""
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
    except OSError:
        return
    try:
        os.write(fd, b"-1000")
    except OSError:
        pass
    finally:
        os.close(fd)


def _finish(finish: Callable[[], bool] | None) -> bool:
    """Whether the memory limit killed the task (False when that cannot be told)."""
    if finish is None:
        return False
    try:
        return finish()
    except Exception:
        return False


class _Watcher:
    """Waits for the task while running its health checks and its disk watch on their
    schedules."""

    def __init__(self, pid: int, spec: SupervisorSpec, events: _Events,
                 env: dict[str, str], run_as: RunAs | None) -> None:
        self.pid = pid
        self.spec = spec
        self.events = events
        self.env = env
        #: health-check commands run as the task's user
        self.check_as = run_as if run_as is not None and run_as.switch else None
        self.pidfd: int | None
        try:
            self.pidfd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            self.pidfd = None

    def _wait_for(self, seconds: float) -> int | None:
        """The wait status if the task exited within ``seconds``."""
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self.pidfd is not None:
                select.select([self.pidfd], [], [], left)
            else:
                time.sleep(min(left, 0.05))

    def wait(self) -> tuple[int, str, str]:
        """The task's wait status, why the supervisor killed it for its health (or
        ""), and why for its disk (or "")."""
        check = self.spec.health_check
        limit = self.spec.disk_limit
        if check is None and limit is None:
            _, final = os.waitpid(self.pid, 0)
            return final, "", ""
        disk = (None if limit is None else
                DiskWatch(self.spec.sandbox, limit, self.spec.disk_interval, time.monotonic()))
        try:
            return self._watch(check, disk)
        finally:
            if disk is not None:
                disk.close()

    def _watch(self, check: HealthCheck | None,
               disk: DiskWatch | None) -> tuple[int, str, str]:
        policy = None
        if check is not None:
            from mesos_zmq.agent.health import HealthPolicy

            policy = HealthPolicy(check, time.monotonic())
        reported: bool | None = None
        while True:
            check_due = policy.next_check_at() if policy is not None else None
            dues = [d for d in (check_due, disk.due_at() if disk else None) if d is not None]
            wait = 3600.0 if not dues else min(dues) - time.monotonic()
            ended = self._wait_for(wait)
            if ended is not None:
                return ended, "", ""
            now = time.monotonic()
            if disk is not None and disk.due_at() <= now:
                over = disk.work(now)
                if over is not None:
                    return self._kill_now(), "", over
            if check is None or policy is None or check_due is None or check_due > now:
                continue
            from mesos_zmq.agent.health import run_check

            ok, message = run_check(check, cwd=self.spec.sandbox, env=self.env,
                                    run_as=self.check_as)
            verdict = policy.record(ok, message, time.monotonic())
            # Report changes only: a task failing every check is not an update storm.
            if verdict.healthy is not None and verdict.healthy != reported:
                reported = verdict.healthy
                self.events.write(Health(healthy=verdict.healthy, message=verdict.message,
                                         kill=verdict.kill))
            if verdict.kill:
                return (self._kill(verdict.message), f"health check failed: {verdict.message}",
                        "")

    def _kill_now(self) -> int:
        """SIGKILL the task's process group at once (a limit it broke: as Mesos destroys
        such a container, with no grace); the agent kills the rest of its cgroup."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        _, status = os.waitpid(self.pid, 0)
        return status

    def _kill(self, why: str) -> int:
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except OSError:
            pass
        status = self._wait_for(self.spec.kill_grace)
        if status is not None:
            return status
        return self._kill_now()


# ------------------------------------------------------------ a shared supervisor


@dataclass(frozen=True, slots=True)
class SharedTask:
    """One task of a shared supervisor (see :func:`supervise_shared`): its spec, and
    what the launcher made of it before the fork - ``prepare`` creates the sandbox and
    returns the cgroup.procs files of the task's cgroups (or raises why they could not
    be made), ``finish`` says whether the memory limit killed it, ``release`` removes
    its cgroups (and kills what the task left in them) once its end is recorded."""

    spec: SupervisorSpec
    prepare: Callable[[], list[str]] | None = None
    finish: Callable[[], bool] | None = None
    release: Callable[[], None] | None = None


def shareable(spec: SupervisorSpec) -> bool:
    """Whether a task may share its supervisor: nothing to do while it runs (no health
    check, no disk watch), so that watching it is one ``waitpid`` among others."""
    return spec.health_check is None and spec.disk_limit is None


def hierarchy_of(procs: str) -> str:
    """The directory holding the containers' cgroups that a cgroup.procs file
    (``<hierarchy>/<container>/cgroup.procs``) belongs to: the key of ``homes``."""
    return os.path.dirname(os.path.dirname(procs))


class _CgroupVisits:
    """Moves a shared supervisor into each task's cgroups before it starts the task (a
    task inherits its parent's cgroups at the fork, so its first instruction already
    runs within its limits), and out again: back to ``homes`` (per hierarchy, the
    cgroup.procs of the cgroup it was forked in) for every hierarchy the next task does
    not join, and for all of them once every task is started. So no task starts in
    another task's cgroup, and the supervisor ends in none (a task's memory and pids
    never count its supervisor, and destroying a task's cgroup never kills it)."""

    def __init__(self, homes: dict[str, str]) -> None:
        self.homes = homes
        #: hierarchies where this process is in a task's cgroup
        self.inside: set[str] = set()

    def enter(self, procs: list[str]) -> None:
        wanted = {hierarchy_of(p) for p in procs}
        lost = wanted - self.homes.keys()
        if lost:  # the launcher checks this before it shares a supervisor
            raise OSError(f"no way back from the cgroups under {sorted(lost)}")
        self.inside |= wanted  # before the writes: one may fail after others took
        join_cgroups(procs)
        self._leave(self.inside - wanted)

    def home(self) -> None:
        self._leave(set(self.inside))

    def _leave(self, hierarchies: set[str]) -> None:
        join_cgroups([self.homes[h] for h in sorted(hierarchies)])
        self.inside -= hierarchies


#: the exit status of a shared supervisor that released the cgroups of every one of its
#: tasks itself (see :func:`supervise_shared`): the launcher that reaps it need not
#: release them again. Any other status, or a signal, and the launcher releases them all
#: (idempotent). Not 0: a supervisor of its own exits 0 and releases nothing, being in
#: its task's cgroups until it exits
RELEASED_ALL = 3


def run_shared_forked(tasks: list[SharedTask], homes: dict[str, str],
                      inherited: list[int] | None = None,
                      started: int | None = None, after: int | None = None) -> NoReturn:
    """Entry point in a child forked to supervise ``tasks``; never returns. The same
    set-up as :func:`run_forked`, then :func:`supervise_shared`, which starts the tasks
    once the descriptor ``after`` reads end of file (the supervisor forked before this
    one has started its own) and closes the descriptor ``started`` once every task is
    started (for the launcher, and the supervisor forked after this one)."""
    code = 1
    try:
        kept = (started, after)
        _detach_from_launcher([fd for fd in (open_fds() if inherited is None else inherited)
                               if fd not in kept])
        code = supervise_shared(tasks, homes, started, after)
    finally:
        os._exit(code)


def supervise_shared(tasks: list[SharedTask], homes: dict[str, str],
                     started: int | None = None, after: int | None = None) -> int:
    """Prepare ``tasks``, then start them one after the other, in order, then record
    each one's end as it comes; return once all have ended: :data:`RELEASED_ALL` when
    every task's cgroups were released here, so that the launcher does not look for
    them again (four failed ``rmdir`` a task, and the Python around them, on its loop).

    Why share: a supervisor of its own costs a task a fork of the launcher, the pages
    that child copies as it runs Python, and the exit that frees them - about half of
    what a short task costs the host. A shared one pays that once for its tasks and
    spends on each only what is the task's own: its files, its cgroups, a ``vfork``
    and ``exec``, its events.

    What each task keeps: its own events file, created exclusively (a task a restarted
    agent wrote off is skipped), with this process as its ``supervising`` pid, so a
    restarted agent re-attaches to it as to any supervisor; its own cgroups, joined
    before ``exec`` (see :class:`_CgroupVisits`), released here as soon as its end is
    recorded; its own session and process group, which a kill reaches. What it shares:
    the supervisor's life. If this process is SIGKILLed, every task it still watches is
    lost (failed and killed by the agent), as a task is whose own supervisor is killed.
    Tasks with something to watch while they run (health checks, a disk limit) get a
    supervisor of their own (:func:`shareable`).

    Two passes, so that shared supervisors work side by side and still start their
    tasks in the order they came. First every task is prepared (:func:`_prepare_shared`:
    its events file, its user, its sandbox and output files: the files are most of what
    a start costs, and creating a file on ext4 without a journal costs a fraction of a
    millisecond of CPU per file while many were deleted in the last minutes), while the
    supervisor forked before this one may still be starting its own tasks. Then, once
    ``after`` (that supervisor's ``started``) reads end of file, or after
    :data:`ORDER_WAIT`, the tasks are started (:func:`_start_prepared`: cgroups,
    ``exec``, a ``started`` event). ``started``, a descriptor closed once every task is
    started, hands the turn on (see :mod:`mesos_zmq.agent.launcher`)."""
    me = os.getpid()
    start = process_start(me)
    running: dict[int, tuple[SharedTask, _Events]] = {}
    visits = _CgroupVisits(homes)
    sock = notify_socket()
    turn = Turn(after, started)
    released: list[bool] = []  # one entry per task whose release was tried
    try:
        prepared = [_prepare_shared(task, me, start, sock, released) for task in tasks]
        turn.wait()
        for ready in prepared:
            if ready is not None:
                begun = _start_prepared(ready, me, visits, released)
                if begun is not None:
                    running[begun] = (ready.task, ready.events)
    finally:
        try:
            visits.home()
        except OSError:
            pass  # stuck in a task's cgroup: the launcher cleans up after our exit
        turn.hand_on()
    if running:
        # Out of the tasks' cgroups now, and every task already forked (a task would
        # inherit the score): the OOM killer must pick a task, never its record keeper.
        _spare_from_oom_killer()
    while running:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 1  # cannot be: the agent finds the ends unrecorded and fails them
        entry = running.pop(pid, None)
        if entry is None:
            continue
        task, events = entry
        oom = _finish(task.finish)
        if os.WIFSIGNALED(status):
            events.write(Exited(exit_code=None, signal=os.WTERMSIG(status), killed="",
                                oom=oom, disk=""))
        else:
            events.write(Exited(exit_code=os.waitstatus_to_exitcode(status), signal=None,
                                killed="", oom=oom, disk=""))
        events.close()
        released.append(_release(task.release))
    return RELEASED_ALL if len(released) == len(tasks) and all(released) else 0


@dataclass(slots=True)
class _PreparedTask:
    """A task of a shared supervisor with everything made but its process: its events
    (``supervising`` written), its user, the cgroups it joins, its environment, and its
    ``stdout`` and ``stderr`` open."""

    task: SharedTask
    events: _Events
    run_as: RunAs | None
    procs: list[str]
    env: dict[str, str]
    out: int
    err: int


def _prepare_shared(task: SharedTask, me: int, start: int | None,
                    sock: socket.socket | None, released: list[bool]) -> _PreparedTask | None:
    """The first half of starting one task of a shared supervisor (as :func:`_supervise`
    does for its own): None when it will not start (recorded as ``failed``, and its
    cgroups released: whether they were goes on ``released``)."""
    spec = task.spec
    try:
        events = _Events(spec, sock)
    except OSError:
        # Written off by a restarted agent (FileExistsError), or nowhere to record
        # anything: the agent finds no end when this supervisor is reaped, and fails it.
        released.append(_release(task.release))
        return None
    events.write(Supervising(pid=me, start=start), notify=False)
    try:
        run_as = resolve_user(spec.user)  # first: an unknown user creates nothing
        procs = list(spec.cgroup_procs)
        if task.prepare is not None:
            procs += task.prepare()
        env = task_environment(spec.env, run_as)
        out, err = open_outputs(spec.sandbox, run_as)
    except Exception as exc:  # anything: the agent must hear why it did not start
        released.append(_fail_shared(task, events, exc))
        return None
    return _PreparedTask(task, events, run_as, procs, env, out, err)


def _start_prepared(ready: _PreparedTask, me: int, visits: _CgroupVisits,
                    released: list[bool]) -> int | None:
    """The second half: the task's process, started from within its cgroups, and its
    ``started`` event; its pid, or None when it did not start (recorded as ``failed``,
    its cgroups released as in :func:`_prepare_shared`)."""
    try:
        try:
            visits.enter(ready.procs)
            pid = _start(ready.task.spec, ready.env, ready.run_as, ready.out, ready.err)
        finally:
            os.close(ready.out)
            os.close(ready.err)
    except Exception as exc:
        released.append(_fail_shared(ready.task, ready.events, exc))
        return None
    ready.events.write(Started(pid=pid, supervisor=me))
    return pid


def _fail_shared(task: SharedTask, events: _Events, exc: Exception) -> bool:
    """Record why a task of a shared supervisor did not start, and release it (whether
    its cgroups were released, see :func:`_release`)."""
    _finish(task.finish)
    events.write(Failed(error=str(exc)))
    events.close()
    return _release(task.release)


def _release(release: Callable[[], None] | None) -> bool:
    """Release a task's cgroups; what cannot be released now is left for the launcher,
    which releases them all again (it is idempotent) once it reaped this process unless
    told otherwise (:data:`RELEASED_ALL`). True once released here (False without a
    ``release``: nothing known was released)."""
    if release is None:
        return False
    try:
        release()
    except Exception:
        return False
    return True


def cancel_unstarted(path: Path, why: str) -> bool:
    """Write off a task whose supervisor never recorded anything (the agent died while
    launching it): create its events file with a ``failed`` event, exclusively, so a
    supervisor that is only now starting finds the file taken and does not start the
    task. False when the supervisor got there first (it is alive: watch it)."""
    os.makedirs(path.parent, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        line = encode_event(Failed(error=why, seq=1, time=time.time()))
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
    return True


def read_events(path: Path, after: int = 0) -> list[dict[str, Any]]:
    """Events with ``seq`` greater than ``after``, as written (JSON objects); a torn last
    line is left for later. The agent reads them typed, with :func:`load_events`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # torn write of a killed supervisor
        if isinstance(event, dict) and isinstance(event.get("seq"), int) and event["seq"] > after:
            out.append(event)
    return out


def load_events(path: Path, after: int = 0) -> list[SupervisorEvent]:
    """Events with ``seq`` greater than ``after``, typed (see :func:`read_events`)."""
    return [event for raw in read_events(path, after)
            if (event := decode_event(raw)) is not None]
