"""The per-task supervisor: a small process that outlives the agent.

Theory of operation
-------------------
The agent forks one supervisor per task (a fork, not an exec, so launching stays as
cheap as a fork: the child already has this module loaded). The supervisor leaves the
agent's session, starts the task in a session of its own (so a kill reaches every
process the task started, and the task's cgroups are joined before ``exec``), then
waits for it. Everything it learns goes to the task's append-only events file
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
datagram with the events file's path to the agent's notification socket (an
abstract Unix socket named after the agent's work dir), so the agent reacts at once
without polling files; when no agent listens the datagram is simply dropped.

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

import errno
import gc
import json
import os
import pwd
import select
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

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
from mesos_zmq.agent.gc import disk_limitation
from mesos_zmq.agent.isolation import join_cgroups
from mesos_zmq.errors import MesosZmqError

if TYPE_CHECKING:  # the launcher, which forks supervisors, stays small without it
    from mesos_zmq.protocol import HealthCheck


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


def notify_address(work_dir: str) -> bytes:
    """The abstract socket name of the agent with this work dir (no path length limit)."""
    import hashlib

    digest = hashlib.sha1(os.path.abspath(work_dir).encode()).hexdigest()[:20]
    return b"\0mesos-zmq-agent-" + digest.encode()


# ------------------------------------------------------------------ the task's user


class UserError(MesosZmqError):
    """The task's user cannot run it here: no such user on this host, or the agent,
    not being root, cannot become it. The launch fails with this message."""


class SandboxError(MesosZmqError):
    """Something in the sandbox is not what the supervisor may touch (a link where an
    output file should be): the launch fails rather than follow it."""


@dataclass(frozen=True, slots=True)
class Account:
    """A user as this host's account database has it."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


@dataclass(frozen=True, slots=True)
class RunAs:
    """Who a task runs as. ``switch``: the supervisor (root) must take on the
    account's ids before ``exec``; False when the agent already is that user."""

    account: Account
    switch: bool

    def ids(self) -> tuple[int | None, int | None, list[int] | None]:
        """``user``, ``group`` and ``extra_groups`` for :class:`subprocess.Popen`
        (None: unchanged). The child sets groups, then gid, then uid, after ``fork``
        and before ``exec``: no instruction of the task runs with the agent's ids."""
        if not self.switch:
            return None, None, None
        a = self.account
        return a.uid, a.gid, list(a.groups)


def _shown(user: str) -> str:
    return repr(user[:64])


def choose_user(user: str, account: Account | None, agent_uid: int) -> RunAs | None:
    """Who runs a task that asked for ``user`` (Mesos's rules); pure.

    ``account`` is what the host's database says of ``user`` (None: no such user),
    ``agent_uid`` the agent's effective uid. No user: the agent's own (None). A user
    the host does not know, or another user than the agent's while the agent is not
    root, is a :class:`UserError`.
    """
    if not user:
        return None
    if account is None:
        raise UserError(f"user {_shown(user)} does not exist on this agent")
    if agent_uid == 0:
        return RunAs(account, switch=True)
    if account.uid == agent_uid:
        return RunAs(account, switch=False)
    raise UserError(f"cannot run the task as user {_shown(user)}: the agent does not run "
                    f"as root (uid {agent_uid}), and only root can switch users")


def lookup_account(user: str) -> Account | None:
    """The host's account of ``user``, supplementary groups included (as ``initgroups``
    would set them), or None when there is no such user."""
    try:
        entry = pwd.getpwnam(user)
    except (KeyError, ValueError):  # ValueError: a NUL in the name
        return None
    try:
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:
        groups = (entry.pw_gid,)
    return Account(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups,
                   home=entry.pw_dir)


def resolve_user(user: str) -> RunAs | None:
    """Who runs a task that asked for ``user`` on this host (see :func:`choose_user`)."""
    if not user:
        return None
    return choose_user(user, lookup_account(user), os.geteuid())


def task_environment(env: dict[str, str], run_as: RunAs | None) -> dict[str, str]:
    """The task's environment: HOME, USER and LOGNAME are its user's, unless the task
    set them itself (the agent leaves its own out for a task with a user)."""
    if run_as is None:
        return env
    a = run_as.account
    return {"HOME": a.home, "USER": a.name, "LOGNAME": a.name, **env}


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_OUT_FLAGS = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
              | os.O_NONBLOCK | os.O_NOCTTY)


