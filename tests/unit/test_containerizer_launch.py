"""The containerizer's side of launching: cgroups released once (by the launcher that
reaped the supervisor, or by the agent when no launcher will), and requests held back
while the launcher's socket is full."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mesos_zmq.agent.containerizer import Containerizer
from mesos_zmq.agent.events import Exited
from mesos_zmq.agent.isolation import Posix
from mesos_zmq.protocol import TaskInfo


class Recording(Posix):
    """Posix isolation that remembers which containers the agent destroyed."""

    def __init__(self) -> None:
        super().__init__()
        self.destroyed: list[str] = []

    def destroy(self, container_id: str) -> None:
        self.destroyed.append(container_id)
        super().destroy(container_id)


@pytest.fixture
def containerizer(tmp_path: Path) -> Iterator[Containerizer]:
    c = Containerizer(tmp_path / "work", Recording())
    yield c
    c.close(wait=True)


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def task(task_id: str, command: str = "true") -> TaskInfo:
    return TaskInfo(task_id=task_id, agent_id="a1", resources="cpus:0.1;mem:32",
                    command=command)


def test_the_launcher_alone_releases_what_its_supervisors_leave(
        containerizer: Containerizer) -> None:
    """Before: a supervisor reaped by the launcher counted as not forked here, and the
    agent destroyed its cgroups on its loop, as the launcher did too."""
    c = containerizer
    iso = c.isolator
    assert isinstance(iso, Recording)
    container = c.launch("a1", "F1", task("t1"))
    until(lambda: bool(c.lost_supervisors(time.monotonic())))  # reaped by the launcher
    assert isinstance(c.new_events(container.key)[-1], Exited)
    c.destroy(container.key)
    assert iso.destroyed == []
    # A launcher that died takes its list of cgroups to release with it: the agent
    # releases those of its supervisors itself.
    other = c.launch("a1", "F1", task("t2", "sleep 30"))
    until(lambda: c.launcher_replies() is None and other.supervisor_pid is not None)
    c.launcher.kill()
    c.launcher.wait()
    # Notices (once the supervisor just forked has closed its copy of the launcher's
    # socket, which it does first thing), and starts a new one.
    until(lambda: c.launcher_replies() is None and c.launcher.poll() is None)
    c.signal(other.key, signal.SIGKILL)
    c.destroy(other.key)
    assert iso.destroyed == [other.container_id]


def test_requests_wait_while_the_launcher_has_no_room(containerizer: Containerizer) -> None:
    c = containerizer
    assert c.can_request()
    os.kill(c.launcher.pid, signal.SIGSTOP)
    try:
        sent = 0
        with contextlib.suppress(BlockingIOError):
            while True:
                c.launcher_sock.send(b"{}" + b" " * 4000)
                sent += 1
        assert sent > 8 and not c.can_request()
    finally:
        os.kill(c.launcher.pid, signal.SIGCONT)
    until(c.can_request)  # it refuses what it read (no task named) and has room again


class FakeContainerizer:
    """Takes launches while it has room (``room`` requests), recording their order."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.launched: list[str] = []

    def can_request(self) -> bool:
        return self.room > 0

    def launch(self, agent_id: str, framework_id: str, task: TaskInfo) -> None:
        self.room -= 1
        self.launched.append(task.task_id)


class FakeCore:
    agent_id = "a1"

    def is_terminal(self, key: tuple[str, str]) -> bool:
        return key[1] == "killed"


def test_the_agent_keeps_launches_in_order_while_the_launcher_has_no_room() -> None:
    from collections import deque

    from mesos_zmq.agent.server import LAUNCH_BATCH, AgentServer

    ids = ["t0", "killed", *(f"t{i}" for i in range(1, 40))]
    containerizer = FakeContainerizer(room=3)
    server: Any = SimpleNamespace(
        _launch_queue=deque(("F1", task(i)) for i in ids), containerizer=containerizer,
        core=FakeCore(), _queued={("F1", i) for i in ids})
    AgentServer._launch_some(server)
    assert containerizer.launched == ["t0", "t1", "t2"]  # a killed task is never started
    assert [t.task_id for _, t in server._launch_queue] == ids[4:]
    AgentServer._launch_some(server)  # still no room: nothing taken, nothing lost
    assert len(server._launch_queue) == len(ids) - 4
    containerizer.room = 100
    AgentServer._launch_some(server)
    AgentServer._launch_some(server)
    assert containerizer.launched == [i for i in ids if i != "killed"][:3 + 2 * LAUNCH_BATCH]
