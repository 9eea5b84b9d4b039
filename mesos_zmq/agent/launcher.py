"""The launcher: a small helper process that forks task supervisors for the agent.

Why a separate process: a fork costs in proportion to the size of the process that
forks, and the agent is big (ZeroMQ, ZooKeeper client, logging) and threaded (forking a
threaded process is fragile). The launcher is exec'd fresh by the agent, imports little
(the supervisor and the isolator), and forks supervisors on request, so a launch costs
the agent one checkpoint write and one message.

Protocol, over a ``SOCK_SEQPACKET`` socket pair (one JSON object per packet):

* agent → launcher ``{"key": events, "spec": …, "container_id": …, "limits": …}``, or,
  for a request larger than :data:`INLINE_REQUEST_BYTES`, ``{"key": events,
  "spec_file": path}``: the same object in a file the agent wrote (mode 0600, under
  ``<work_dir>/meta/launch``), which the launcher reads and removes;
* launcher → agent ``{"started": [events, …], "pid": n}`` once a supervisor is forked,
  naming the events file of each of its tasks, ``{"reaped": [events, …], "pid": n}``
  once it exited (the agent then reads their events: a supervisor that recorded no end
  was killed): one packet per supervisor, not per task (a packet costs both sides a
  system call and a JSON document; a shared supervisor has up to
  :data:`TASKS_PER_SUPERVISOR` tasks), split only past :data:`REPLY_BYTES`. A request
  it cannot use is answered ``{"error": why}``, and, when it names its task, the task
  is written off with a ``failed`` event and ``{"reaped": [events], "pid": 0}``
  follows, so that the agent reports it rather than waiting for a supervisor that
  never comes.

Why a file for large requests: a packet must fit in the socket's buffer (about 200 KiB),
and a task's environment and command may be larger than that within their limits
(:mod:`mesos_zmq.master.validation`); a request that did not fit used to be taken for a
dead launcher, which was started again and again. Small requests stay inline: a file
created and removed per launch is the dearest thing a launch could cost the disk (see
:mod:`mesos_zmq.agent.checkpoint`), and a task's environment is better not written
anywhere it need not be.

Bursts. A big RunTasks makes the agent send requests faster than supervisors can be
forked; the agent keeps the rest in its queue while this socket is full. The launcher
reads what is waiting (up to :data:`MAX_BATCH` requests) and handles it in order: each
task's cgroups are made, with their limits, then the supervisors are forked back to
back, then the agent is told.

Shared supervisors. Tasks with nothing to watch while they run (no health check, no
disk limit: most of a burst) share one supervisor per run of up to
:data:`TASKS_PER_SUPERVISOR` in a batch, which starts them one after the other, in the
order they came, and records each one's end in its own events file
(:func:`~mesos_zmq.agent.supervisor.supervise_shared`); the others get one each, as
before. A supervisor of its own cost a short task about half of what it cost the host:
the fork of this process, the pages the child copied as it ran Python, and its exit
(measured with ``tools/bench_launch.py``: 5-7 ms of CPU a task in supervisor and task,
1.7-4 with sharing, the rest being the task's own files, cgroups and ``exec``). The
price: a SIGKILLed shared supervisor loses all the tasks it watches (each reported
failed, as a task whose supervisor died always was), and the tasks of one supervisor
start one at a time. A shared supervisor starts each task from within the task's
cgroups and leaves them at once (its "homes",
:meth:`~mesos_zmq.agent.isolation.Isolator.homes`), so a task whose hierarchy has no
known way back gets a supervisor of its own.

Turns. So that batches start in order too, supervisors take turns (:class:`Turns`):
each prepares its tasks as soon as it is forked (their events files, sandboxes and
output files, most of what a start costs), then waits for the supervisor forked
before it (shared or not) to have started its tasks, starts its own, and hands the
turn on. The launcher forks the next one while the last one starts (it reads the next
batch once no more than :data:`AHEAD` have still to start their tasks), so preparing
one batch and starting the one before go on side by side, on two cores. (Before, the
launcher waited for the last batch's tasks to be started before it read the next,
for 0.1 s at most: one supervisor prepared and started at a time, and one that
outlasted the wait started side by side with the next, out of order. Supervisors
started side by side, as they were at first, started hundreds of tasks ahead of
their turn in a burst of 2,000.)

Forking is still much of what the launcher spends its time on, and what each
supervisor pays for in copied pages: so the launcher imports little, its heap is frozen
out of the garbage collector's way once it is loaded (``gc.freeze``: a collection would
touch every object, in the launcher and in every supervisor that shares its pages), and
no collection runs while a batch is forked.

When the agent goes away the socket closes and the launcher exits at once; the
supervisors, in sessions of their own, keep their tasks running.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mesos_zmq.agent.flags import CONTAINER_DISK_WATCH_INTERVAL
from mesos_zmq.agent.isolation import Isolator, Limits, detect_isolator
from mesos_zmq.agent.supervisor import (
    RELEASED_ALL,
    SharedTask,
    SupervisorSpec,
    cancel_unstarted,
    fork_ready,
    hierarchy_of,
    open_fds,
    run_forked,
    run_shared_forked,
    shareable,
)

MAX_PACKET = 1 << 20
#: requests larger than this travel by file (far above a usual request, far below what
#: a packet can hold)
INLINE_REQUEST_BYTES = 16 * 1024
#: the largest launch spec file the launcher reads (the validation limits keep a spec
#: to a few hundred KiB)
MAX_SPEC_FILE = 16 << 20
#: most requests forked in one batch (see :func:`_launch_batch`): enough to take a
#: burst in a few passes, few enough that replies and reaping are not held up long
MAX_BATCH = 64
#: most tasks one shared supervisor starts and watches (see :func:`_groups`)
TASKS_PER_SUPERVISOR = 64
#: seconds the launcher outlives its agent, for supervisors that are about to end
LINGER = 3.0
#: the most events file names one reply carries (see :func:`_tell`), in bytes: far
#: below what a packet of the socket holds, and what the agent reads at once
REPLY_BYTES = 32 * 1024
#: supervisors still to start their tasks when the launcher reads (and forks) the
#: next batch: two, so that while one starts its tasks the next two make their tasks'
#: files side by side, which is most of a start (see :class:`Turns`). Measured with
#: bench_launch (interleaved pairs): 383/280, 200/196, 226/222, 222/208 tasks/s
#: against one ahead
AHEAD = 2
#: longest the launcher waits for a supervisor to start its tasks before it
#: reads the next batch anyway, in seconds: preparing and starting 64 tasks takes a
#: few hundred ms at most, unless a user lookup hangs or the host is so busy that the
#: tasks' execs crawl. Reading on does not give up the order: each supervisor
#: waits for the one before it (:data:`~mesos_zmq.agent.supervisor.ORDER_WAIT`).
START_WAIT = 1.0


def encode_request(key: str, spec: SupervisorSpec, container_id: str, limits: Limits) -> bytes:
    from mesos_zmq.protocol import to_plain  # the agent's side: already loaded there

    body = {
        "key": key,
        "container_id": container_id,
        "limits": {"cpus": limits.cpus, "cpu_hard_limit": limits.cpu_hard_limit,
                   "mem_bytes": limits.mem_bytes, "pids_max": limits.pids_max},
        "spec": {
            "events": spec.events, "sandbox": spec.sandbox, "argv": spec.argv,
            "env": spec.env, "kill_grace": spec.kill_grace,
            "notify_name": spec.notify_name.hex(),
            "health_check": to_plain(spec.health_check) if spec.health_check else None,
            "user": spec.user, "disk_limit": spec.disk_limit,
            "disk_interval": spec.disk_interval,
        },
    }
    return json.dumps(body).encode()


def write_spec_file(directory: Path, name: str, request: bytes) -> Path:
    """Write a launch request to ``directory/name`` for the launcher to read: mode 0600
    (it holds the task's environment), never over an existing file."""
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(request)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)
    return path


