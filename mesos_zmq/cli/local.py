"""``mesos-zmq local``: a master and agents as child processes of one command.

Children run in their own sessions so that this process alone decides when they stop:
on exit it sends SIGINT (agents then kill their tasks) and waits, escalating to SIGKILL
for any child that does not stop in time. SIGTERM and SIGHUP stop ``local`` the way
Ctrl-C does (see :class:`StopSignals`), so a supervisor or ``kill`` leaves nothing
behind either.

The cluster is secure by default: ``local`` writes a master key pair and one key pair
each for its agents, its framework and an operator into ``<root>/keys`` with a
credentials file naming them, so the master speaks CurveZMQ and takes no stranger even
on loopback (``--insecure`` leaves keys out).

The cluster must be its own: the port must be free before the master starts, and
the master that answers on it must be the child this process started (its pid, from
``state``), otherwise agents and the task would join someone else's cluster.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from mesos_zmq.auth.credentials import credentials_json
from mesos_zmq.auth.keys import ClientKeys, generate, load_public, load_secret
from mesos_zmq.cli.client import MasterUnreachable, RequestRefused, request
from mesos_zmq.errors import MesosZmqError
from mesos_zmq.protocol import GetState, State

#: signals that stop ``local`` (Ctrl-C, kill, a closed terminal)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PortInUse(MesosZmqError):
    """The master port is taken (by another master, most likely)."""


class ClusterFailed(MesosZmqError):
    """A process of the local cluster exited, or the cluster did not come up."""


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` says which (exit code 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code_of(exc: KeyboardInterrupt) -> int:
    """128 + the signal number, as a shell reports a process killed by it (130: Ctrl-C)."""
    return 128 + (exc.signum if isinstance(exc, Interrupted) else signal.SIGINT)


class StopSignals:
    """While entered, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted`.

    Inside :meth:`shield` they are ignored: a second Ctrl-C or a repeated SIGTERM does
    not cut the teardown short and leave processes or the temporary directory behind
    (children get SIGKILL after a grace period anyway).
    """

    def __init__(self) -> None:
        self.shielded = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.shielded:
            raise Interrupted(signum)

    def __enter__(self) -> StopSignals:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    @contextmanager
    def shield(self) -> Iterator[None]:
        """Stop signals are ignored inside (for the teardown)."""
        self.shielded = True
        try:
            yield
        finally:
            self.shielded = False


def port_is_free(port: int, ip: str = "127.0.0.1") -> bool:
    """Whether a listener could bind ``ip:port`` now (as ZeroMQ does, SO_REUSEADDR).

    On Linux this also fails when another process listens on the wildcard address.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def any_free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((ip, 0))
        port: int = probe.getsockname()[1]
        return port


def _port_in_use(port: int, detail: str = "") -> PortInUse:
    return PortInUse(f"port {port} is in use (another master{detail}?): use --port")


class LocalCluster:
    """A master and ``agents`` agents as child processes, in ``root``."""

    def __init__(self, root: Path, agents: int, port: int, resources: str,
                 log_format: str = "auto", log_level: str = "warning",
                 secure: bool = True) -> None:
        self.root = root
        self.secure = secure
        self.keys_dir = root / "keys"
        #: the operator's keys, for this process's own requests (None when insecure)
        self.operator_keys: ClientKeys | None = None
        self.agent_count = agents
        self.port = port or any_free_port()
        self.resources = resources
        self.log_format = log_format
        self.log_level = log_level
        self.master = f"tcp://127.0.0.1:{self.port}"
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.master_proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "mesos_zmq", *args,
               "--log-format", self.log_format, "--log-level", self.log_level]
        proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL)
        self.children.append((name, proc))
        return proc

    def start(self, timeout: float = 20.0) -> None:
        """Start the master, then the agents; return when all agents are connected.

        Raises :class:`PortInUse` when the port is taken or another master answers
        on it, :class:`ClusterFailed` when a child exits or the cluster is not up
        within ``timeout`` seconds.
        """
        if not port_is_free(self.port):
            raise _port_in_use(self.port)
        master_args = ["master", "--port", str(self.port),
                       "--work-dir", str(self.root / "master")]
        agent_keys: list[str] = []
        if self.secure:
            self._make_keys()
            master_args += ["--key", str(self.keys_dir / "master.key_secret"),
                            "--credentials", str(self.keys_dir / "credentials.json")]
            agent_keys = ["--key", str(self.keys_dir / "agent.key_secret"),
                          "--master-key", str(self.keys_dir / "master.key")]
        self.master_proc = self._spawn("master", master_args)
        deadline = time.monotonic() + timeout
        self._wait_for(lambda s: True, deadline)
        for i in range(self.agent_count):
            self._spawn(f"agent-{i}", [
                "agent", "--master", self.master,
                "--work-dir", str(self.root / f"agent-{i}"),
                "--resources", self.resources, "--hostname", f"local-agent-{i}",
                *agent_keys])
        self._wait_for(
            lambda s: sum(1 for a in s["agents"] if a["connected"]) >= self.agent_count,
            deadline,
        )

    def _make_keys(self) -> None:
        """Key pairs for the master, the agents, the framework and an operator, and the
        credentials file that names the last three (mode 0700 directory)."""
        self.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        entries = []
        for name in ("master", "agent", "framework", "operator"):
            if not (self.keys_dir / f"{name}.key_secret").exists():
                generate(name, self.keys_dir)
            if name != "master":
                public = load_public(self.keys_dir / f"{name}.key").decode()
                entries.append((name, name, public))
        (self.keys_dir / "credentials.json").write_text(credentials_json(entries))
        self.operator_keys = self.client_keys("operator")

    def client_keys(self, name: str) -> ClientKeys:
        """The keys a client of this cluster connects with (``framework``, ``operator``)."""
        return ClientKeys(load_secret(self.keys_dir / f"{name}.key_secret"),
                          load_public(self.keys_dir / "master.key"))

    def client_env(self, name: str) -> dict[str, str]:
        """MESOS_ZMQ_KEY and MESOS_ZMQ_MASTER_KEY for a client of this cluster ({} if
        insecure)."""
        if not self.secure:
            return {}
        return {"MESOS_ZMQ_KEY": str(self.keys_dir / f"{name}.key_secret"),
                "MESOS_ZMQ_MASTER_KEY": str(self.keys_dir / "master.key")}

    def _wait_for(self, ready: Callable[[dict[str, Any]], bool], deadline: float) -> None:
        """Poll our master's state until ``ready``; fail fast when a child exits or a
        master that is not ours answers."""
        while time.monotonic() < deadline:
            self._check_children()
            try:
                reply = request(self.master, GetState(), timeout=1.0,
                                keys=self.operator_keys)
            except (MasterUnreachable, RequestRefused):
                time.sleep(0.1)
                continue
            if isinstance(reply, State):
                self._check_ours(reply.state)
                if ready(reply.state):
                    return
            time.sleep(0.1)
        raise ClusterFailed(f"the local cluster did not come up within the time allowed "
                            f"(master {self.master}; the children's logs are above)")

    def _check_ours(self, state: dict[str, Any]) -> None:
        assert self.master_proc is not None
        pid = (state.get("master") or {}).get("pid")
        if pid != self.master_proc.pid:
            detail = f", pid {pid}" if isinstance(pid, int) else ""
            raise _port_in_use(self.port, detail)

    def _check_children(self) -> None:
        for name, proc in self.children:
            code = proc.poll()
            if code is None:
                continue
            if proc is self.master_proc and not port_is_free(self.port):
                raise _port_in_use(self.port)
            raise ClusterFailed(f"the {name} exited with status {code} while the cluster "
                                "started (its log is above)")

    def wait(self) -> None:
        """Block until a child dies (an error) or we are interrupted."""
        while True:
            for name, proc in self.children:
                if proc.poll() is not None:
                    raise ClusterFailed(f"the {name} exited unexpectedly with status "
                                        f"{proc.returncode}")
            time.sleep(0.5)

    def pids(self) -> list[int]:
        return [proc.pid for _, proc in self.children]

    def stop(self, grace: float = 8.0) -> None:
        """Stop the agents, then the master: SIGINT (agents kill their tasks and the
        master, still up, acknowledges the final updates, so they exit at once), then
        SIGKILL for any child still running ``grace`` seconds after its SIGINT."""
        agents = [proc for _, proc in self.children if proc is not self.master_proc]
        self._stop_all(agents, grace)
        self._stop_all([proc for _, proc in self.children if proc is self.master_proc], grace)

    @staticmethod
    def _stop_all(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
