"""Real ZooKeeper servers for tests, benchmarks and chaos runs (never a system service).

Starts Debian's ZooKeeper (``/usr/share/java/zookeeper.jar``, Java on PATH) as child
processes on loopback, each with its own temporary directory, random ports and short
tick times, and stops them by PID. An :class:`Ensemble` of three lets tests kill a
member or two. If ZooKeeper or Java is missing, :class:`ZooKeeperUnavailable` says how
to install it: tests that need ZooKeeper fail loudly rather than skip.

The tick is short (:data:`TICK_MS`) because ZooKeeper expires sessions in tick-sized
buckets: a session of timeout T whose client went silent at t expires at the first
tick boundary after t + T, and in an ensemble the leader hears of a follower's session
activity only on its pings (every half tick). With a 200 ms tick that adds up to
300 ms to every SIGKILL failover on top of the 1 s session; with 50 ms, at most 75 ms.
The quorum's own limits (initLimit, syncLimit) are counted in ticks, so they are
derived from fixed durations and do not shrink with the tick.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from mesos_zmq.errors import MesosZmqError

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
CONF_DIR = Path("/etc/zookeeper/conf")
#: tick of the test servers (ms): the granularity of session expiry, see above
TICK_MS = 50
#: how long a follower may take to connect and sync to the leader (initLimit)
INIT_LIMIT_MS = 2000
#: how far a follower may fall behind the leader before it is dropped (syncLimit)
SYNC_LIMIT_MS = 1000
#: the shortest session the servers grant (the tests use about 1 s)
MIN_SESSION_MS = 400
#: heap of each test server, and how many recent transactions it keeps in memory
HEAP_MB = 768
COMMIT_LOG_COUNT = 100


class ZooKeeperUnavailable(MesosZmqError):
    """ZooKeeper cannot be started here."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def four_letter(port: int, word: str, timeout: float = 1.0) -> str:
    """Send a ZooKeeper four-letter command (``ruok``, ``srvr``...) and return the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(word.encode())
        chunks = []
        while True:
            data = conn.recv(4096)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def _java() -> str:
    java = shutil.which("java")
    if java is None or not ZOOKEEPER_JAR.exists():
        raise ZooKeeperUnavailable(
            "ZooKeeper needs Java and Debian's zookeeper package: "
            "apt-get install -y zookeeper (tools/test.sh does this)"
        )
    return java


class ZooKeeperServer:
    """One ZooKeeper server process (standalone, or a member of an ensemble)."""

    def __init__(self, root: Path, myid: int = 1, tick_ms: int = TICK_MS,
                 client_port: int | None = None) -> None:
        self.root = root
        self.myid = myid
        self.tick_ms = tick_ms
        self.client_port = client_port or free_port()
        self.quorum_port = free_port()
        self.election_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.peers: list[ZooKeeperServer] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def _write_config(self) -> Path:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = [
            f"tickTime={self.tick_ms}",
            f"initLimit={max(2, -(-INIT_LIMIT_MS // self.tick_ms))}",
            f"syncLimit={max(2, -(-SYNC_LIMIT_MS // self.tick_ms))}",
            f"dataDir={data}",
            f"clientPort={self.client_port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            # Short sessions are the point of the tests (about 1 s): allow them.
            f"minSessionTimeout={max(2 * self.tick_ms, MIN_SESSION_MS)}",
            "maxSessionTimeout=60000",
            "forceSync=yes",
        ]
        if self.peers:
            (data / "myid").write_text(f"{self.myid}\n")
            for peer in self.peers:
                lines.append(
                    f"server.{peer.myid}=127.0.0.1:{peer.quorum_port}:{peer.election_port}"
                )
        config = self.root / "zoo.cfg"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self) -> ZooKeeperServer:
        java = _java()
        self.root.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            # ZooKeeper keeps its last commitLogCount transactions in memory; with
            # the log's 512 KB znodes the default 500 alone fills 256 MB (it died of
            # OutOfMemoryError under load). Bound both, as deploy/README.md advises.
            [java, f"-Xmx{HEAP_MB}m", f"-Dzookeeper.commitLogCount={COMMIT_LOG_COUNT}",
             f"-Dzookeeper.log.dir={self.root}",
             "-cp", f"{CONF_DIR}:{ZOOKEEPER_JAR}",
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    def serving(self) -> bool:
        """True when the server answers and (in an ensemble) has joined a quorum."""
        try:
            return "Mode:" in four_letter(self.client_port, "srvr")
        except OSError:
            return False

    def wait_serving(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = (self.root / "server.log").read_text(errors="replace")[-2000:]
                raise ZooKeeperUnavailable(f"ZooKeeper exited early:\n{tail}")
            if self.serving():
                return
            time.sleep(0.05)
        raise ZooKeeperUnavailable(f"ZooKeeper on port {self.client_port} did not start")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class Ensemble:
    """``size`` servers forming one ZooKeeper cluster on loopback."""

    def __init__(self, root: Path, size: int = 3, tick_ms: int = TICK_MS,
                 first_port: int | None = None) -> None:
        """``first_port``: client ports first_port, first_port + 1, ... (default: free
        ports picked at random, which tests want; a person typing commands wants fixed
        ones)."""
        self.servers = [
            ZooKeeperServer(root / f"zk{i + 1}", myid=i + 1, tick_ms=tick_ms,
                            client_port=None if first_port is None else first_port + i)
            for i in range(size)]
        if size > 1:
            for server in self.servers:
                server.peers = self.servers

    @property
    def hosts(self) -> str:
        """Connection string for kazoo (``127.0.0.1:p1,127.0.0.1:p2,...``)."""
        return ",".join(s.address for s in self.servers)

    def start(self, timeout: float = 60.0) -> Ensemble:
        for server in self.servers:
            server.start()
        for server in self.servers:
            server.wait_serving(timeout)
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