def spec_file_request(key: str, path: Path) -> bytes:
    """The packet that sends a launch request by file."""
    return json.dumps({"key": key, "spec_file": str(path)}).encode()


def _read_spec_file(path: str) -> bytes:
    """The request in ``path``, which is removed (read or not: it is for one launch)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SPEC_FILE + 1)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if len(data) > MAX_SPEC_FILE:
        raise ValueError(f"launch spec file larger than {MAX_SPEC_FILE} bytes")
    return data


def _decode_request(data: bytes) -> tuple[str, SupervisorSpec, str, Limits]:
    body = json.loads(data)
    if isinstance(body, dict) and "spec_file" in body:
        body = json.loads(_read_spec_file(str(body["spec_file"])))
    raw = body["spec"]
    check = None
    if raw.get("health_check"):
        # Loaded on the first task with a health check only: the smaller the launcher,
        # the cheaper each fork of a supervisor.
        from mesos_zmq.protocol import HealthCheck, from_plain

        check = from_plain(HealthCheck, raw["health_check"])
    spec = SupervisorSpec(
        events=raw["events"], sandbox=raw["sandbox"], argv=list(raw["argv"]),
        env=dict(raw["env"]), kill_grace=float(raw["kill_grace"]),
        notify_name=bytes.fromhex(raw["notify_name"]), health_check=check,
        user=str(raw.get("user") or ""), disk_limit=_optional_int(raw.get("disk_limit")),
        disk_interval=float(raw.get("disk_interval") or CONTAINER_DISK_WATCH_INTERVAL),
    )
    lim = body["limits"]
    limits = Limits(cpus=lim["cpus"], cpu_hard_limit=bool(lim["cpu_hard_limit"]),
                    mem_bytes=lim["mem_bytes"], pids_max=lim["pids_max"])
    return str(body["key"]), spec, str(body["container_id"]), limits


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected a whole number, got {value!r}")
    return value


def _request_key(data: bytes) -> str | None:
    """The task (events file) a request names, if it can be read at all."""
    try:
        body: Any = json.loads(data)
    except ValueError:
        return None
    key = body.get("key") if isinstance(body, dict) else None
    return key if isinstance(key, str) and key else None


#: the launcher's children: each supervisor's pid, and the (events file, container
#: id) of every task it supervises, in the order they were requested
Children = dict[int, list[tuple[str, str]]]


class _Ready:
    """A decoded request whose cgroups are made: what a supervisor needs of it."""

    __slots__ = ("container_id", "finish", "key", "prepare", "procs", "release", "spec")

    def __init__(self, key: str, container_id: str, spec: SupervisorSpec,
                 prepare: Callable[[], list[str]], procs: list[str] | None,
                 finish: Callable[[], bool], release: Callable[[], None]) -> None:
        self.key = key
        self.container_id = container_id
        self.spec = spec
        self.prepare = prepare
        #: the cgroup.procs files the task joins (None: its cgroups could not be made)
        self.procs = procs
        self.finish = finish
        self.release = release


class Turns:
    """Whose turn it is to start tasks, among the supervisors.

    Each supervisor gets the write end of a pipe (its baton), which it closes once it
    has started its task(s), and the read end of the baton of the supervisor forked
    before it, which it waits on (after preparing its own tasks) before it starts them
    (:class:`~mesos_zmq.agent.supervisor.Turn`): so tasks start in the order the
    requests came, batch after batch, supervisor after supervisor, while the next
    supervisor prepares its tasks side by side. The launcher keeps the read ends too:
    it reads no more requests while more than :data:`AHEAD` supervisors have not
    started their tasks (and the agent keeps the rest in its queue), for
    :data:`START_WAIT` at most each."""

    def __init__(self) -> None:
        #: read ends of the batons of supervisors not known to be done, oldest first,
        #: with when each was forked
        self.watched: list[tuple[int, float]] = []
        #: read end of the last supervisor's baton, for the next one (kept open
        #: until then, watched or not; None once it is known to be done)
        self.last: int | None = None

    def forked(self, read_end: int, now: float) -> None:
        """A supervisor was forked with ``read_end``'s write end (and after
        :attr:`last`, which this process no longer needs unless it watches it)."""
        if self.last is not None and not self._watching(self.last):
            os.close(self.last)
        self.last = read_end
        self.watched.append((read_end, now))

    def busy(self) -> bool:
        """Whether the launcher must wait before it forks more supervisors."""
        return len(self.watched) > AHEAD

    def fds(self) -> list[int]:
        return [fd for fd, _ in self.watched]

    def deadline(self) -> float:
        """When the launcher stops waiting for the oldest (:data:`START_WAIT`)."""
        return self.watched[0][1] + START_WAIT if self.watched else float("inf")

    def done(self, fd: int) -> None:
        """``fd`` read end of file: its supervisor started its tasks (or died)."""
        self.watched = [(f, at) for f, at in self.watched if f != fd]
        if fd == self.last:
            self.last = None  # the next one need not wait
        os.close(fd)

    def give_up(self, now: float) -> None:
        """Stop waiting for the supervisors forked more than :data:`START_WAIT` ago
        (the next one still waits for the last one, for its turn)."""
        while self.watched and self.watched[0][1] + START_WAIT <= now:
            fd, _ = self.watched.pop(0)
            if fd != self.last:
                os.close(fd)

    def _watching(self, fd: int) -> bool:
        return any(f == fd for f, _ in self.watched)


def _launch(sock: socket.socket, isolator: Isolator, data: bytes,
            children: Children, spent: list[str] | None = None) -> None:
    """One request (see :func:`_launch_batch`)."""
    _launch_batch(sock, isolator, [data], children, [] if spent is None else spent)


def _launch_batch(sock: socket.socket, isolator: Isolator, batch: list[bytes],
                  children: Children, spent: list[str],
                  turns: Turns | None = None) -> None:
    """Start a supervisor for the requests of ``batch``, in order: one shared by each
    run of tasks that have nothing to watch while they run, one of its own for each
    other task (see :func:`_groups`). A supervisor that cannot be forked fails its
    tasks alone; their cgroups go on ``spent``.

    In three passes, so that the forks come back to back: every request is decoded
    and its cgroups made first, then the supervisors are forked, then the agent is
    told. A fork write-protects every page of this process, and each page the
    launcher writes afterwards is copied once per fork it follows: work done between
    two forks is paid again at every fork, work done before the first or after the
    last only once. (Making the cgroups here, rather than in each supervisor, is
    cheaper for the same reason: this process has already touched what it needs.)

    With ``turns``, each supervisor gets a baton, and waits for the one before it to
    start its tasks before it starts its own (see :class:`Turns`).
    """
    ready: list[_Ready] = []
    for data in batch:
        try:
            key, spec, container_id, limits = _decode_request(data)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            _refuse(sock, data, f"bad launch request: {exc}")
            continue
        prepare, procs = _prepared(isolator, container_id, limits, spec.sandbox)
        ready.append(_Ready(key, container_id, spec, prepare, procs,
                            _oom_check(isolator, container_id),
                            _releaser(isolator, container_id)))
    groups = _groups(ready, isolator.homes() if ready else {})
    forked: list[tuple[int, list[_Ready]]] = []
    failed: list[tuple[_Ready, OSError]] = []
    # No collection may start in a child before it turns the collector off: it would
    # write to every object of the heap it shares with this process, one copied page
    # at a time.
    gc.disable()
    try:
        inherited = open_fds() if ready else []  # what each child closes
        new_batons: list[int] = []  # this batch's, also closed by each later child
        for group, homes in groups:
            baton = os.pipe() if turns is not None else None
            after = turns.last if turns is not None else None
            try:
                pid = os.fork()
            except OSError as error:  # out of processes or memory: these tasks only
                failed.extend((r, error) for r in group)
                if baton is not None:
                    os.close(baton[0])
                    os.close(baton[1])
                continue
            if pid == 0:  # pragma: no cover - the child never returns
                closed = inherited + new_batons
                if baton is not None:
                    closed.append(baton[0])
                started = None if baton is None else baton[1]
                if homes is None:
                    (one,) = group
                    run_forked(one.spec, one.prepare, one.finish, closed, started, after)
                run_shared_forked([SharedTask(r.spec, r.prepare, r.finish, r.release)
                                   for r in group], homes, closed, started, after)
            if baton is not None and turns is not None:
                os.close(baton[1])  # the supervisor's alone: closed when it is done
                new_batons.append(baton[0])
                turns.forked(baton[0], time.monotonic())
            forked.append((pid, group))
    finally:
        gc.enable()
    for pid, group in forked:
        children[pid] = [(r.key, r.container_id) for r in group]
        _tell(sock, "started", [r.key for r in group], pid)
    for r, cause in failed:
        spent.append(r.container_id)  # its cgroups were made: released with the others
        _write_off(sock, r.key, f"cannot start the task's supervisor: {cause}")


def _groups(ready: list[_Ready], homes: dict[str, str]
            ) -> list[tuple[list[_Ready], dict[str, str] | None]]:
    """Who supervises what, in request order: each run of tasks that may share a
    supervisor (:func:`~mesos_zmq.agent.supervisor.shareable`, and a way back from each
    of their cgroups in ``homes``), up to :data:`TASKS_PER_SUPERVISOR` at a time, gets
    one shared supervisor (with the ``homes`` it returns to); every other task, and a
    run of one, gets a supervisor of its own (``None``: it stays in its task's
    cgroups, see :func:`~mesos_zmq.agent.supervisor.run_forked`).

    A bigger group pays a supervisor's fork and exit over more tasks, and starts them
    strictly in order; but a SIGKILLed supervisor loses all of them, and they start one
    after another on one core (the launcher forks the next group meanwhile)."""
    groups: list[tuple[list[_Ready], dict[str, str] | None]] = []
    run: list[_Ready] = []

    def close_run() -> None:
        if len(run) == 1:
            groups.append((list(run), None))
        elif run:
            groups.append((list(run), homes))
        run.clear()

    for r in ready:
        if (shareable(r.spec) and r.procs is not None
                and all(hierarchy_of(p) in homes for p in r.procs)):
            run.append(r)
            if len(run) >= TASKS_PER_SUPERVISOR:
                close_run()
        else:
            close_run()
            groups.append(([r], None))
    close_run()
    return groups


def _refuse(sock: socket.socket, data: bytes, why: str) -> None:
    """Answer a request the launcher cannot use; write its task off if it names one."""
    sock.send(json.dumps({"error": why}).encode())
    named = _request_key(data)
    if named is not None:
        _write_off(sock, named, why)


def _write_off(sock: socket.socket, key: str, why: str) -> None:
    """Fail the task of events file ``key``, whose supervisor never comes, as a
    restarted agent would: a ``failed`` event, and its supervisor reported reaped
    (pid 0), so that the agent reports the task rather than waiting for it."""
    with contextlib.suppress(OSError):
        cancel_unstarted(Path(key), why)
    _tell(sock, "reaped", [key], 0)


def _tell(sock: socket.socket, what: str, keys: list[str], pid: int) -> None:
    """Tell the agent that the supervisor ``pid`` was ``started`` or ``reaped``, for the
    tasks of events files ``keys``: in as few packets as hold them (each no more than
    :data:`REPLY_BYTES` of names as JSON writes them, and at least one name). Sized as
    written, not as Python strings: JSON writes a non-ASCII character as six bytes, and
    a packet longer than the agent reads at once would be cut short and lost."""
    sizes = [len(json.dumps(key)) + 2 for key in keys]
    start = 0
    while start < len(keys):
        end, size = start + 1, sizes[start]
        while end < len(keys) and size + sizes[end] <= REPLY_BYTES:
            size += sizes[end]
            end += 1
        sock.send(json.dumps({what: keys[start:end], "pid": pid}).encode())
        start = end


def _prepared(isolator: Isolator, container_id: str, limits: Limits,
              sandbox: str) -> tuple[Callable[[], list[str]], list[str] | None]:
    """Make the container's cgroups now; the supervisor's ``prepare`` then creates the
    sandbox (after it has checked the task's user) and returns the cgroup.procs files
    to join, or raises what went wrong here, so that the task fails with it as before.
    (If the supervisor never comes, the cgroups go when it is reaped.) Also returns
    those files, or None when the cgroups could not be made."""
    try:
        procs = isolator.prepare(container_id, limits)
    except Exception as exc:
        failure = exc

        def failed() -> list[str]:
            os.makedirs(sandbox, exist_ok=True)
            raise failure

        return failed, None

    def prepare() -> list[str]:
        os.makedirs(sandbox, exist_ok=True)
        return procs

    return prepare, procs


def _oom_check(isolator: Isolator, container_id: str) -> Callable[[], bool]:
    """The supervisor's ``finish``: whether the memory limit killed its task, read from
    the cgroup once the task has ended (before the cgroup is released)."""
    def finish() -> bool:
        return isolator.oom_killed(container_id)

    return finish


def _releaser(isolator: Isolator, container_id: str) -> Callable[[], None]:
    """A shared supervisor's ``release``: destroy the container's cgroups once its
    task's end is recorded (the supervisor is in none of them by then), rather than
    when the supervisor exits, which may be long after (it waits for all its tasks).
    A supervisor all of whose releases succeeded exits
    :data:`~mesos_zmq.agent.supervisor.RELEASED_ALL`, and :func:`_reap` leaves its
    containers alone."""
    def release() -> None:
        isolator.destroy(container_id)

    return release


def _reap(sock: socket.socket, children: Children, spent: list[str]) -> None:
    """Collect ended supervisors; their tasks' cgroups go on ``spent`` for ``_release``,
    unless the supervisor exited :data:`~mesos_zmq.agent.supervisor.RELEASED_ALL` (a
    shared supervisor that released every one of them itself: looking again would cost
    a failed ``rmdir`` per hierarchy and task, on this loop, during the burst that made
    them)."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        tasks = children.pop(pid, None)
        if tasks is None:
            continue
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == RELEASED_ALL):
            spent.extend(container_id for _, container_id in tasks)
        _tell(sock, "reaped", [key for key, _ in tasks], pid)


