"""The simulator's world: clock, seeded randomness, trace, ledger and network.

Theory of operation
-------------------
Everything the simulated processes share lives in one :class:`World`: the simulated
clock (``now``), the seeded random source, the fake ZooKeeper, a global id counter
(every core gets ``world.new_id``, so ids are deterministic), the bounded trace and
the :class:`Ledger` (the simulator's own history of what ran and what schedulers were
told; invariants judge the system from it, never from the system's counters).

The network models ZeroMQ, not a generic lossy datagram service. A client (agent or
framework) holds a :class:`ClientConn`, standing for its DEALER socket with one
routing identity; each identity is one :class:`Conn` to one master address. On one
connection messages are ordered and never duplicated (each gets a random latency, but
never overtakes the message before it). Faults happen only where ZeroMQ allows them:

* a connection break loses whatever was in flight on it, both ways (ZeroMQ then
  reconnects transparently with the same identity);
* a client that reconnects (new socket, new identity) loses everything still queued
  towards it; what it had already sent on the old socket may still arrive, possibly
  after what it sends on the new one (the only reordering ZeroMQ allows), or be lost;
* a master that dies loses what reached its socket but was not yet read; messages
  still queued in DEALERs wait, and reach whoever binds that address next (a master
  restarted there) -- or are lost when the client gives up and reconnects;
* a partition holds a client's outgoing messages (DEALERs queue while disconnected)
  and drops what the master sends to it meanwhile (a ROUTER drops messages for
  disconnected peers).

Duplication is never produced by the network: ZeroMQ cannot duplicate. Duplicates
come from the cores' own retries (status updates, accepts and kills re-sent after
re-subscription, registrations), which is exactly what the invariants must survive.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kazoo.exceptions import KazooException, NoNodeError

from mesos_zmq.detector import LEADER_NODE, leader_info_or_none
from mesos_zmq.errors import ProtocolError
from mesos_zmq.protocol import Envelope, Refused, decode_frame
from mesos_zmq.testing.fakezk import FakeKazooClient, FakeZooKeeper

#: messages a DEALER queues towards an absent master before it drops (ZeroMQ's HWM)
HWM = 1000
#: ZooKeeper path of the simulated cluster
CLUSTER_PATH = "/mesos-sim"


class Violation(Exception):
    """An invariant failed; ``name`` says which."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


TraceEntry = tuple[float, str, Any, Any]  # (time, who, what, detail); str() of each


class Lazy:
    """A trace detail formatted only when the trace is printed: ``fn(*args)``.

    Most of a run's trace is never read (a passing seed keeps only its last events, and
    prints none), so describing every message as it passes would be wasted work. The
    arguments must not change afterwards (messages are frozen records).
    """

    __slots__ = ("args", "fn")

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn = fn
        self.args = args

    def __str__(self) -> str:
        return str(self.fn(*self.args))


@dataclass(slots=True)
class World:
    seed: int
    rng: random.Random
    zk: FakeZooKeeper
    now: float = 0.0
    counter: int = 0
    trace: deque[TraceEntry] = field(default_factory=deque)
    net: Network | None = None

    def new_id(self) -> str:
        self.counter += 1
        return f"{self.counter:012x}"

    def log(self, who: str, what: str | Lazy, detail: Any = "") -> None:
        self.trace.append((self.now, who, what, detail))

    def client(self, timeout: float) -> FakeKazooClient:
        client = FakeKazooClient(self.zk, timeout)
        client.start()
        return client

    @property
    def network(self) -> Network:
        assert self.net is not None
        return self.net


@dataclass(slots=True)
class Conn:
    """One DEALER identity connected to one master address."""

    identity: bytes
    owner: str
    address: str
    open: bool = True
    #: (deliver at, frame) client -> master and master -> client, each FIFO
    up: deque[tuple[float, bytes]] = field(default_factory=deque)
    down: deque[tuple[float, bytes]] = field(default_factory=deque)
    partitioned_until: float = 0.0


