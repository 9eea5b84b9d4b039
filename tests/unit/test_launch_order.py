"""Supervisors take turns: each prepares its tasks at once, starts them only after the
one forked before it has started its own (or after ORDER_WAIT), and hands the turn
on; the launcher forks the next one while the last one starts, no further."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from mesos_zmq.agent import launcher, supervisor
from mesos_zmq.agent.events import Started, Supervising
from mesos_zmq.agent.launcher import Turns, _launch_batch
from mesos_zmq.agent.supervisor import (
    SharedTask,
    SupervisorSpec,
    load_events,
    run_forked,
    run_shared_forked,
)
from tests.unit.test_launcher import FakeIsolator, request, run_burst
from tests.unit.test_supervisor import shared_task, wait_for


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def kinds(path: Path) -> list[str]:
    return [type(event).__name__ for event in load_events(path)]


def fork_shared(tasks: list[SharedTask], after: int | None, started: int | None) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the supervisor, as the launcher forks it
        run_shared_forked(tasks, {}, started=started, after=after)
    return pid


def test_a_shared_supervisor_prepares_its_tasks_then_waits_for_its_turn(
        tmp_path: Path) -> None:
    """Events (with ``supervising``), sandboxes and output files are made before the
    turn comes; no task starts until the supervisor before it hands the turn on; then
    they start, and the turn goes on once they are all started."""
    log = tmp_path / "released"
    turn_r, turn_w = os.pipe()  # the turn of the supervisor "before" this one
    next_r, next_w = os.pipe()  # what this one hands on
    names = ["a", "b", "c"]
    pid = fork_shared([shared_task(tmp_path, n, "exec sleep 30", log) for n in names],
                      after=turn_r, started=next_w)
    os.close(turn_r)
    os.close(next_w)
    try:
        for n in names:
            wait_for(lambda n=n: (tmp_path / "sandboxes" / n / "stdout").exists())  # type: ignore[misc]
            assert kinds(tmp_path / "events" / n) == ["Supervising"]
        time.sleep(0.3)
        assert all(kinds(tmp_path / "events" / n) == ["Supervising"] for n in names)
        os.set_blocking(next_r, False)
        with pytest.raises(BlockingIOError):
            os.read(next_r, 1)  # not handed on yet
        os.close(turn_w)  # the one before has started its tasks
        os.set_blocking(next_r, True)
        assert os.read(next_r, 1) == b""  # all started: handed on
        starts = []
        for n in names:
            supervising, started = load_events(tmp_path / "events" / n)
            assert isinstance(supervising, Supervising) and supervising.pid == pid
            assert isinstance(started, Started) and started.pid is not None
            starts.append(started.time)
            os.kill(started.pid, 9)
        assert starts == sorted(starts)
        # Every task's release ran: the launcher need not release them again.
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == supervisor.RELEASED_ALL
    finally:
        for fd in (turn_w, next_r):
            if is_open(fd):
                os.close(fd)


def test_a_supervisor_of_its_own_waits_for_its_turn_too(tmp_path: Path) -> None:
    """A task with something to watch (here a disk limit) has a supervisor of its
    own, which takes its turn like a shared one: its files first, its start after the
    supervisor before it, then the turn handed on."""
    turn_r, turn_w = os.pipe()
    next_r, next_w = os.pipe()
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    spec = SupervisorSpec(events=str(tmp_path / "events"), sandbox=str(sandbox),
                          argv=["/bin/sh", "-c", "exec sleep 30"],
                          env={"PATH": "/usr/bin:/bin"}, disk_limit=1 << 30)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the supervisor, as the launcher forks it
        run_forked(spec, started=next_w, after=turn_r)
    os.close(turn_r)
    os.close(next_w)
    try:
        wait_for(lambda: (sandbox / "stdout").exists())
        assert kinds(tmp_path / "events") == ["Supervising"]
        time.sleep(0.3)
        assert kinds(tmp_path / "events") == ["Supervising"]
        os.close(turn_w)
        assert os.read(next_r, 1) == b""  # started: handed on
        _, started = load_events(tmp_path / "events")
        assert isinstance(started, Started) and started.pid is not None
        os.kill(started.pid, 9)
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        os.close(next_r)
        if is_open(turn_w):
            os.close(turn_w)


def test_a_turn_that_never_comes_is_waited_for_order_wait_at_most(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A supervisor before it that hangs (a user lookup that never answers) delays the
    tasks by ORDER_WAIT, never for good."""
    monkeypatch.setattr(supervisor, "ORDER_WAIT", 0.3)
    turn_r, turn_w = os.pipe()
    began = time.monotonic()
    pid = fork_shared([shared_task(tmp_path, "a", "exit 0", tmp_path / "released")],
                      after=turn_r, started=None)
    os.close(turn_r)
    try:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == supervisor.RELEASED_ALL
        assert time.monotonic() - began >= 0.3
        assert kinds(tmp_path / "events" / "a") == ["Supervising", "Started", "Exited"]
    finally:
        os.close(turn_w)


