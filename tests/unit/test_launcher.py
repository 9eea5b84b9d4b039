"""The task launcher: requests forked in batches, in order, each failing alone; and a
real launcher process running a burst of tasks, each with a supervisor of its own and
its limits in force before its command runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from mesos_zmq.agent import launcher
from mesos_zmq.agent.events import Exited, Failed, Started, Supervising
from mesos_zmq.agent.isolation import Isolator, Limits, Posix
from mesos_zmq.agent.launcher import _launch_batch, encode_request
from mesos_zmq.agent.supervisor import RELEASED_ALL, SupervisorSpec, load_events
from tests.unit.test_isolation import real_v1_isolator

CGROUP_ROOT = "mesos-zmq-test-launcher"


def request(tmp_path: Path, name: str, command: str, limits: Limits | None = None,
            notify: bytes = b"", disk_limit: int | None = None) -> bytes:
    spec = SupervisorSpec(events=str(tmp_path / "events" / name),
                          sandbox=str(tmp_path / "sandboxes" / name),
                          argv=["/bin/sh", "-c", command],
                          env={"PATH": "/usr/bin:/bin", "TASK": name}, notify_name=notify,
                          disk_limit=disk_limit)
    return encode_request(spec.events, spec, f"c-{name}", limits or Limits())


def packets(sock: socket.socket) -> list[dict[str, Any]]:
    """Every reply waiting, as the launcher sent them."""
    out = []
    while True:
        try:
            out.append(json.loads(sock.recv(65536, socket.MSG_DONTWAIT)))
        except BlockingIOError:
            return out


def per_task(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """A reply about a supervisor, one dict per task it names (an error as it is)."""
    for what in ("started", "reaped"):
        if what in reply:
            return [{what: key, "pid": reply["pid"]} for key in reply[what]]
    return [reply]


def replies(sock: socket.socket) -> list[dict[str, Any]]:
    """Every reply waiting, one per task (see :func:`per_task`)."""
    return [one for reply in packets(sock) for one in per_task(reply)]


class FakeIsolator(Posix):
    """Records what the launcher prepares, in order; refuses the containers named.
    With ``home``, its cgroups can be left (a supervisor may be shared); without, every
    task gets a supervisor of its own."""

    def __init__(self, refuse: set[str] | None = None, home: bool = False) -> None:
        super().__init__()
        self.prepared: list[str] = []
        self.refuse = refuse or set()
        self.home = home

    def homes(self, proc_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
        return {"/cgroups": "/home/cgroup.procs"} if self.home else {}

    def prepare(self, container_id: str, limits: Limits) -> list[str]:
        self.prepared.append(container_id)
        if container_id in self.refuse:
            raise OSError(28, "No space left on device", container_id)
        return [f"/cgroups/{container_id}/cgroup.procs"]


def fake_fork(monkeypatch: pytest.MonkeyPatch, fail_at: set[int]) -> list[int]:
    """Replace the launcher's fork: the nth call returns a made-up pid (the child is
    never run), or raises EAGAIN when n is in ``fail_at``. Returns the pids given."""
    given: list[int] = []

    def fork() -> int:
        n = len(given)
        given.append(-1 if n in fail_at else 70_000 + n)
        if n in fail_at:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return 70_000 + n

    monkeypatch.setattr(launcher.os, "fork", fork)
    return given


def test_a_batch_is_prepared_and_forked_in_the_order_it_came(
        tmp_path: Path, pair: tuple[socket.socket, socket.socket],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = pair
    names = [f"t{i}" for i in range(10)]
    pids = fake_fork(monkeypatch, set())
    isolator = FakeIsolator()
    children: launcher.Children = {}
    _launch_batch(theirs, isolator, [request(tmp_path, n, "true") for n in names],
                  children, [])
    assert isolator.prepared == [f"c-{n}" for n in names]  # cgroups made before forks
    events = [str(tmp_path / "events" / n) for n in names]
    assert replies(ours) == [{"started": e, "pid": p} for e, p in zip(events, pids, strict=True)]
    assert list(children.values()) == [[(e, f"c-{n}")]
                                       for e, n in zip(events, names, strict=True)]


def test_a_supervisor_that_cannot_be_forked_fails_its_task_alone(
        tmp_path: Path, pair: tuple[socket.socket, socket.socket],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = pair
    fake_fork(monkeypatch, {1})
    spent: list[str] = []
    children: launcher.Children = {}
    _launch_batch(theirs, FakeIsolator(), [request(tmp_path, n, "true")
                                           for n in ("a", "b", "c")], children, spent)
    ev = {n: str(tmp_path / "events" / n) for n in ("a", "b", "c")}
    assert replies(ours) == [{"started": ev["a"], "pid": 70_000},
                             {"started": ev["c"], "pid": 70_002},
                             {"reaped": ev["b"], "pid": 0}]
    assert spent == ["c-b"]  # its cgroups are released like an ended supervisor's
    assert sorted(key for tasks in children.values() for key, _ in tasks) == [ev["a"], ev["c"]]
    (failed,) = load_events(Path(ev["b"]))
    assert isinstance(failed, Failed) and "cannot start the task's supervisor" in failed.error
    assert not (tmp_path / "events" / "a").exists()  # written by its supervisor, not here


def test_a_bad_request_in_a_batch_fails_only_its_task(
        tmp_path: Path, pair: tuple[socket.socket, socket.socket],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = pair
    fake_fork(monkeypatch, set())
    bad_events = str(tmp_path / "events" / "bad")
    bad = json.dumps({"key": bad_events, "spec": {}}).encode()
    _launch_batch(theirs, FakeIsolator(), [request(tmp_path, "a", "true"), bad,
                                           request(tmp_path, "c", "true")], {}, [])
    got = replies(ours)
    assert "bad launch request" in got[0]["error"]
    assert got[1:] == [{"reaped": bad_events, "pid": 0},
                       {"started": str(tmp_path / "events" / "a"), "pid": 70_000},
                       {"started": str(tmp_path / "events" / "c"), "pid": 70_001}]
    (failed,) = load_events(Path(bad_events))
    assert isinstance(failed, Failed)


# ------------------------------------------------------- a real launcher process


def start_launcher(isolation: str) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesos_zmq.agent.launcher", str(theirs.fileno()),
         isolation, CGROUP_ROOT], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
    theirs.close()
    return ours, proc


def run_burst(requests: list[bytes], isolation: str,
              timeout: float = 60.0) -> list[dict[str, Any]]:
    """Send every request at once (as a big RunTasks makes the agent do) and collect the
    launcher's replies until every supervisor was reaped."""
    sock, proc = start_launcher(isolation)
    got: list[dict[str, Any]] = []
    try:
        for data in requests:
            sock.send(data)
        deadline = time.monotonic() + timeout
        while sum(1 for r in got if "reaped" in r) < len(requests):
            assert time.monotonic() < deadline, f"replies so far: {got}"
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            got.extend(per_task(json.loads(sock.recv(65536))))
    finally:
        sock.close()
        proc.wait(10)
    return got


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_burst_shares_supervisors_starts_in_order_and_records_every_end(
        tmp_path: Path) -> None:
    names = [f"t{i:02d}" for i in range(40)]
    commands = {n: ("exit 7" if n == "t13" else "echo $TASK") for n in names}
    commands["t21"] = "exec /nonexistent/command"
    # The launcher ignores or catches some signals itself: none of that reaches a task.
    commands["t30"] = "exec grep -E '^Sig(Blk|Ign)' /proc/self/status"
    got = run_burst([request(tmp_path, n, commands[n]) for n in names], "posix")
    started = [r["started"] for r in got if "started" in r]
    # Supervisors are forked in the order the requests came.
    assert started == [str(tmp_path / "events" / n) for n in names]
    supervisors: dict[int, list[str]] = {}
    started_at = {}
    for n in names:
        supervising, start, *rest = load_events(tmp_path / "events" / n)
        assert isinstance(supervising, Supervising) and isinstance(start, Started)
        assert start.supervisor == supervising.pid and start.pid != supervising.pid
        supervisors.setdefault(supervising.pid, []).append(n)
        started_at[n] = start.time
        (exited,) = rest
        assert isinstance(exited, Exited)
        if n == "t13":
            assert exited.exit_code == 7
        elif n == "t21":
            assert exited.exit_code == 127
        elif n == "t30":
            assert exited.exit_code == 0
            assert (tmp_path / "sandboxes" / n / "stdout").read_text() == (
                "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n")
        else:
            assert exited.exit_code == 0
            assert (tmp_path / "sandboxes" / n / "stdout").read_text() == f"{n}\n"
    # Plain tasks share supervisors (the launcher reads the burst in a few batches),
    # and each supervisor starts its tasks one after the other, in request order.
    assert len(supervisors) < len(names) // 4, supervisors
    for tasks in supervisors.values():
        assert tasks == sorted(tasks)
        assert [started_at[n] for n in tasks] == sorted(started_at[n] for n in tasks)