class Network:
    """Connections between clients and master addresses; see the module docstring."""

    def __init__(self, world: World, latency: tuple[float, float] = (0.0, 0.2)) -> None:
        self.world = world
        self.latency = latency
        self.conns: dict[bytes, Conn] = {}
        #: address -> the master process bound there (a serving leader)
        self.bound: dict[str, Any] = {}
        self._serial = 0

    def _delay(self, queue: deque[tuple[float, bytes]], floor: float = 0.0) -> float:
        lo, hi = self.latency
        at = max(self.world.now + self.world.rng.uniform(lo, hi), floor)
        if queue:
            at = max(at, queue[-1][0])  # FIFO on one connection
        return at

    def connect(self, owner: str, address: str) -> Conn:
        self._serial += 1
        conn = Conn(f"{owner}#{self._serial}".encode(), owner, address)
        self.conns[conn.identity] = conn
        return conn

    def close(self, conn: Conn) -> None:
        """The client closed its socket: replies to it are gone, its sent ones may land."""
        conn.open = False
        conn.down.clear()
        if not conn.up or self.world.rng.random() < 0.5:
            conn.up.clear()
            self.conns.pop(conn.identity, None)

    def client_send(self, conn: Conn, frame: bytes) -> None:
        if len(conn.up) >= HWM:
            return
        conn.up.append((self._delay(conn.up, conn.partitioned_until), frame))

    def master_send(self, identity: bytes, frame: bytes) -> None:
        conn = self.conns.get(identity)
        if conn is None or not conn.open or conn.partitioned_until > self.world.now:
            return  # ROUTER drops messages for peers it does not know or cannot reach
        conn.down.append((self._delay(conn.down), frame))

    def master_receive(self, address: str) -> list[tuple[bytes, bytes]]:
        """Frames that reached ``address`` by now, merged across connections by time."""
        now = self.world.now
        ready: list[tuple[float, int, bytes, bytes]] = []
        for conn in list(self.conns.values()):
            if conn.address != address:
                continue
            while conn.up and conn.up[0][0] <= now:
                at, frame = conn.up.popleft()
                ready.append((at, len(ready), conn.identity, frame))
            if not conn.open and not conn.up:
                self.conns.pop(conn.identity, None)
        ready.sort()
        return [(identity, frame) for _, _, identity, frame in ready]

    def client_receive(self, conn: Conn) -> list[bytes]:
        now = self.world.now
        out: list[bytes] = []
        while conn.down and conn.down[0][0] <= now:
            out.append(conn.down.popleft()[1])
        return out

    # ----------------------------------------------------------------- faults
    def master_died(self, address: str) -> None:
        """What reached the dead master's socket is lost; queued DEALER messages wait."""
        for conn in self.conns.values():
            if conn.address == address:
                while conn.up and conn.up[0][0] <= self.world.now:
                    conn.up.popleft()

    def break_conn(self, conn: Conn) -> int:
        """A TCP connection break: in-flight messages both ways are lost."""
        lost = len(conn.up) + len(conn.down)
        conn.up.clear()
        conn.down.clear()
        return lost

    def partition(self, conn: Conn, until: float) -> None:
        conn.partitioned_until = until
        conn.down.clear()

    def open_conns(self) -> list[Conn]:
        return [c for c in self.conns.values() if c.open]


