"""An in-memory ZooKeeper with a kazoo-compatible client, driven by a simulated clock.

Theory of operation
-------------------
:class:`FakeZooKeeper` is the ensemble: one tree of znodes, one zxid counter, the
sessions and the watches. It owns no thread and never reads the wall clock: time is
whatever the ``clock`` callable returns (the simulator's clock), and nothing happens
between calls. :class:`FakeKazooClient` is one process's client. It offers the subset
of :class:`kazoo.client.KazooClient` that this project uses, with the same signatures,
return types and exceptions (from :mod:`kazoo.exceptions`), so the real
:class:`~mesos_zmq.master.zk_log.ZooKeeperLog` and
:class:`~mesos_zmq.master.contender.Contender` run on it unchanged.

The semantics kept from ZooKeeper, because code depends on them:

* Every znode has data and a :class:`~kazoo.protocol.states.ZnodeStat`: ``version``
  counts data changes, ``cversion`` counts child creations *and* deletions,
  ``ephemeralOwner`` is the creating session's id (0 for persistent nodes),
  ``czxid``/``mzxid``/``pzxid`` come from one global counter.
* A sequential create appends the parent's ``cversion`` (ten digits) to the name, so
  after deletions the sequence has gaps, exactly like ZooKeeper.
* Sessions: the server remembers when it last heard from each client (any call, or
  :meth:`FakeKazooClient.ping`, which stands for kazoo's background pings of a
  running process). A session not heard from for ``session_timeout`` seconds of
  simulated time expires (:meth:`FakeZooKeeper.expire_due`): its ephemeral znodes are
  deleted and its watches dropped. A process that was paused meanwhile learns it on
  its next call: its listeners see ``KazooState.LOST`` and then
  ``KazooState.CONNECTED``, and the call runs on a NEW session (kazoo reconnecting).
* Watches are one-shot. ``exists``/``get`` watches fire on creation, change and
  deletion of their node; ``get_children`` watches on child creation/deletion (and
  deletion of the node). They fire synchronously inside the mutating call when the
  server was built with ``sync_watches=True``; otherwise they are queued and run by
  :meth:`FakeZooKeeper.run_pending` (as kazoo's event thread would, later).
* A transaction (``client.transaction()``) applies all of its operations or none;
  on failure ``commit()`` returns a list in which the failing operation's slot holds
  the kazoo exception instance and every other slot a ``RolledBackError``.
* Asynchronous calls (``get_async``...) complete at once and return an object with
  ``get()``, like kazoo's ``IAsyncResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    ConnectionClosedError,
    KazooException,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
)
from kazoo.protocol.states import EventType, KazooState, KeeperState, WatchedEvent, ZnodeStat

Watch = Callable[[WatchedEvent], Any]
Listener = Callable[[str], Any]


@dataclass(slots=True)
class _Node:
    data: bytes
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    owner: int
    version: int = 0
    cversion: int = 0
    pzxid: int = 0
    children: set[str] = field(default_factory=set)
    #: ``sorted(children)``, kept until the children change (reset to None then)
    listing: list[str] | None = field(default=None, compare=False, repr=False)

    def add_child(self, name: str) -> None:
        self.children.add(name)
        self.listing = None

    def remove_child(self, name: str) -> None:
        self.children.discard(name)
        self.listing = None

    def sorted_children(self) -> list[str]:
        if self.listing is None:
            self.listing = sorted(self.children)
        return list(self.listing)

    def stat(self) -> ZnodeStat:
        return ZnodeStat(self.czxid, self.mzxid, self.ctime, self.mtime, self.version,
                         self.cversion, 0, self.owner, len(self.data), len(self.children),
                         self.pzxid)


@dataclass(slots=True)
class _Session:
    session_id: int
    timeout: float
    last_heard: float
    alive: bool = True
    ephemerals: set[str] = field(default_factory=set)


def _parent(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


def _norm(path: str) -> str:
    if not path.startswith("/"):
        raise BadArgumentsError(f"path must start with /: {path!r}")
    return "/" + path.strip("/") if path != "/" else "/"


class FakeZooKeeper:
    """The simulated ensemble: the tree, the sessions, the watches, the clock."""

    def __init__(self, clock: Callable[[], float], sync_watches: bool = False) -> None:
        self.clock = clock
        self.sync_watches = sync_watches
        self.zxid = 0
        self.nodes: dict[str, _Node] = {"/": _Node(b"", 0, 0, 0, 0, 0)}
        self.sessions: dict[int, _Session] = {}
        self._next_session = 0x1000
        #: path -> [(session id, watch)] for exists/get watches, and for children
        self._data_watches: dict[str, list[tuple[int, Watch]]] = {}
        self._child_watches: dict[str, list[tuple[int, Watch]]] = {}
        self._pending: list[Callable[[], Any]] = []
        self.expired: list[int] = []
        self._norms: dict[str, str] = {}

    def norm(self, path: str) -> str:
        """``_norm(path)``, remembered: the same few paths are asked for all the time."""
        normed = self._norms.get(path)
        if normed is None:
            normed = self._norms[path] = _norm(path)
        return normed

    # ----------------------------------------------------------------- sessions
    def open_session(self, timeout: float) -> int:
        self._next_session += 1
        sid = self._next_session
        self.sessions[sid] = _Session(sid, timeout, self.clock())
        return sid

    def heard(self, sid: int) -> bool:
        """A client spoke on session ``sid``; False if that session is gone."""
        session = self.sessions.get(sid)
        if session is None or not session.alive:
            return False
        now = self.clock()
        if now - session.last_heard > session.timeout:
            self.expire_session(sid)
            return False
        session.last_heard = now
        return True

    def expire_due(self) -> list[int]:
        """Expire every session not heard from within its timeout; returns their ids."""
        now = self.clock()
        due = [s.session_id for s in self.sessions.values()
               if s.alive and now - s.last_heard > s.timeout]
        for sid in due:
            self.expire_session(sid)
        return due

    def expire_session(self, sid: int) -> None:
        """End a session (expiry or close): its ephemerals go, its watches are dropped."""
        session = self.sessions.get(sid)
        if session is None or not session.alive:
            return
        session.alive = False
        self.expired.append(sid)
        for table in (self._data_watches, self._child_watches):
            for path in list(table):
                table[path] = [(s, w) for s, w in table[path] if s != sid]
                if not table[path]:
                    del table[path]
        events: list[tuple[Watch, WatchedEvent]] = []
        for path in sorted(session.ephemerals, reverse=True):
            if path in self.nodes:
                self._delete(path, -1, events)
        session.ephemerals.clear()
        del self.sessions[sid]
        self._deliver(events)

    def session_alive(self, sid: int) -> bool:
        session = self.sessions.get(sid)
        return session is not None and session.alive

    # ----------------------------------------------------------------- watches
    def add_watch(self, kind: str, path: str, sid: int, watch: Watch) -> None:
        table = self._data_watches if kind == "data" else self._child_watches
        table.setdefault(path, []).append((sid, watch))

    def _fire(self, table: dict[str, list[tuple[int, Watch]]], path: str,
              event_type: str, events: list[tuple[Watch, WatchedEvent]]) -> None:
        for _, watch in table.pop(path, []):
            events.append((watch, WatchedEvent(event_type, KeeperState.CONNECTED, path)))

    def _deliver(self, events: list[tuple[Watch, WatchedEvent]]) -> None:
        for watch, event in events:
            if self.sync_watches:
                watch(event)
            else:
                self._pending.append(partial(watch, event))

    def call_later(self, fn: Callable[[], Any]) -> None:
        """Queue ``fn`` for the next :meth:`run_pending` (kazoo's ``handler.spawn``)."""
        self._pending.append(fn)

    def run_pending(self) -> int:
        """Run queued watch callbacks (and spawned work); returns how many ran."""
        count = 0
        while self._pending:
            batch, self._pending = self._pending, []
            for fn in batch:
                fn()
                count += 1
        return count

    # ----------------------------------------------------------------- primitives
    def _tick_zxid(self) -> int:
        self.zxid += 1
        return self.zxid

    def _create(self, path: str, value: bytes, owner: int, sequence: bool,
                events: list[tuple[Watch, WatchedEvent]], undo: list[Callable[[], None]]) -> str:
        parent_path = _parent(path)
        parent = self.nodes.get(parent_path)
        if parent is None:
            raise NoNodeError(parent_path)
        if parent.owner:
            raise NoChildrenForEphemeralsError(parent_path)
        if sequence:
            path = f"{path}{parent.cversion:010d}"
        if path in self.nodes:
            raise NodeExistsError(path)
        zxid = self._tick_zxid()
        ms = int(self.clock() * 1000)
        self.nodes[path] = _Node(bytes(value), zxid, zxid, ms, ms, owner, pzxid=zxid)
        name = path.rsplit("/", 1)[-1]
        old = (parent.cversion, parent.pzxid)
        parent.add_child(name)
        parent.cversion += 1
        parent.pzxid = zxid
        if owner:
            self.sessions[owner].ephemerals.add(path)

        def revert() -> None:
            del self.nodes[path]
            parent.remove_child(name)
            parent.cversion, parent.pzxid = old
            if owner and owner in self.sessions:
                self.sessions[owner].ephemerals.discard(path)

        undo.append(revert)
        self._fire(self._data_watches, path, EventType.CREATED, events)
        self._fire(self._child_watches, parent_path, EventType.CHILD, events)
        return path

    def _delete(self, path: str, version: int, events: list[tuple[Watch, WatchedEvent]],
                undo: list[Callable[[], None]] | None = None) -> None:
        node = self.nodes.get(path)
        if node is None or path == "/":
            raise NoNodeError(path)
        if version != -1 and node.version != version:
            raise BadVersionError(path)
        if node.children:
            raise NotEmptyError(path)
        parent_path = _parent(path)
        parent = self.nodes[parent_path]
        name = path.rsplit("/", 1)[-1]
        zxid = self._tick_zxid()
        old = (parent.cversion, parent.pzxid)
        del self.nodes[path]
        parent.remove_child(name)
        parent.cversion += 1
        parent.pzxid = zxid
        session = self.sessions.get(node.owner)
        if session is not None:
            session.ephemerals.discard(path)
        if undo is not None:
            def revert() -> None:
                self.nodes[path] = node
                parent.add_child(name)
                parent.cversion, parent.pzxid = old
                if session is not None:
                    session.ephemerals.add(path)
            undo.append(revert)
        self._fire(self._data_watches, path, EventType.DELETED, events)
        self._fire(self._child_watches, path, EventType.DELETED, events)
        self._fire(self._child_watches, parent_path, EventType.CHILD, events)

    def _set(self, path: str, value: bytes, version: int,
             events: list[tuple[Watch, WatchedEvent]], undo: list[Callable[[], None]]) -> ZnodeStat:
        node = self.nodes.get(path)
        if node is None:
            raise NoNodeError(path)
        if version != -1 and node.version != version:
            raise BadVersionError(path)
        old = (node.data, node.version, node.mzxid, node.mtime)
        node.data = bytes(value)
        node.version += 1
        node.mzxid = self._tick_zxid()
        node.mtime = int(self.clock() * 1000)

        def revert() -> None:
            node.data, node.version, node.mzxid, node.mtime = old

        undo.append(revert)
        self._fire(self._data_watches, path, EventType.CHANGED, events)
        return node.stat()

    def _check(self, path: str, version: int) -> bool:
        node = self.nodes.get(path)
        if node is None:
            raise NoNodeError(path)
        if version != -1 and node.version != version:
            raise BadVersionError(path)
        return True

    # ----------------------------------------------------------------- operations
    def run_ops(self, sid: int, ops: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """Apply ``ops`` atomically (a multi); see the module docstring for failures."""
        events: list[tuple[Watch, WatchedEvent]] = []
        undo: list[Callable[[], None]] = []
        results: list[Any] = []
        zxid = self.zxid
        for index, (kind, args) in enumerate(ops):
            try:
                results.append(self._one(sid, kind, args, events, undo))
            except KazooException as exc:
                for revert in reversed(undo):
                    revert()
                self.zxid = zxid
                return [exc if i == index else RolledBackError() for i in range(len(ops))]
        self._deliver(events)
        return results

    def run_one(self, sid: int, kind: str, args: tuple[Any, ...]) -> Any:
        """Apply one operation; raises its kazoo exception on failure."""
        events: list[tuple[Watch, WatchedEvent]] = []
        result = self._one(sid, kind, args, events, [])
        self._deliver(events)
        return result

    def _one(self, sid: int, kind: str, args: tuple[Any, ...],
             events: list[tuple[Watch, WatchedEvent]], undo: list[Callable[[], None]]) -> Any:
        if kind == "create":
            path, value, ephemeral, sequence = args
            return self._create(_norm(path) if not sequence else path, value,
                                sid if ephemeral else 0, sequence, events, undo)
        if kind == "delete":
            path, version = args
            self._delete(_norm(path), version, events, undo)
            return True
        if kind == "set_data":
            path, value, version = args
            return self._set(_norm(path), value, version, events, undo)
        if kind == "check":
            path, version = args
            return self._check(_norm(path), version)
        raise BadArgumentsError(f"unknown operation {kind!r}")


class _Done:
    """A completed asynchronous result (kazoo's IAsyncResult, already set)."""

    def __init__(self, value: Any = None, exception: BaseException | None = None) -> None:
        self.value = value
        self.exception = exception

    def ready(self) -> bool:
        return True

    def successful(self) -> bool:
        return self.exception is None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if self.exception is not None:
            raise self.exception
        return self.value

    def get_nowait(self) -> Any:
        return self.get(False)

    def rawlink(self, callback: Callable[[_Done], Any]) -> None:
        callback(self)

    def unlink(self, callback: Callable[[_Done], Any]) -> None:
        """Nothing to unlink: callbacks ran at once."""


class _Handler:
    """Stands for kazoo's handler: ``spawn`` runs work at the next pending-run."""

    def __init__(self, server: FakeZooKeeper) -> None:
        self._server = server

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._server.call_later(lambda: fn(*args, **kwargs))


class FakeTransaction:
    """``client.transaction()``: collect operations, ``commit()`` them atomically."""

    def __init__(self, client: FakeKazooClient) -> None:
        self._client = client
        self.operations: list[tuple[str, tuple[Any, ...]]] = []
        self.committed = False

    def create(self, path: str, value: bytes = b"", acl: Any = None, ephemeral: bool = False,
               sequence: bool = False) -> None:
        self.operations.append(("create", (path, value, ephemeral, sequence)))

    def delete(self, path: str, version: int = -1) -> None:
        self.operations.append(("delete", (path, version)))

    def set_data(self, path: str, value: bytes, version: int = -1) -> None:
        self.operations.append(("set_data", (path, value, version)))

    def check(self, path: str, version: int) -> None:
        self.operations.append(("check", (path, version)))

    def commit(self) -> list[Any]:
        if self.committed:
            raise ValueError("transaction already committed")
        self.committed = True
        sid = self._client.live_session()
        return self._client.server.run_ops(sid, self.operations)

    def commit_async(self) -> _Done:
        return _capture(self.commit)


def _capture(fn: Callable[[], Any]) -> _Done:
    try:
        return _Done(fn())
    except KazooException as exc:
        return _Done(exception=exc)


class FakeKazooClient:
    """One process's connection: kazoo's client API over a :class:`FakeZooKeeper`."""

    def __init__(self, server: FakeZooKeeper, timeout: float = 10.0) -> None:
        self.server = server
        self.timeout = timeout
        self.state = KazooState.LOST
        self.handler = _Handler(server)
        self._listeners: list[Listener] = []
        self._sid: int | None = None
        self._started = False
        self.sessions_used: list[int] = []

    # ----------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 15.0) -> None:
        if self._started:
            return
        self._started = True
        self._new_session()

    def stop(self) -> None:
        """Close the session (its ephemerals go at once) and stop."""
        if not self._started:
            return
        self._started = False
        if self._sid is not None:
            self.server.expire_session(self._sid)
        self._sid = None
        self._set_state(KazooState.LOST)

    def close(self) -> None:
        """Release resources; nothing more than ``stop`` here."""

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def client_id(self) -> tuple[int, bytes] | None:
        return None if self._sid is None else (self._sid, b"pw")

    @property
    def connected(self) -> bool:
        return bool(self.state == KazooState.CONNECTED)

    def ping(self) -> bool:
        """What kazoo's connection thread does for a running process: keep the session
        alive, or notice that it expired (LOST, then a new session: CONNECTED).
        Returns False when the session had expired."""
        if not self._started:
            return False
        if self._sid is not None and self.server.heard(self._sid):
            return True
        self._set_state(KazooState.LOST)
        self._new_session()
        return False

    def _new_session(self) -> None:
        self._sid = self.server.open_session(self.timeout)
        self.sessions_used.append(self._sid)
        self._set_state(KazooState.CONNECTED)

    def _set_state(self, state: str) -> None:
        self.state = state
        for listener in list(self._listeners):
            listener(state)

    def live_session(self) -> int:
        if not self._started:
            raise ConnectionClosedError("Connection has been closed")
        self.ping()
        assert self._sid is not None
        return self._sid

    # ----------------------------------------------------------------- reads
    def exists(self, path: str, watch: Watch | None = None) -> ZnodeStat | None:
        sid = self.live_session()
        path = self.server.norm(path)
        if watch is not None:
            self.server.add_watch("data", path, sid, watch)
        node = self.server.nodes.get(path)
        return None if node is None else node.stat()

    def _watched(self, path: str, kind: str, watch: Watch | None) -> Any:
        """The node at ``path`` (NoNodeError if none), with a ``kind`` watch set."""
        sid = self.live_session()
        path = self.server.norm(path)
        node = self.server.nodes.get(path)
        if node is None:
            raise NoNodeError(path)
        if watch is not None:
            self.server.add_watch(kind, path, sid, watch)
        return node

    def get(self, path: str, watch: Watch | None = None) -> tuple[bytes, ZnodeStat]:
        node = self._watched(path, "data", watch)
        return node.data, node.stat()

    def get_children(self, path: str, watch: Watch | None = None,
                     include_data: bool = False) -> Any:
        node = self._watched(path, "child", watch)
        children = node.sorted_children()
        return (children, node.stat()) if include_data else children

    # ----------------------------------------------------------------- writes
    def create(self, path: str, value: bytes = b"", acl: Any = None, ephemeral: bool = False,
               sequence: bool = False, makepath: bool = False,
               include_data: bool = False) -> Any:
        sid = self.live_session()
        if makepath:
            self._ensure(_parent(_norm(path)) if not sequence else _parent(path), sid)
        created = self.server.run_one(sid, "create", (path, value, ephemeral, sequence))
        if include_data:
            return created, self.server.nodes[created].stat()
        return created

    def ensure_path(self, path: str, acl: Any = None) -> bool:
        self._ensure(_norm(path), self.live_session())
        return True

    def _ensure(self, path: str, sid: int) -> None:
        if path == "/" or path in self.server.nodes:
            return
        self._ensure(_parent(path), sid)
        try:
            self.server.run_one(sid, "create", (path, b"", False, False))
        except NodeExistsError:
            pass

    def set(self, path: str, value: bytes, version: int = -1) -> ZnodeStat:
        return self.server.run_one(self.live_session(), "set_data", (path, value, version))

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> bool:
        sid = self.live_session()
        path = _norm(path)
        if recursive:
            node = self.server.nodes.get(path)
            if node is None:
                raise NoNodeError(path)
            for name in sorted(node.children):
                self.delete(f"{path}/{name}" if path != "/" else f"/{name}", recursive=True)
        self.server.run_one(sid, "delete", (path, version))
        return True

    def transaction(self) -> FakeTransaction:
        return FakeTransaction(self)

    # ----------------------------------------------------------------- async
    def get_async(self, path: str, watch: Watch | None = None) -> _Done:
        try:
            return _Done(self.get(path, watch))
        except KazooException as exc:
            return _Done(exception=exc)

    def get_children_async(self, path: str, watch: Watch | None = None,
                           include_data: bool = False) -> _Done:
        return _capture(lambda: self.get_children(path, watch, include_data))

    def exists_async(self, path: str, watch: Watch | None = None) -> _Done:
        return _capture(lambda: self.exists(path, watch))

    def create_async(self, path: str, value: bytes = b"", acl: Any = None,
                     ephemeral: bool = False, sequence: bool = False,
                     makepath: bool = False, include_data: bool = False) -> _Done:
        return _capture(lambda: self.create(path, value, acl, ephemeral, sequence, makepath,
                                            include_data))

    def set_async(self, path: str, value: bytes, version: int = -1) -> _Done:
        return _capture(lambda: self.set(path, value, version))

    def delete_async(self, path: str, version: int = -1) -> _Done:
        try:
            return _Done(self.delete(path, version))
        except KazooException as exc:
            return _Done(exception=exc)
