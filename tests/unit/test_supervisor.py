"""The task supervisor, run in-process: its status stream, and a written-off task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mesos_zmq.agent.events import Exited, Failed, Started, Supervising
from mesos_zmq.agent.supervisor import (
    RELEASED_ALL,
    SURVIVED_SIGNALS,
    SharedTask,
    SupervisorSpec,
    cancel_unstarted,
    load_events,
    read_events,
    run_forked,
    run_shared_forked,
    supervise,
)


def spec(tmp_path: Path, command: str) -> SupervisorSpec:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir(exist_ok=True)
    return SupervisorSpec(events=str(tmp_path / "events" / "t1"), sandbox=str(sandbox),
                          argv=["/bin/sh", "-c", command], env={"PATH": "/usr/bin:/bin"})


def test_status_stream_records_the_true_exit(tmp_path: Path) -> None:
    s = spec(tmp_path, "echo out; exit 3")
    assert supervise(s) == 0
    events = read_events(Path(s.events))
    assert [e["event"] for e in events] == ["supervising", "started", "exited"]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert events[-1]["exit_code"] == 3 and events[-1]["signal"] is None
    assert (tmp_path / "sandbox" / "stdout").read_text() == "out\n"
    assert read_events(Path(s.events), after=2) == events[2:]
    supervising, started, exited = load_events(Path(s.events))
    assert isinstance(supervising, Supervising) and supervising.pid == os.getpid()
    assert isinstance(started, Started) and started.supervisor == os.getpid()
    assert started.pid == events[1]["pid"] and started.seq == 2
    assert exited == Exited(exit_code=3, signal=None, seq=3, time=exited.time)
    assert load_events(Path(s.events), after=2) == [exited]


def test_a_written_off_task_is_never_started(tmp_path: Path) -> None:
    s = spec(tmp_path, f"touch {tmp_path / 'ran'}")
    assert cancel_unstarted(Path(s.events), "agent restarted") is True
    assert cancel_unstarted(Path(s.events), "again") is False
    assert supervise(s) == 0
    assert not (tmp_path / "ran").exists()
    (event,) = read_events(Path(s.events))
    assert (event["event"], event["error"]) == ("failed", "agent restarted")
    (typed,) = load_events(Path(s.events))
    assert typed == Failed(error="agent restarted", seq=1, time=event["time"])


def test_a_command_that_cannot_start_is_a_failed_event(tmp_path: Path) -> None:
    s = SupervisorSpec(events=str(tmp_path / "ev"), sandbox=str(tmp_path),
                       argv=["/nonexistent/binary"], env={})
    assert supervise(s) == 1
    events = read_events(Path(s.events))
    assert [e["event"] for e in events] == ["supervising", "failed"]
    assert "nonexistent" in events[-1]["error"]


def test_torn_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events"
    path.write_text('{"seq": 1, "event": "started", "pid": 5}\n{"seq": 2, "ev')
    assert [e["seq"] for e in read_events(path)] == [1]
    assert load_events(path) == [Started(pid=5, seq=1)]


def test_process_identity_survives_pid_reuse_checks() -> None:
    import subprocess

    from mesos_zmq.agent.supervisor import process_alive, process_start

    me = os.getpid()
    start = process_start(me)
    assert start is not None and process_alive(me, start)
    assert not process_alive(me, start + 1)  # same pid, another process
    child = subprocess.Popen(["true"])
    while child.poll() is None:
        pass
    assert not process_alive(child.pid, None)  # reaped: gone
    zombie = subprocess.Popen(["sh", "-c", "exit 0"])
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
    assert not process_alive(zombie.pid, None)
    zombie.wait()


def test_a_forked_supervisor_starts_its_task_clean(tmp_path: Path) -> None:
    """As the launcher forks it: the task runs in a
    session of its own, in its sandbox, stdin from /dev/null, with the descriptors a
    fresh ``subprocess`` child of ours would have (none of the supervisor's), no signal
    ignored or blocked, and its command found in the task's PATH, not in ours."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    show = bin_dir / "show"
    show.write_text("#!/bin/sh\n"
                    "set -- $(sed 's/.*) //' /proc/$$/stat); echo session $(($4 == $$))\n"
                    "pwd; readlink /proc/$$/fd/0; ls /proc/$$/fd\n"
                    "exec grep -E '^Sig(Ign|Blk)' /proc/self/status\n")
    show.chmod(0o755)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    env = {"PATH": f"/nonexistent:{bin_dir}:/usr/bin:/bin"}
    s = SupervisorSpec(events=str(tmp_path / "ev"), sandbox=str(sandbox), argv=["show"],
                       env=env)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the supervisor, as the launcher forks it
        run_forked(s)
    assert os.waitpid(pid, 0)[1] == 0
    assert read_events(Path(s.events))[-1]["exit_code"] == 0
    seen = (sandbox / "stdout").read_text()
    assert seen.split("\n")[:3] == ["session 1", str(sandbox), "/dev/null"]
    assert seen.split("\n")[-3:] == ["SigBlk:\t0000000000000000",
                                     "SigIgn:\t0000000000000000", ""]
    clean = subprocess.run([str(show)], cwd=sandbox, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, start_new_session=True,
                           check=True).stdout
    assert seen == clean


def test_a_command_not_in_the_tasks_path_fails_to_start(tmp_path: Path) -> None:
    s = SupervisorSpec(events=str(tmp_path / "ev"), sandbox=str(tmp_path),
                       argv=["sh", "-c", "exit 0"], env={"PATH": str(tmp_path / "empty")})
    assert supervise(s) == 1
    (_, failed) = read_events(Path(s.events))
    assert failed["event"] == "failed" and "No such file or directory: 'sh'" in failed["error"]


# ------------------------------------------------------------ a shared supervisor


def shared_task(tmp_path: Path, name: str, command: str, log: Path,
                prepare_error: str = "") -> SharedTask:
    """A task of a shared supervisor whose ``release`` notes, in ``log``, the task
    it released and the last event recorded for it by then."""
    events = tmp_path / "events" / name
    sandbox = tmp_path / "sandboxes" / name
    spec = SupervisorSpec(events=str(events), sandbox=str(sandbox),
                          argv=["/bin/sh", "-c", command], env={"PATH": "/usr/bin:/bin"})

    def prepare() -> list[str]:
        sandbox.mkdir(parents=True, exist_ok=True)
        if prepare_error:
            raise OSError(28, prepare_error)
        return []

    def release() -> None:
        last = read_events(events)[-1]["event"]
        with open(log, "a") as handle:
            handle.write(f"{name} {last}\n")

    return SharedTask(spec, prepare, lambda: False, release)


def run_shared(tasks: list[SharedTask]) -> int:
    """Fork a shared supervisor of ``tasks``, as the launcher does; its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the supervisor, as the launcher forks it
        run_shared_forked(tasks, {})
    return pid


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_shared_supervisor_starts_its_tasks_in_order_and_records_each_end(
        tmp_path: Path) -> None:
    """Each task has its own events (this supervisor's pid in each), starts after the
    one before it, and has its own exit status; a task written off by a restarted agent
    is skipped and one that cannot be prepared fails alone; each task's cgroups are
    released once its end is recorded, without waiting for the others."""
    log = tmp_path / "released"
    commands = {"a": "echo a; exit 3", "b": "echo b", "c": "exit 0", "d": "kill -9 $$",
                "e": "echo e"}
    tasks = [shared_task(tmp_path, n, c, log, prepare_error="No space" if n == "c" else "")
             for n, c in commands.items()]
    cancel_unstarted(tmp_path / "events" / "e", "the agent restarted")
    pid = run_shared(tasks)
    # every task's release ran (one failing would make it 0: see the test below)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == RELEASED_ALL
    ev = {n: load_events(tmp_path / "events" / n) for n in commands}
    starts = []
    codes = []
    for n in ("a", "b", "d"):
        supervising, started, exited = ev[n]
        assert isinstance(supervising, Supervising) and supervising.pid == pid
        assert isinstance(started, Started) and started.supervisor == pid
        assert isinstance(exited, Exited)
        starts.append(started.time)
        codes.append(exited.exit_code)
    assert starts == sorted(starts)
    assert codes == [3, 0, None]
    assert ev["d"][2] == Exited(exit_code=None, signal=9, seq=3, time=ev["d"][2].time)
    assert (tmp_path / "sandboxes" / "b" / "stdout").read_text() == "b\n"
    supervising, failed = ev["c"]
    assert isinstance(failed, Failed) and "No space" in failed.error
    (written_off,) = ev["e"]
    assert isinstance(written_off, Failed) and written_off.error == "the agent restarted"
    assert not (tmp_path / "sandboxes" / "e" / "stdout").exists()
    released = dict(line.split() for line in log.read_text().splitlines())
    assert released == {"a": "exited", "b": "exited", "c": "failed", "d": "exited",
                        "e": "failed"}


def test_a_shared_supervisor_outlives_stray_signals_and_one_killed_task(
        tmp_path: Path) -> None:
    """Killing one task ends that task alone: its end is recorded and released at
    once, while the supervisor goes on watching the others; the signals a supervisor
    survives do not end this one. (Run in a fresh interpreter, as the launcher is: a
    child forked from pytest's process inherits its fault handler's signal stack, and
    signals delivered back to back then crash it now and then, shared or not.)"""
    log = tmp_path / "released"
    code = ("from pathlib import Path\n"
            "from mesos_zmq.agent.supervisor import run_shared_forked\n"
            "from tests.unit.test_supervisor import shared_task\n"
            f"tmp = Path({str(tmp_path)!r})\n"
            "run_shared_forked([shared_task(tmp, n, 'exec sleep 30', tmp / 'released')\n"
            "                   for n in ('a', 'b')], {})\n")
    root = Path(__file__).resolve().parents[2]
    supervisor = subprocess.Popen([sys.executable, "-c", code], cwd=root,
                                  stdin=subprocess.DEVNULL)
    try:
        events = {n: tmp_path / "events" / n for n in ("a", "b")}
        wait_for(lambda: all(len(load_events(p)) == 2 for p in events.values()))
        for signum in sorted(SURVIVED_SIGNALS):
            os.kill(supervisor.pid, signum)
        _, started_a = load_events(events["a"])
        assert isinstance(started_a, Started) and started_a.pid is not None
        os.kill(started_a.pid, signal.SIGKILL)
        wait_for(lambda: log.exists() and log.read_text() == "a exited\n")
        ended = load_events(events["a"])[-1]
        assert isinstance(ended, Exited) and ended.signal == signal.SIGKILL
        assert supervisor.poll() is None  # still watching b
        _, started_b = load_events(events["b"])
        assert isinstance(started_b, Started) and started_b.pid is not None
        os.kill(started_b.pid, signal.SIGTERM)
        assert supervisor.wait(10) == RELEASED_ALL
        ended = load_events(events["b"])[-1]
        assert isinstance(ended, Exited) and ended.signal == signal.SIGTERM
        assert log.read_text() == "a exited\nb exited\n"
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(5)


def test_a_shared_supervisor_that_could_not_release_a_task_leaves_it_to_the_launcher(
        tmp_path: Path) -> None:
    """Only a shared supervisor that released every task's cgroups itself exits
    RELEASED_ALL (and the launcher then skips them); one release that raised, or a task
    with no release at all, and it exits 0: the launcher releases them all again."""
    log = tmp_path / "released"
    good = shared_task(tmp_path, "a", "exit 0", log)
    stuck = shared_task(tmp_path, "b", "exit 0", log)

    def refused() -> None:
        raise OSError(16, "Device or resource busy")

    pid = run_shared([good, SharedTask(stuck.spec, stuck.prepare, stuck.finish, refused)])
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    pid = run_shared([shared_task(tmp_path, "c", "exit 0", log),
                      SharedTask(SupervisorSpec(events=str(tmp_path / "events" / "d"),
                                                sandbox=str(tmp_path), argv=["true"],
                                                env={"PATH": "/usr/bin:/bin"}))])
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert log.read_text().splitlines() == ["a exited", "c exited"]


def test_a_shared_supervisor_says_when_its_tasks_are_started(tmp_path: Path) -> None:
    """The pipe it is given closes once every task is started, long before they end:
    what the launcher waits for before it starts the next batch's tasks."""
    log = tmp_path / "released"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the supervisor, as the launcher forks it
        os.close(read_end)
        run_shared_forked([shared_task(tmp_path, n, "exec sleep 30", log) for n in "ab"],
                          {}, started=write_end)
    os.close(write_end)
    try:
        assert os.read(read_end, 1) == b""
        for n in "ab":
            _, started = load_events(tmp_path / "events" / n)
            assert isinstance(started, Started) and started.pid is not None
            os.kill(started.pid, signal.SIGKILL)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == RELEASED_ALL
        assert not log.read_text().count("failed")
    finally:
        os.close(read_end)