def test_turns_keep_the_last_baton_for_the_next_supervisor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher reads on while at most AHEAD supervisors have still to start their
    tasks; one it gave up on (START_WAIT) or saw done is no longer waited for, but the
    last one forked stays open for the next one to wait on, unless it is known to be
    done."""
    monkeypatch.setattr(launcher, "AHEAD", 1)
    turns = Turns()
    pipes = [os.pipe() for _ in range(3)]
    try:
        (r1, _), (r2, _), (r3, _) = pipes
        turns.forked(r1, 0.0)
        assert turns.last == r1 and not turns.busy()
        turns.forked(r2, 0.0)
        assert turns.last == r2 and turns.busy() and turns.fds() == [r1, r2]
        assert turns.deadline() == launcher.START_WAIT
        turns.give_up(launcher.START_WAIT)  # both too long: waited for no more
        assert turns.fds() == [] and not turns.busy()
        assert not is_open(r1) and is_open(r2)  # r2: the next one waits on it
        turns.forked(r3, 5.0)
        assert not is_open(r2) and turns.last == r3
        turns.done(r3)
        assert turns.last is None and not is_open(r3) and turns.fds() == []
    finally:
        for r, w in pipes:
            os.close(w)
            if is_open(r):
                os.close(r)


def test_each_shared_supervisor_waits_for_the_one_forked_before_it(
        tmp_path: Path, pair: tuple[socket.socket, socket.socket],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Across batches: the first supervisor waits for none, each next one for the
    baton of the one before, shared or not."""
    _, theirs = pair
    monkeypatch.setattr(launcher, "TASKS_PER_SUPERVISOR", 2)
    calls: list[dict[str, Any]] = []

    def child_fork() -> int:
        return 0  # run the child's branch, which the stand-in below returns from

    def shared(tasks: list[SharedTask], homes: dict[str, str] | None,
               inherited: list[int], started: int | None, after: int | None) -> None:
        if homes is not None:  # (else the stand-in for run_forked below returned)
            calls.append({"tasks": [t.spec.sandbox[-1] for t in tasks], "after": after})

    def own(spec: SupervisorSpec, prepare: Any, finish: Any, inherited: list[int],
            started: int | None, after: int | None) -> None:
        calls.append({"tasks": [spec.sandbox[-1]], "after": after})

    monkeypatch.setattr(launcher.os, "fork", child_fork)
    monkeypatch.setattr(launcher, "run_forked", own)
    monkeypatch.setattr(launcher, "run_shared_forked", shared)
    turns = Turns()
    try:
        _launch_batch(theirs, FakeIsolator(home=True),
                      [request(tmp_path, n, "true") for n in "abcde"], {}, [], turns)
        first = list(turns.fds())
        _launch_batch(theirs, FakeIsolator(home=True),
                      [request(tmp_path, n, "true") for n in "fg"], {}, [], turns)
        assert [c["tasks"] for c in calls] == [["a", "b"], ["c", "d"], ["e"], ["f", "g"]]
        # (e, a run of one, had a supervisor of its own.)
        assert calls[0]["after"] is None
        assert [c["after"] for c in calls[1:]] == first
    finally:
        for fd in turns.fds():
            os.close(fd)


def test_a_burst_starts_in_the_order_it_came_across_supervisors(tmp_path: Path) -> None:
    """Every task of a burst, whichever supervisor it has (shared, or its own for a
    task with a disk limit), starts after the one that came before it."""
    names = [f"t{i:03d}" for i in range(150)]
    watched = {"t005", "t070", "t071", "t140"}
    got = run_burst([request(tmp_path, n, "true", disk_limit=1 << 30 if n in watched
                             else None) for n in names], "posix")
    assert not [r for r in got if "error" in r]
    starts = []
    supervisors = set()
    for n in names:
        supervising, started, _ = load_events(tmp_path / "events" / n)
        assert isinstance(supervising, Supervising) and isinstance(started, Started)
        supervisors.add(supervising.pid)
        starts.append(started.time)
    assert len(supervisors) >= 3  # several batches, several supervisors
    assert starts == sorted(starts)