@pytest.fixture
def cgroups_v1() -> Iterator[Isolator]:
    iso = real_v1_isolator(CGROUP_ROOT)
    yield iso
    for container_id in iso.containers():
        iso.destroy(container_id)


def test_limits_are_in_force_before_the_command_runs(tmp_path: Path,
                                                     cgroups_v1: Isolator) -> None:
    """The task's first instruction already runs in its cgroups, with their limits (read
    by the command itself), and the launcher releases them once it reaped its
    supervisor."""
    show = ("for c in memory pids; do p=$(grep \":$c:\" /proc/self/cgroup | cut -d: -f3);"
            " echo $c $p; done;"
            " cat /sys/fs/cgroup/memory$(grep ':memory:' /proc/self/cgroup | cut -d: -f3)"
            "/memory.limit_in_bytes;"
            " cat /sys/fs/cgroup/pids$(grep ':pids:' /proc/self/cgroup | cut -d: -f3)"
            "/pids.max")
    limits = {n: Limits(cpus=0.1, mem_bytes=(32 + i) << 20, pids_max=100 + i)
              for i, n in enumerate(f"t{i}" for i in range(8))}
    got = run_burst([request(tmp_path, n, show, lim) for n, lim in limits.items()], "auto")
    assert not [r for r in got if "error" in r]
    for n, lim in limits.items():
        lines = (tmp_path / "sandboxes" / n / "stdout").read_text().split("\n")
        assert lines[0] == f"memory /{CGROUP_ROOT}/c-{n}"
        assert lines[1] == f"pids /{CGROUP_ROOT}/c-{n}"
        assert lines[2:4] == [str(lim.mem_bytes), str(lim.pids_max)]
        assert isinstance(load_events(tmp_path / "events" / n)[-1], Exited)
    until(lambda: not cgroups_v1.containers())  # released after the last reap


