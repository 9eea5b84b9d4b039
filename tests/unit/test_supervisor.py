"""The task supervisor, run in-process: its status stream, and a written-off task."""

from __future__ import annotations

import os
from pathlib import Path

from mesos_zmq.agent.events import Exited, Failed, Started, Supervising
from mesos_zmq.agent.supervisor import (
    SupervisorSpec,
    cancel_unstarted,
    load_events,
    read_events,
    run_forked,
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