def open_outputs(sandbox: str, run_as: RunAs | None) -> tuple[int, int]:
    """The task's ``stdout`` and ``stderr`` descriptors, and the sandbox (and they)
    given to its user.

    A sandbox outlives its task (kept for reading, and a task of the same id runs in it
    again), so its user may have left anything in it: each file is opened relative to
    the sandbox's descriptor, neither following a link nor blocking on a FIFO, and
    must be a regular file with a single link (a hard link could be to a file outside);
    the owners change through those descriptors (``fchown``), never by path.
    """
    try:
        dfd = os.open(sandbox, _DIR_FLAGS)
    except OSError as exc:
        raise SandboxError(f"cannot open the sandbox {sandbox}: {exc.strerror}") from None
    opened: list[int] = []
    try:
        if run_as is not None and run_as.switch:
            os.fchown(dfd, run_as.account.uid, run_as.account.gid)
        for name in ("stdout", "stderr"):
            try:
                fd = os.open(name, _OUT_FLAGS, 0o644, dir_fd=dfd)
            except OSError as exc:
                why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
                raise SandboxError(f"cannot open {name} in the sandbox: {why}") from None
            opened.append(fd)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise SandboxError(f"{name} in the sandbox is not a plain file with one "
                                   "link: refused")
            os.set_blocking(fd, True)
            if run_as is not None and run_as.switch:
                os.fchown(fd, run_as.account.uid, run_as.account.gid)
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    finally:
        os.close(dfd)
    return opened[0], opened[1]


# ------------------------------------------------------------------- the disk watch

#: directories of the current path a walk keeps open (beyond, it opens them one
#: component at a time, for each deeper directory)
MAX_OPEN_DIRS = 64
#: entries a walk looks at before the supervisor looks at its task again
DISK_STEP = 4096


class SandboxUsage:
    """One du-like pass over a sandbox: the blocks allocated to everything in it
    (``st_blocks * 512``; a file with several links counted once), walked a bounded
    number of entries at a time (:meth:`step`), so that a sandbox of millions of files
    delays nothing else its supervisor does.

    The task may change the tree under the walk: every directory is opened relative to
    its parent's descriptor with ``O_NOFOLLOW``, and entries are examined with
    ``lstat`` semantics, so a directory swapped for a link is skipped, never entered.
    What vanishes meanwhile is skipped too (as ``du`` does)."""

    def __init__(self, sandbox: str) -> None:
        self.sandbox = sandbox
        self.total = 0
        self._root: int | None = None
        self._pending: list[tuple[str, ...]] = [()]
        self._open: list[tuple[str, int]] = []  # (name, fd) of the current path's prefix
        self._listing: Any = None  # the os.scandir iterator being read
        #: its directory's descriptor when not one of ``_open`` (DirEntry.stat uses it)
        self._transient: int | None = None
        self._path: tuple[str, ...] = ()
        self._linked: set[tuple[int, int]] = set()
        self.done = False

    def step(self, budget: int = DISK_STEP) -> bool:
        """Look at up to ``budget`` entries; True once the pass is complete."""
        if self.done:
            return True
        if self._root is None:
            try:
                self._root = os.open(self.sandbox, _DIR_FLAGS)
                self.total += os.fstat(self._root).st_blocks * 512
            except OSError:  # no sandbox (yet, or any more): nothing in it
                self.close()
                return True
        while budget > 0:
            if self._listing is None and not self._next_directory():
                self.close()
                return True
            try:
                entry = next(self._listing)
            except (StopIteration, OSError):  # OSError: it went away while being read
                self._end_listing()
                continue
            budget -= 1
            self._count(entry)
        return False

    def _count(self, entry: os.DirEntry[str]) -> None:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            return
        if stat.S_ISDIR(info.st_mode):
            self._pending.append((*self._path, entry.name))
        elif info.st_nlink > 1:
            inode = (info.st_dev, info.st_ino)
            if inode in self._linked:
                return
            self._linked.add(inode)
        self.total += info.st_blocks * 512

    def _next_directory(self) -> bool:
        """Start reading the next pending directory; False when none is left."""
        while self._pending:
            path = self._pending.pop()
            try:
                fd, transient = self._open_dir(path)
            except OSError:  # gone, or no longer a directory (a link now): skipped
                continue
            try:
                self._listing = os.scandir(fd)
            except OSError:
                if transient is not None:
                    os.close(transient)
                continue
            self._transient = transient
            self._path = path
            return True
        return False

    def _end_listing(self) -> None:
        if self._listing is not None:
            self._listing.close()
            self._listing = None
        if self._transient is not None:
            os.close(self._transient)
            self._transient = None

    def _open_dir(self, path: tuple[str, ...]) -> tuple[int, int | None]:
        """A descriptor of ``path`` (relative to the sandbox), reached one component at
        a time without following links. The first :data:`MAX_OPEN_DIRS` directories of
        the path stay open for the next ones (a depth-first walk shares long prefixes);
        a deeper one is returned second too, to be closed once its listing is read."""
        keep = 0
        while (keep < len(self._open) and keep < len(path)
               and self._open[keep][0] == path[keep]):
            keep += 1
        for _, fd in self._open[keep:]:
            os.close(fd)
        del self._open[keep:]
        assert self._root is not None
        fd = self._open[-1][1] if self._open else self._root
        transient: int | None = None
        try:
            for name in path[keep:]:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                if transient is not None:
                    os.close(transient)
                    transient = None
                if len(self._open) < MAX_OPEN_DIRS:
                    self._open.append((name, child))
                else:
                    transient = child
                fd = child
        except BaseException:
            if transient is not None:
                os.close(transient)
            raise
        return fd, transient

    def close(self) -> None:
        """Release every descriptor; the pass is over (``total`` stays readable)."""
        self._end_listing()
        for _, fd in self._open:
            os.close(fd)
        self._open.clear()
        if self._root is not None:
            os.close(self._root)
            self._root = None
        self._pending.clear()
        self.done = True