def test_a_container_that_cannot_be_prepared_fails_its_task_alone(
        tmp_path: Path, pair: tuple[socket.socket, socket.socket],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cgroups are made by the launcher before the forks; a failure there reaches
    the task's supervisor, which records it as the task's failure (the command never
    runs), and leaves the other tasks of the batch alone."""
    ours, theirs = pair

    def run_forked(spec: SupervisorSpec, prepare: Callable[[], list[str]],
                   finish: Callable[[], bool], inherited: list[int],
                   *turn: int | None) -> NoReturn:
        # In the child: the supervisor, without joining the fake isolator's cgroups.
        from mesos_zmq.agent import supervisor

        def no_join() -> list[str]:
            prepare()  # raises what went wrong in the launcher
            return []

        code = 1
        try:
            code = supervisor.supervise(spec, no_join, finish)
        finally:
            os._exit(code)

    monkeypatch.setattr(launcher, "run_forked", run_forked)
    children: launcher.Children = {}
    iso = FakeIsolator(refuse={"c-b"})
    _launch_batch(theirs, iso, [request(tmp_path, n, "echo ran")
                                for n in ("a", "b", "c")], children, [])
    for pid in children:
        os.waitpid(pid, 0)
    for n in ("a", "c"):
        assert (tmp_path / "sandboxes" / n / "stdout").read_text() == "ran\n"
    _, failed = load_events(tmp_path / "events" / "b")
    assert isinstance(failed, Failed) and "No space left on device" in failed.error
    assert not (tmp_path / "sandboxes" / "b" / "stdout").exists()
    assert len(replies(ours)) == 3


# ------------------------------------------------------- shared supervisors


def ready(name: str, procs: list[str] | None, watched: bool = False) -> launcher._Ready:
    """A request as :func:`launcher._groups` sees it (``watched``: with a disk limit)."""
    spec = SupervisorSpec(events=f"/ev/{name}", sandbox=f"/sb/{name}", argv=["true"],
                          env={}, disk_limit=1 << 20 if watched else None)

    def never() -> Any:
        raise AssertionError("not called by the grouping")

    return launcher._Ready(name, f"c-{name}", spec, never, procs, never, never)


def test_runs_of_plain_tasks_share_a_supervisor_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks with nothing to watch share, up to TASKS_PER_SUPERVISOR at a time; a task
    with a watch, one whose cgroups could not be made, one in a hierarchy it could not
    leave, and a run of one each get a supervisor of their own; the order holds."""
    monkeypatch.setattr(launcher, "TASKS_PER_SUPERVISOR", 3)
    homes = {"/cgroups": "/home/cgroup.procs"}
    inside = ["/cgroups/x/cgroup.procs"]
    batch = [ready("a", inside), ready("b", []), ready("c", inside), ready("d", inside),
             ready("e", inside, watched=True), ready("f", inside), ready("g", inside),
             ready("h", None), ready("i", ["/elsewhere/x/cgroup.procs"]), ready("j", inside)]
    groups = launcher._groups(batch, homes)
    assert [([r.key for r in group], shared is not None) for group, shared in groups] == [
        (["a", "b", "c"], True), (["d"], False), (["e"], False), (["f", "g"], True),
        (["h"], False), (["i"], False), (["j"], False)]
    assert all(shared is homes for _, shared in groups if shared is not None)


def test_a_shared_supervisor_is_one_fork_and_a_failed_one_fails_its_tasks_alone(
        tmp_path: Path, pair: tuple[socket.socket, socket.socket],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = pair
    monkeypatch.setattr(launcher, "TASKS_PER_SUPERVISOR", 2)
    fake_fork(monkeypatch, {1})
    spent: list[str] = []
    children: launcher.Children = {}
    names = ["a", "b", "c", "d", "e"]
    _launch_batch(theirs, FakeIsolator(home=True),
                  [request(tmp_path, n, "true") for n in names], children, spent)
    ev = {n: str(tmp_path / "events" / n) for n in names}
    assert replies(ours) == [{"started": ev["a"], "pid": 70_000},
                             {"started": ev["b"], "pid": 70_000},
                             {"started": ev["e"], "pid": 70_002},
                             {"reaped": ev["c"], "pid": 0},
                             {"reaped": ev["d"], "pid": 0}]
    assert children == {70_000: [(ev["a"], "c-a"), (ev["b"], "c-b")],
                        70_002: [(ev["e"], "c-e")]}
    assert spent == ["c-c", "c-d"]
    for n in ("c", "d"):
        (failed,) = load_events(Path(ev[n]))
        assert isinstance(failed, Failed) and "cannot start the task's supervisor" in failed.error


def reap_stand_in(theirs: socket.socket, status: int) -> tuple[int, list[str]]:
    """A stand-in shared supervisor of tasks a and b that exits ``status``, reaped:
    its pid and the containers the launcher then releases."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the stand-in just exits
        os._exit(status)
    children: launcher.Children = {pid: [("/ev/a", "c-a"), ("/ev/b", "c-b")]}
    spent: list[str] = []

    def reaped() -> bool:
        launcher._reap(theirs, children, spent)
        return not children

    until(reaped)
    return pid, spent


def test_a_reaped_shared_supervisor_reports_each_of_its_tasks(
        tmp_path: Path, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    pid, spent = reap_stand_in(theirs, 0)
    assert spent == ["c-a", "c-b"]
    assert replies(ours) == [{"reaped": "/ev/a", "pid": pid}, {"reaped": "/ev/b", "pid": pid}]


def test_a_shared_supervisor_that_released_its_tasks_cgroups_is_not_released_again(
        tmp_path: Path, pair: tuple[socket.socket, socket.socket]) -> None:
    """A supervisor that exits RELEASED_ALL released every task's cgroups itself: the
    launcher reports its tasks reaped but does not destroy their cgroups once more (a
    failed rmdir per hierarchy and task, on its loop, during a burst)."""
    ours, theirs = pair
    pid, spent = reap_stand_in(theirs, RELEASED_ALL)
    assert spent == []
    assert replies(ours) == [{"reaped": "/ev/a", "pid": pid}, {"reaped": "/ev/b", "pid": pid}]


def test_the_agent_hears_of_a_supervisor_in_one_reply_not_one_per_task(
        tmp_path: Path, pair: tuple[socket.socket, socket.socket],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared supervisor's tasks are named in one ``started`` packet and one
    ``reaped`` packet (a packet per task cost both sides a system call and a JSON
    document each, twice a task); the names are split over packets only past
    REPLY_BYTES."""
    ours, theirs = pair
    fake_fork(monkeypatch, set())
    children: launcher.Children = {}
    names = ["a", "b", "c"]
    _launch_batch(theirs, FakeIsolator(home=True),
                  [request(tmp_path, n, "true") for n in names], children, [])
    ev = [str(tmp_path / "events" / n) for n in names]
    assert packets(ours) == [{"started": ev, "pid": 70_000}]
    monkeypatch.undo()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - a stand-in supervisor that just exits
        os._exit(0)
    children = {pid: [(e, f"c-{n}") for e, n in zip(ev, names, strict=True)]}

    def reaped() -> bool:
        launcher._reap(theirs, children, [])
        return not children

    until(reaped)
    assert packets(ours) == [{"reaped": ev, "pid": pid}]
    long = ["x" * (launcher.REPLY_BYTES // 2 - 10)] * 5
    launcher._tell(theirs, "reaped", long, 7)
    assert [len(p["reaped"]) for p in packets(ours)] == [2, 2, 1]


def test_replies_fit_what_the_agent_reads_at_once_whatever_the_names(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """Names are sized as JSON writes them: a non-ASCII work dir makes each character
    six bytes, and a packet longer than the agent's read (64 KiB) would be cut short
    and its tasks never heard of."""
    ours, theirs = pair
    names = [f"/var/lib/作業/{'任務' * 100}/{n}/events" for n in range(64)]
    launcher._tell(theirs, "started", names, 7)
    got: list[str] = []
    ours.setblocking(False)
    while True:
        try:
            data = ours.recv(65536)
        except BlockingIOError:
            break
        assert len(data) <= 2 * launcher.REPLY_BYTES
        reply = json.loads(data)
        assert reply["pid"] == 7
        got += reply["started"]
    assert got == names


def cgroup_of(pid: int, controller: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise AssertionError(f"{pid} has no {controller} cgroup")


def test_a_shared_supervisor_starts_each_task_in_its_own_cgroups_only(
        tmp_path: Path, cgroups_v1: Isolator) -> None:
    """A task without a pids limit, started right after one with (which joined a pids
    cgroup it does not), is in the launcher's pids cgroup, not its neighbour's; the
    supervisor ends in no task's cgroup; each task's cgroups go as soon as it ended,
    while the supervisor still waits for another."""
    me = {c: cgroup_of(os.getpid(), c) for c in ("memory", "pids")}
    show = "grep -E ':(memory|pids):' /proc/self/cgroup | sort"
    limits = {"t0": Limits(mem_bytes=64 << 20, pids_max=50),
              "t1": Limits(mem_bytes=64 << 20),
              "t2": Limits(mem_bytes=64 << 20, pids_max=60)}
    requests = [request(tmp_path, n, show, lim) for n, lim in limits.items()]
    requests.append(request(tmp_path, "long", "exec sleep 30", Limits(mem_bytes=64 << 20)))
    sock, proc = start_launcher("auto")
    try:
        for data in requests:
            sock.send(data)
        long_events = tmp_path / "events" / "long"
        until(lambda: len(load_events(long_events)) >= 2)
        supervising, started = load_events(long_events)[:2]
        assert isinstance(supervising, Supervising) and supervising.pid is not None
        assert isinstance(started, Started) and started.pid is not None
        for n in limits:
            events = load_events(tmp_path / "events" / n)
            assert events[0] == Supervising(pid=supervising.pid, start=supervising.start,
                                            seq=1, time=events[0].time)
        for controller in ("memory", "pids"):
            assert CGROUP_ROOT not in cgroup_of(supervising.pid, controller)
        for n, lim in limits.items():
            ended = tmp_path / "events" / n
            until(lambda ended=ended: isinstance(load_events(ended)[-1], Exited))  # type: ignore[misc]
            lines = (tmp_path / "sandboxes" / n / "stdout").read_text().split()
            cgroups = dict(line.split(":", 2)[1:] for line in lines)
            assert cgroups["memory"] == f"/{CGROUP_ROOT}/c-{n}"
            assert cgroups["pids"] == (f"/{CGROUP_ROOT}/c-{n}" if lim.pids_max else me["pids"])
        # The ended tasks' cgroups are gone while their supervisor waits for "long".
        until(lambda: cgroups_v1.containers() == ["c-long"])
        os.kill(started.pid, 9)
        until(lambda: isinstance(load_events(long_events)[-1], Exited))
        until(lambda: not cgroups_v1.containers())
    finally:
        sock.close()
        proc.wait(10)


def test_each_shared_supervisor_has_a_baton_the_launcher_waits_on(
        tmp_path: Path, pair: tuple[socket.socket, socket.socket],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each supervisor, shared or not, gets the write end of a pipe (closed once its
    tasks are started: here, with no real child, at once), the launcher the read
    end."""
    _, theirs = pair
    monkeypatch.setattr(launcher, "TASKS_PER_SUPERVISOR", 2)
    fake_fork(monkeypatch, set())
    turns = launcher.Turns()
    _launch_batch(theirs, FakeIsolator(home=True),
                  [request(tmp_path, n, "true") for n in "abcde"], {}, [], turns)
    batons = turns.fds()
    try:
        assert len(batons) == 3  # (a, b) and (c, d) share; e alone
        assert turns.last == batons[-1]
        for fd in batons:
            assert os.read(fd, 1) == b""  # end of file: the launcher kept no write end
    finally:
        for fd in batons:
            os.close(fd)