def _receive(sock: socket.socket) -> tuple[list[bytes], bool]:
    """Every request waiting (up to :data:`MAX_BATCH`), and whether the agent is gone."""
    batch: list[bytes] = []
    while len(batch) < MAX_BATCH:
        try:
            data = sock.recv(MAX_PACKET, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            break
        if not data:
            return batch, True
        batch.append(data)
    return batch, False


def _release(isolator: Isolator, spent: list[str], count: int) -> None:
    """Destroy the cgroups of ended supervisors (and anything their task left running).

    Done when no launch is waiting, a few at a time: destroying (and emptying a memory
    cgroup first, so it does not linger) is slower than launching, and a burst of
    launches should not queue behind it."""
    for _ in range(min(count, len(spent))):
        container_id = spent.pop(0)
        try:
            isolator.destroy(container_id)
        except Exception as exc:
            print(f"launcher: cannot destroy container {container_id}: {exc}",
                  file=sys.stderr)


def _linger(sock: socket.socket, isolator: Isolator, children: Children,
            spent: list[str]) -> None:
    """The agent is gone. Supervisors that are ending anyway (a draining agent killed
    their tasks) get a few seconds to do so, so their cgroups are released rather than
    left for the next agent; the rest keep running and are not waited for."""
    deadline = time.monotonic() + LINGER
    while True:
        with contextlib.suppress(OSError):
            _reap(sock, children, spent)
        _release(isolator, spent, len(spent))
        if not children or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def serve(fd: int, isolation: str, cgroups_root: str) -> int:
    sock = socket.socket(fileno=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # `systemctl kill -s SIGUSR1` (a drain) reaches every process of the agent's unit:
    # the launcher must outlive it. Caught, not ignored, so nothing forked inherits it.
    for stray in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
        signal.signal(stray, lambda signum, frame: None)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    isolator = detect_isolator(cgroups_root, isolation)
    # What is loaded now lasts as long as the launcher: out of the collector's way, so
    # that a collection here touches only what came since (the pages of a heap shared
    # with supervisors stay shared).
    gc.collect()
    gc.freeze()
    fork_ready()  # the dispositions above are final
    children: Children = {}
    spent: list[str] = []
    # While supervisors are still to start their tasks, no request is read (see
    # Turns): the agent keeps the rest in its queue, in order.
    turns = Turns()
    while True:
        now = time.monotonic()
        turns.give_up(now)
        timeout = 0.0 if spent else 1.0
        busy = turns.busy()
        if busy:
            timeout = max(0.0, min(timeout, turns.deadline() - now))
        readers = [wake_r, *turns.fds()]
        if not busy:
            readers.append(sock.fileno())
        try:
            ready, _, _ = select.select(readers, [], [], timeout)
        except InterruptedError:
            ready = []
        if wake_r in ready:
            os.read(wake_r, 4096)
        for fd in [fd for fd in turns.fds() if fd in ready]:
            turns.done(fd)  # end of file: its supervisor started every task, or died
        batch: list[bytes] = []
        if sock.fileno() in ready:
            batch, gone = _receive(sock)
            if gone:
                # Requests that came just before the agent went are not started: no one
                # would hear of them here (a send to the closed socket fails), and the
                # restarted agent finds their tasks without a supervisor and writes them
                # off (cancel_unstarted), so they are reported, not lost.
                _linger(sock, isolator, children, spent)
                return 0  # the agent is gone
            _launch_batch(sock, isolator, batch, children, spent, turns)
        _reap(sock, children, spent)
        if not batch:
            _release(isolator, spent, 4)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m mesos_zmq.agent.launcher FD ISOLATION CGROUPS_ROOT",
              file=sys.stderr)
        return 2
    try:
        return serve(int(args[0]), args[1], args[2])
    except (BrokenPipeError, ConnectionResetError):
        return 0


if __name__ == "__main__":
    sys.exit(main())