class ClientConn:
    """A client's DEALER (like :class:`mesos_zmq.transport.ClientSocket`)."""

    def __init__(self, world: World, owner: str, address: str) -> None:
        self.world = world
        self.owner = owner
        self.address = address
        self.conn = world.network.connect(owner, address)
        #: the highest master epoch heard; anything lower is a deposed leader
        self.max_epoch = 0
        self.ignored_stale = 0

    def reconnect(self, address: str | None = None) -> None:
        self.world.network.close(self.conn)
        if address is not None:
            self.address = address
        self.conn = self.world.network.connect(self.owner, self.address)

    def send(self, frame: bytes) -> None:
        self.world.network.client_send(self.conn, frame)

    def receive_all(self) -> Iterator[Envelope]:
        for frame in self.world.network.client_receive(self.conn):
            try:
                items = decode_frame(frame)
            except ProtocolError as exc:
                self.world.log(self.owner, "undecodable frame", exc.code)
                continue
            for envelope in items:  # a batch's messages in order, as ClientSocket does
                if isinstance(envelope, Refused):
                    self.world.log(self.owner, "undecodable message", envelope.error.code)
                    continue
                if envelope.epoch:
                    if envelope.epoch < self.max_epoch:
                        self.ignored_stale += 1
                        self.world.log(self.owner, "ignored stale epoch", envelope.epoch)
                        continue
                    self.max_epoch = envelope.epoch
                yield envelope

    def close(self) -> None:
        self.world.network.close(self.conn)


class SimDetector:
    """The leader record as :class:`mesos_zmq.detector.LeaderDetector` reads it.

    Reads ``<path>/leader`` with a watch (or an exists-watch while it is absent) and
    again on every (re)connection; ``changed()`` is edge-triggered like the real one.
    """

    def __init__(self, client: FakeKazooClient, path: str = CLUSTER_PATH) -> None:
        self.client = client
        self.path = f"{path}/{LEADER_NODE}"
        self.info: dict[str, Any] | None = None
        self._version = 0
        self._seen_version = 0
        client.add_listener(self._on_state)
        self.refresh()

    def _on_state(self, state: str) -> None:
        if state == "CONNECTED":
            self.client.handler.spawn(self.refresh)

    def _on_watch(self, _event: Any) -> None:
        self.client.handler.spawn(self.refresh)

    def refresh(self) -> None:
        data: bytes | None
        try:
            try:
                data, _ = self.client.get_async(self.path, watch=self._on_watch).get()
            except NoNodeError:
                if self.client.exists_async(self.path, watch=self._on_watch).get():
                    self.client.handler.spawn(self.refresh)
                    return
                data = None
        except KazooException:
            return
        info = leader_info_or_none(data)
        if info != self.info:
            self.info = info
            self._version += 1

    def current(self) -> str | None:
        return None if self.info is None else str(self.info["address"])

    def changed(self) -> str | None:
        if self._version == self._seen_version or self.info is None:
            return None
        self._seen_version = self._version
        return str(self.info["address"])


@dataclass(slots=True)
class Ledger:
    """The simulator's own history; invariants are judged from it alone."""

    #: (framework id, task id) -> agent name, for every task any agent started
    started: dict[tuple[str, str], str] = field(default_factory=dict)
    #: agent name -> {(framework id, task id): resources text} running now
    running: dict[str, dict[tuple[str, str], str]] = field(default_factory=dict)
    #: (framework id, task id) -> (agent, resources, start, end or None)
    history: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    #: (framework id, task id) -> the terminal state the scheduler heard first
    terminal: dict[tuple[str, str], str] = field(default_factory=dict)
    #: (task id, uuid) pairs delivered to any scheduler incarnation, and their uuids
    delivered: set[tuple[str, str]] = field(default_factory=set)
    delivered_uuids: set[str] = field(default_factory=set)
    #: agents that started a task since invariant (a) last looked at them (only a start
    #: can overbook an agent, so the others need no new check)
    started_on: set[str] = field(default_factory=set)
    #: agent name -> tasks started there since the last overbooking check
    started_since_check: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def start(self, agent: str, key: tuple[str, str], resources: str, now: float) -> None:
        self.started_since_check.setdefault(agent, []).append(key)
        if key in self.started:
            raise Violation("task_started_twice",
                            f"task {key} started on {agent}, already started on "
                            f"{self.started[key]}")
        self.started[key] = agent
        self.started_on.add(agent)
        self.running.setdefault(agent, {})[key] = resources
        self.history[key] = [agent, resources, now, None]

    def end(self, agent: str, key: tuple[str, str], now: float) -> None:
        self.running.get(agent, {}).pop(key, None)
        if key in self.history:
            self.history[key][3] = now

