"""``mesos-zmq local``: a master and agents as child processes of one command.

Children run in their own sessions so that this process alone decides when they stop:
on exit it sends SIGINT (agents then kill their tasks) and waits, escalating to SIGKILL
for any child that does not stop in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mesos_zmq.cli.client import MasterUnreachable, RequestRefused, request
from mesos_zmq.errors import MesosZmqError
from mesos_zmq.protocol import GetState, State


class LocalCluster:
    def __init__(self, root: Path, agents: int, port: int, resources: str,
                 log_format: str = "auto", log_level: str = "warning") -> None:
        self.root = root
        self.agent_count = agents
        self.port = port
        self.resources = resources
        self.log_format = log_format
        self.log_level = log_level
        self.master = f"tcp://127.0.0.1:{port}"
        self.children: list[subprocess.Popen[bytes]] = []

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "mesos_zmq", *args,
               "--log-format", self.log_format, "--log-level", self.log_level]
        proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL)
        self.children.append(proc)
        return proc

    def start(self, timeout: float = 20.0) -> None:
        master = self._spawn(["master", "--port", str(self.port),
                              "--work-dir", str(self.root / "master")])
        deadline = time.monotonic() + timeout
        self._wait_for(lambda s: True, deadline, master)
        for i in range(self.agent_count):
            self._spawn(["agent", "--master", self.master,
                         "--work-dir", str(self.root / f"agent-{i}"),
                         "--resources", self.resources, "--hostname", f"local-agent-{i}"])
        self._wait_for(
            lambda s: sum(1 for a in s["agents"] if a["connected"]) >= self.agent_count,
            deadline, master,
        )

    def _wait_for(self, ready: object, deadline: float, master: subprocess.Popen[bytes]) -> None:
        check = ready if callable(ready) else None
        while time.monotonic() < deadline:
            if master.poll() is not None:
                raise MesosZmqError(
                    f"the master exited with status {master.returncode} "
                    f"(is port {self.port} already in use? try --port)"
                )
            try:
                reply = request(self.master, GetState(), timeout=1.0)
            except (MasterUnreachable, RequestRefused):
                time.sleep(0.1)
                continue
            if isinstance(reply, State) and check is not None and check(reply.state):
                return
            time.sleep(0.1)
        raise MesosZmqError("the local cluster did not come up in time")

    def wait(self) -> None:
        """Block until a child dies or we are interrupted."""
        while all(p.poll() is None for p in self.children):
            time.sleep(0.5)
        raise MesosZmqError("a cluster process exited unexpectedly")

    def stop(self, grace: float = 8.0) -> None:
        # Agents first (they kill their tasks), then the master.
        for proc in reversed(self.children):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + grace
        for proc in reversed(self.children):
            left = max(0.1, deadline - time.monotonic())
            try:
                proc.wait(left)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
