"""Real-process test clusters: masters and agents as separate OS processes.

Each process is started with ``python -m mesos_zmq`` on a free loopback port in a
temporary directory, and stopped by its PID only. Logs go to files in the cluster
directory and are printed when a test fails (see conftest).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mesos_zmq.cli.client import MasterUnreachable, RequestRefused, request
from mesos_zmq.cli.local import LocalCluster
from mesos_zmq.protocol import GetState, State

FAST = ["--heartbeat-interval", "0.2", "--missed-heartbeats", "5"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (MasterUnreachable, RequestRefused) as exc:
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} ({last_error})")


class Proc:
    def __init__(self, name: str, args: list[str], log_path: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(self.env or {}))
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "mesos_zmq", *self.args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=full_env,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def pause(self) -> None:
        """SIGSTOP: the process freezes (a long GC or swap stall) but keeps its sockets."""
        self.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self.send_signal(signal.SIGCONT)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            os.kill(self.pid, sig)
            # A paused process would hold the signal until the timeout: wake it up.
            os.kill(self.pid, signal.SIGCONT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
        return self.popen.returncode


class Cluster:
    """A master and agents on loopback, each a real process."""

    def __init__(self, root: Path, master_args: list[str] | None = None,
                 secure: bool = False) -> None:
        """``secure``: keys for the master, one agent principal, one framework and one
        operator in ``root/keys`` (as ``mesos-zmq local`` makes them)."""
        self.root = root
        self.port = free_port()
        self.master_url = f"tcp://127.0.0.1:{self.port}"
        self.master_args = master_args or []
        self.keys: LocalCluster | None = None
        self.agent_args: list[str] = []
        if secure:
            self.keys = LocalCluster(root, 0, self.port, "")
            self.keys._make_keys()
            kd = self.keys.keys_dir
            self.master_args += ["--key", str(kd / "master.key_secret"),
                                 "--credentials", str(kd / "credentials.json")]
            self.agent_args = ["--key", str(kd / "agent.key_secret"),
                               "--master-key", str(kd / "master.key")]
        self.master: Proc | None = None
        self.agents: list[Proc] = []
        self.procs: list[Proc] = []

    def start_master(self) -> Proc:
        args = ["master", "--port", str(self.port), "--work-dir", str(self.root / "master"),
                "--log-format", "json", "--log-level", "info", *FAST, *self.master_args]
        proc = Proc("master", args, self.root / "master.log").start()
        self.master = proc
        self.procs.append(proc)
        wait_until(lambda: self.state(timeout=0.5), what="master to answer")
        return proc

    def start_agent(self, resources: str = "cpus:4;mem:4096;disk:1024;ports:[31000-31099]",
                    attributes: str = "", index: int | None = None,
                    extra: list[str] | None = None) -> Proc:
        i = len(self.agents) if index is None else index
        args = ["agent", "--master", self.master_url, "--work-dir", str(self.root / f"agent{i}"),
                "--resources", resources, "--hostname", f"agent{i}",
                "--log-format", "json", "--log-level", "info"]
        if attributes:
            args += ["--attributes", attributes]
        args += [*self.agent_args, *(extra or [])]
        proc = Proc(f"agent{i}", args, self.root / f"agent{i}.log").start()
        if index is None:
            self.agents.append(proc)
        self.procs.append(proc)
        return proc

    def state(self, timeout: float = 3.0) -> dict[str, Any]:
        keys = None if self.keys is None else self.keys.client_keys("operator")
        reply = request(self.master_url, GetState(), timeout=timeout, keys=keys)
        assert isinstance(reply, State)
        return reply.state

    def wait_agents(self, count: int, timeout: float = 15.0) -> None:
        wait_until(
            lambda: sum(1 for a in self.state()["agents"] if a["connected"]) >= count,
            timeout, what=f"{count} connected agents",
        )

    def cli(self, *args: str, timeout: float = 60.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run the CLI; ``env`` is added to this process's environment (a secure
        cluster's ``client_env(name)``, say)."""
        return subprocess.run(
            [sys.executable, "-m", "mesos_zmq", *args], capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
            env=None if env is None else {**os.environ, **env},
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(signal.SIGINT if proc.name.startswith("agent") else signal.SIGTERM)

    def logs(self) -> str:
        out = []
        for path in sorted(self.root.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-60:]
            out.append(f"----- {path.name}\n" + "\n".join(text))
        return "\n".join(out)


class SupervisedMasters:
    """Replicated masters, restarted after they exit (like systemd's Restart=always).

    ``extra_args`` go to every master (e.g. ``--snapshot-every 500``). Restarts are
    counted per port so that a chaos run can check that restarted masters rejoined.
    """

    def __init__(self, cluster: Cluster, zk_url: str, count: int, session: float,
                 extra_args: list[str] | None = None) -> None:
        self.cluster = cluster
        self.zk_url = zk_url
        self.session = session
        self.extra_args = list(extra_args or [])
        self.ports = [free_port() for _ in range(count)]
        self.procs: dict[int, Proc] = {}
        self.restarts: dict[int, int] = {port: 0 for port in self.ports}
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        for port in self.ports:
            self._start(port)
        threading.Thread(target=self._supervise, daemon=True).start()

    def _start(self, port: int) -> None:
        args = ["master", "--port", str(port), "--zk", self.zk_url,
                "--zk-session-timeout", str(self.session), "--allocation-interval", "0.1",
                "--work-dir", str(self.cluster.root / f"m{port}"), "--log-format", "json",
                "--log-level", "info", *FAST, *self.extra_args]
        proc = Proc(f"master-{port}", args, self.cluster.root / f"master-{port}.log").start()
        self.procs[port] = proc
        self.cluster.procs.append(proc)

    def _supervise(self) -> None:
        while not self.stopping.is_set():
            for port, proc in list(self.procs.items()):
                if not proc.alive():
                    time.sleep(0.5)
                    with self._lock:
                        if not self.stopping.is_set() and not self.procs[port].alive():
                            self._start(port)
                            self.restarts[port] += 1
            time.sleep(0.2)

    def by_address(self, address: str) -> Proc | None:
        port = int(address.rsplit(":", 1)[1])
        return self.procs.get(port)

    def port_of(self, address: str) -> int:
        return int(address.rsplit(":", 1)[1])

    def alive_count(self) -> int:
        return sum(1 for proc in self.procs.values() if proc.alive())

    def stop_supervising(self) -> None:
        """No more restarts (the processes themselves stop with the cluster)."""
        with self._lock:
            self.stopping.set()