def measure_sandbox(sandbox: str) -> int:
    """Bytes allocated in ``sandbox``, in one go (for tests and tools)."""
    walk = SandboxUsage(sandbox)
    while not walk.step():
        pass
    return walk.total


class _DiskWatch:
    """When to measure the sandbox, and the verdict of each complete pass."""

    def __init__(self, sandbox: str, limit: int, interval: float, now: float) -> None:
        self.sandbox = sandbox
        self.limit = limit
        self.interval = interval
        self.next_at = now + interval
        self.walk: SandboxUsage | None = None

    def due_at(self) -> float:
        """When to go on: at once while a pass is under way."""
        return time.monotonic() if self.walk is not None else self.next_at

    def work(self, now: float) -> str | None:
        """One bounded step of the pass; at its end, why the task must go (or None)."""
        if self.walk is None:
            self.walk = SandboxUsage(self.sandbox)
        if not self.walk.step():
            return None
        used, self.walk = self.walk.total, None
        self.next_at = now + self.interval
        return disk_limitation(self.limit, used)

    def close(self) -> None:
        if self.walk is not None:
            self.walk.close()
            self.walk = None


# ------------------------------------------------------------------------ the events


class _Events:
    """Appends events and pokes the agent; never raises."""

    def __init__(self, spec: SupervisorSpec) -> None:
        self.path = spec.events
        self.seq = 0
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.notify_name = spec.notify_name
        # O_EXCL: the file must be ours. If it exists, a restarted agent found this task
        # without a supervisor and wrote it off (see cancel_unstarted); raises
        # FileExistsError, and the task is never started.
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
                          0o644)
        self.sock: socket.socket | None = None
        try:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
        except OSError:
            self.sock = None

    def close(self) -> None:
        os.close(self.fd)
        if self.sock is not None:
            self.sock.close()

    def write(self, event: SupervisorEvent, notify: bool = True) -> None:
        """Append one event (numbered and timed here); ``notify`` pokes the agent (not
        needed for an event the agent can just as well read along with the next one)."""
        self.seq += 1
        line = encode_event(replace(event, seq=self.seq, time=time.time()))
        try:
            os.write(self.fd, (line + "\n").encode())
        except OSError:
            pass
        if notify and self.sock is not None and self.notify_name:
            try:
                self.sock.sendto(self.path.encode(), self.notify_name)
            except OSError:
                pass  # no agent listening, or its queue is full: it polls as a fallback


