"""The agent's single-instance lock and its notification socket, against other users.

Before: the agent bound an abstract Unix socket named after its work dir, both to hear
supervisors and as its single-instance lock. Abstract names have no permissions: any
local user (a task's, left running across an agent restart) could bind the name while
the agent was down, and the agent then refused to start; or send it datagrams. Now the
lock is an ``flock`` on a file in the agent's 0700 ``meta/`` and the socket is a file
there too: only the agent's user can take, bind or reach either, and supervisors (which
run as that user) reach the next agent after a restart at the same path.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mesos_zmq.agent import containerizer
from mesos_zmq.agent.containerizer import Containerizer
from mesos_zmq.agent.events import Exited
from mesos_zmq.agent.isolation import Posix
from mesos_zmq.agent.supervisor import (
    SUN_PATH_MAX,
    notify_address,
    notify_send,
    notify_socket,
)
from mesos_zmq.errors import ConfigError
from mesos_zmq.protocol import TaskInfo


def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's are 0700: a test of what another
    user may reach must not be passed by that alone)."""
    path = Path(tempfile.mkdtemp(prefix="mz-notify-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def long_work_dir(base: Path) -> Path:
    """A work dir whose notification socket path does not fit a ``sockaddr_un``."""
    work = base / ("d" * 60) / ("e" * 60) / "work"
    work.parent.mkdir(parents=True)
    for parent in (work.parent, work.parent.parent):
        os.chmod(parent, 0o755)
    assert len(notify_address(str(work))) > SUN_PATH_MAX
    return work


def old_notify_address(work_dir: Path) -> bytes:
    """The abstract name the agent used to bind (and a squatter binds)."""
    digest = hashlib.sha1(os.path.abspath(work_dir).encode()).hexdigest()[:20]
    return b"\0mesos-zmq-agent-" + digest.encode()


def task(task_id: str, command: str) -> TaskInfo:
    return TaskInfo(task_id=task_id, agent_id="a1", resources="cpus:0.1;mem:32",
                    command=command)


def no_polling(c: Containerizer) -> None:
    """Make ``pending_events`` report notified tasks only (never the periodic look)."""
    c._last_poll = float("inf")


def notified(c: Containerizer, key: tuple[str, str]) -> bool:
    return key in c.pending_events(0.0)


# ----------------------------------------------------------------------- the squatter

SQUATTER = r"""
import json, os, socket, sys, time
work, old = sys.argv[1], bytes.fromhex(sys.argv[2])
meta = os.path.join(work, "meta")
seen = {"uid": os.getuid()}
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(old)
seen["old_name"] = "bound"
def attempt(what, action):
    try:
        action()
        seen[what] = "done"
    except OSError as exc:
        seen[what] = type(exc).__name__
attempt("open_lock", lambda: os.open(os.path.join(meta, "agent.lock"), os.O_RDONLY))
attempt("send", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(
    os.path.join(meta, "x").encode(), os.path.join(meta, "notify")))
attempt("bind", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind(
    os.path.join(meta, "notify")))
print(json.dumps(seen), flush=True)
time.sleep(60)
"""


def as_nobody(argv: list[str]) -> subprocess.Popen[str]:
    if os.geteuid() != 0:
        pytest.skip("running something as another user needs root")
    if shutil.which("setpriv") is None:
        pytest.skip("no setpriv")
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this host")
    return subprocess.Popen(
        ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
         *argv], stdout=subprocess.PIPE, text=True)


def test_another_user_squatting_cannot_keep_the_agent_from_starting_or_reach_it(
        open_dir: Path) -> None:
    """Before: ``ConfigError: another agent is already running`` for as long as
    ``nobody`` held the abstract name."""
    work = open_dir / "work"
    first = Containerizer(work, Posix())  # an agent ran here (meta/ made), then stopped
    first.close(wait=True)
    squatter = as_nobody([sys.executable, "-c", SQUATTER, str(work),
                          old_notify_address(work).hex()])
    try:
        assert squatter.stdout is not None
        seen = json.loads(squatter.stdout.readline())
        assert seen["uid"] != 0 and seen["old_name"] == "bound"
        c = Containerizer(work, Posix())  # the restart
        try:
            # It hears its supervisors (the agent's user) at once.
            _poke(c, b"hello")
        finally:
            c.close(wait=True)
        # The other user can neither hold the lock, nor send, nor take the socket.
        assert seen["open_lock"] == "PermissionError"
        assert seen["send"] == "PermissionError"
        assert seen["bind"] == "PermissionError"
    finally:
        squatter.kill()
        squatter.wait()
        if squatter.stdout is not None:
            squatter.stdout.close()


def _poke(c: Containerizer, data: bytes) -> None:
    """Notify ``c`` as a supervisor (the agent's user) does, and see it heard."""
    sender = notify_socket()
    assert sender is not None
    try:
        notify_send(sender, c.notify_name, data)
        until(lambda: _recv(c) == data)
    finally:
        sender.close()


def _recv(c: Containerizer) -> bytes | None:
    try:
        return c.notify.recv(4096)
    except BlockingIOError:
        return None


# ----------------------------------------------------------------------- the lock

def test_a_second_agent_on_the_same_work_dir_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    c = Containerizer(work, Posix())
    try:
        with pytest.raises(ConfigError, match=re.escape(
                f"another agent is already running with --work-dir {work}")):
            Containerizer(work, Posix())
        # From another process too (the lock is the kernel's, not this process's).
        code = ("import sys; from pathlib import Path\n"
                "from mesos_zmq.agent.containerizer import Containerizer\n"
                "from mesos_zmq.agent.isolation import Posix\n"
                "from mesos_zmq.errors import ConfigError\n"
                "try:\n    Containerizer(Path(sys.argv[1]), Posix())\n"
                "except ConfigError as exc:\n    print(exc); sys.exit(3)\n")
        other = subprocess.run([sys.executable, "-c", code, str(work)], capture_output=True,
                               text=True, timeout=30)
        assert other.returncode == 3, other.stderr
        assert "another agent is already running" in other.stdout
        # The refused one left the running agent's socket alone.
        _poke(c, b"still here")
    finally:
        c.close(wait=True)
    # Once the first has stopped, the next one starts.
    Containerizer(work, Posix()).close(wait=True)


def test_the_lock_and_the_socket_are_the_agents_alone(tmp_path: Path) -> None:
    work = tmp_path / "work"
    c = Containerizer(work, Posix())
    try:
        meta = work / "meta"
        assert (meta.stat().st_mode & 0o777) == 0o700
        assert (os.stat(meta / "agent.lock").st_mode & 0o777) == 0o600
        assert (os.stat(meta / "notify").st_mode & 0o777) == 0o600
    finally:
        c.close(wait=True)
    assert not (work / "meta" / "notify").exists()  # a stopped agent leaves no socket


def test_the_container_id_prefix_is_what_it_was(tmp_path: Path) -> None:
    """Orphans of containers started before an upgrade are found by this prefix."""
    work = tmp_path / "work"
    c = Containerizer(work, Posix())
    c.close(wait=True)
    assert c.prefix == old_notify_address(work)[-12:].decode()
    again = Containerizer(work, Posix())
    again.close(wait=True)
    assert again.prefix == c.prefix


# ----------------------------------------------------------------------- notifications

@pytest.mark.parametrize("long_path", [False, True], ids=["short", "long-work-dir"])
def test_supervisors_notify_the_agent_and_the_next_one_after_a_restart(
        open_dir: Path, long_path: bool) -> None:
    """A supervisor's events are heard without the periodic look, also by an agent
    started after the one that launched it (the supervisor outlived it), on a work dir
    whose socket path is too long for a ``sockaddr_un``."""
    work = long_work_dir(open_dir) if long_path else open_dir / "work"
    trigger = open_dir / "go"
    c = Containerizer(work, Posix())
    try:
        no_polling(c)
        first = c.launch("a1", "F1", task("t1", "true"))
        until(lambda: notified(c, first.key))
        second = c.launch("a1", "F1", task("t2", f"while [ ! -e {trigger} ]; do sleep 0.02;"
                                                 " done"))
        until(lambda: notified(c, second.key))  # started
        assert c.new_events(second.key)
    finally:
        c.close(wait=True)  # the agent stops; the supervisor and its task run on
    restarted = Containerizer(work, Posix())
    try:
        restarted.recover()
        no_polling(restarted)
        for event in restarted.new_events(second.key):
            restarted.consumed(second.key, event)
        assert not notified(restarted, second.key)
        trigger.touch()
        until(lambda: notified(restarted, second.key))
        assert isinstance(restarted.new_events(second.key)[-1], Exited)
    finally:
        restarted.close(wait=True)


def test_a_burst_of_notifications_is_read_a_batch_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's loop reads a bounded number per turn (the rest the next turn), so
    senders that keep the queue full cannot hold the loop in its reads."""
    monkeypatch.setattr(containerizer, "NOTIFY_BATCH", 3)
    c = Containerizer(tmp_path / "work", Posix())
    try:
        sender = notify_socket()
        assert sender is not None
        for _ in range(8):  # the kernel queues 10 at least (net.unix.max_dgram_qlen)
            notify_send(sender, c.notify_name, b"x")
        sender.close()
        assert c.pending_events(0.0) == []
        left = 0
        while _recv(c) is not None:
            left += 1
        assert left == 5
    finally:
        c.close(wait=True)