def _close_inherited_fds() -> None:
    """Drop the agent's sockets and files (ZeroMQ's among them) from this process."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
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


def _reset_signals() -> None:
    """Give this process the dispositions a supervisor needs and its task should inherit.

    Survived signals get :func:`_survive`; SIGPIPE and SIGXFSZ stay ignored, as Python
    has them (a vanished agent or a full disk must not kill us; ``subprocess`` restores
    both for the task); every other signal the parent caught or ignored goes back to
    its default; nothing stays blocked. Only the signals that differ are touched, so a
    launch costs a few system calls, not sixty.
    """
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        wanted: Callable[[int, FrameType | None], Any] | signal.Handlers
        if signum in SURVIVED_SIGNALS:
            wanted = _survive
        elif signum in (signal.SIGPIPE, signal.SIGXFSZ):
            wanted = signal.SIG_IGN
        else:
            wanted = signal.SIG_DFL
        try:
            if signal.getsignal(signum) is not wanted:
                signal.signal(signum, wanted)
        except (OSError, ValueError):
            pass  # a signal number the C library keeps for itself
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
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
               finish: Callable[[], bool] | None = None) -> NoReturn:
    """Entry point in the forked child; never returns.

    ``prepare`` (sandbox and cgroups) runs here rather than in the agent, so the
    agent's loop pays only for the checkpoint and the fork; it returns the cgroup.procs
    files to join, and an error in it is reported as the task's ``failed`` event.
    ``finish`` runs once the task has ended: it says whether the memory limit killed
    it. (The launcher releases the cgroups once this process has exited.)
    """
    code = 1
    try:
        gc.disable()  # the child's copy of the agent's heap stays shared
        os.setsid()
        signal.set_wakeup_fd(-1)  # the launcher's; closed just below
        _reset_signals()
        _close_inherited_fds()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        code = supervise(spec, prepare, finish)
    finally:
        os._exit(code)


def supervise(spec: SupervisorSpec, prepare: Callable[[], list[str]] | None = None,
              finish: Callable[[], bool] | None = None) -> int:
    """Start the task, watch it and its health, record how it ended."""
    try:
        events = _Events(spec)
    except FileExistsError:
        return 0  # written off by a restarted agent before we began: do nothing
    except OSError:
        return 1  # no place to record anything: the agent sees a supervisor that died
    try:
        return _supervise(spec, events, prepare, finish)
    finally:
        events.close()


def _supervise(spec: SupervisorSpec, events: _Events, prepare: Callable[[], list[str]] | None,
               finish: Callable[[], bool] | None) -> int:
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
            join_cgroups(procs)
            uid, gid, groups = run_as.ids() if run_as is not None else (None, None, None)
            proc = subprocess.Popen(
                spec.argv, cwd=spec.sandbox, env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, start_new_session=True, close_fds=True,
                user=uid, group=gid, extra_groups=groups,
            )
        finally:
            os.close(out)
            os.close(err)
    except Exception as exc:  # anything: the agent must hear why it did not start
        _finish(finish)
        events.write(Failed(error=str(exc)))
        return 1
    if procs:
        _spare_from_oom_killer()  # after the fork: the task keeps the default score
    events.write(Started(pid=proc.pid, supervisor=os.getpid()))
    watcher = _Watcher(proc.pid, spec, events, env, run_as)
    status, killed, disk = watcher.wait()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by us, not by Popen
    oom = _finish(finish)
    if os.WIFSIGNALED(status):
        events.write(Exited(exit_code=None, signal=os.WTERMSIG(status), killed=killed,
                            oom=oom, disk=disk))
    else:
        events.write(Exited(exit_code=os.waitstatus_to_exitcode(status), signal=None,
                            killed=killed, oom=oom, disk=disk))
    return 0


def _spare_from_oom_killer() -> None:
    """The supervisor shares the task's memory cgroup: the OOM killer must pick the
    task, never the process that records how the task ended."""
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("-1000")
    except OSError:
        pass


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
                _DiskWatch(self.spec.sandbox, limit, self.spec.disk_interval, time.monotonic()))
        try:
            return self._watch(check, disk)
        finally:
            if disk is not None:
                disk.close()

    def _watch(self, check: HealthCheck | None,
               disk: _DiskWatch | None) -> tuple[int, str, str]:
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
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        _, status = os.waitpid(self.pid, 0)
        return status


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
