"""Finding the leading master: ``tcp://host:port`` or ``zk://[user:pass@]hosts/path``.

Agents, frameworks and the CLI all take ``--master`` in either form. With a ``tcp://``
URL the master is fixed. With a ``zk://`` URL (Mesos's form) the detector watches the
leader record that the elected master publishes at ``<path>/leader`` (JSON: id,
address, epoch, version) and reports changes, so a client can reconnect to a new
leader by itself.

The watch is ours rather than kazoo's ``DataWatch``: that recipe retries a read with
exponential back-off up to 60 s, and a read queued across a session expiry could hang
for good, so after a ZooKeeper outage a client could go on talking to a deposed leader
for a minute or more. Here every read is bounded, a failed one is retried each second
while connected, and every (re)connection reads the record again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState, WatchedEvent

from mesos_zmq.errors import ConfigError, MesosZmqError
from mesos_zmq.zk_auth import ZkCredentials

LEADER_NODE = "leader"
#: bound on one read of the leader record
READ_TIMEOUT = 5.0
ELECTION_NODE = "election"


class NoLeader(MesosZmqError):
    """No master leads right now (or ZooKeeper cannot be reached)."""


@dataclass(frozen=True, slots=True)
class MasterURL:
    """A parsed ``--master`` (or ``--zk``) value."""

    kind: str  # "tcp" | "zk"
    address: str = ""  # tcp only
    hosts: str = ""  # zk only: host:port,host:port
    path: str = ""  # zk only: the cluster path, e.g. /mesos-zmq
    auth: str = ""  # zk only: "user:password" for digest auth, or ""

    def __str__(self) -> str:
        if self.kind == "tcp":
            return self.address
        return f"zk://{self.hosts}{self.path}"


def parse_master_url(text: str) -> MasterURL:
    """Parse ``tcp://h:p``, ``h:p`` or ``zk://[user:pass@]h1:p1,h2:p2/path``."""
    value = text.strip()
    if value.startswith("zk://"):
        rest = value[len("zk://"):]
        auth = ""
        if "@" in rest.split("/", 1)[0]:
            auth, rest = rest.split("@", 1)
            if ":" not in auth:
                raise ConfigError(f"{text!r}: ZooKeeper credentials must be user:password")
        hosts, slash, path = rest.partition("/")
        if not hosts or not slash or not path.strip("/"):
            raise ConfigError(
                f"{text!r} is not zk://host:port[,host:port...]/path (a path is required)"
            )
        for host in hosts.split(","):
            name, colon, port = host.rpartition(":")
            if not colon or not name or not port.isdigit():
                raise ConfigError(f"{text!r}: {host!r} is not host:port")
        return MasterURL(kind="zk", hosts=hosts, path="/" + path.strip("/"), auth=auth)
    if value.startswith("tcp://") or "://" not in value:
        address = value if value.startswith("tcp://") else "tcp://" + value
        host, colon, port = address[len("tcp://"):].rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ConfigError(f"{text!r} is not tcp://host:port")
        return MasterURL(kind="tcp", address=address)
    raise ConfigError(f"{text!r}: use tcp://host:port or zk://host:port,.../path")


def zk_client(url: MasterURL, session_timeout: float = 10.0,
              credentials: ZkCredentials | None = None) -> KazooClient:
    """A started kazoo client for ``url`` (raises NoLeader if ZooKeeper is unreachable).

    With ``credentials`` (a master's), the client authenticates with them and every
    znode it creates is the masters' only (see :mod:`mesos_zmq.zk_auth`); credentials
    in the URL do the same, for compatibility.
    """
    if credentials is None and url.auth:
        credentials = ZkCredentials.parse(url.auth, "the zk:// URL")
    auth = credentials.auth_data() if credentials else None
    default_acl = credentials.masters_acl() if credentials else None
    # kazoo's default reconnection back-off grows to an hour: after a ZooKeeper outage
    # of twenty seconds a client could stay away for a minute. Retry every second at most.
    retry = {"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": 1.0}
    client = KazooClient(hosts=url.hosts, timeout=session_timeout, auth_data=auth,
                         default_acl=default_acl, connection_retry=retry)
    try:
        client.start(timeout=max(5.0, session_timeout))
    except KazooTimeoutError:
        client.close()
        raise NoLeader(f"cannot reach ZooKeeper at {url.hosts}") from None
    return client


def parse_leader_info(data: bytes) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(data.decode())
    if not isinstance(info.get("address"), str):
        raise ValueError("leader info has no address")
    return info


def leader_info_or_none(data: bytes | None) -> dict[str, Any] | None:
    """The leader record in ``data``, or None when absent or unreadable (no leader)."""
    if not data:
        return None
    try:
        return parse_leader_info(data)
    except ValueError:
        return None


class LeaderDetector:
    """Knows the current leader's address; thread-safe; ``changed()`` is edge-triggered.

    A client loop that waits on its own sockets can :meth:`add_listener` to be woken
    the moment the record changes, instead of finding out on its next turn.
    """

    def __init__(self, url: str | MasterURL, session_timeout: float = 10.0) -> None:
        self.url = parse_master_url(url) if isinstance(url, str) else url
        self._lock = threading.Lock()
        self._info: dict[str, Any] | None = None
        self._version = 0
        self._seen_version = 0
        self._event = threading.Event()
        self._listeners: list[Callable[[], None]] = []
        self._client: KazooClient | None = None
        if self.url.kind == "tcp":
            self._info = {"address": self.url.address, "epoch": 0}
            self._version = 1
            self._event.set()
            return
        self._path = f"{self.url.path}/{LEADER_NODE}"
        self._tickets = 0
        self._applied = 0
        self._client = zk_client(self.url, session_timeout)
        self._client.add_listener(self._on_state)
        self._refresh()

    def _on_state(self, state: str) -> None:
        if state == KazooState.CONNECTED and self._client is not None:
            self._client.handler.spawn(self._refresh)  # listeners must not block

    def _on_watch(self, event: WatchedEvent) -> None:
        if self._client is not None:
            self._client.handler.spawn(self._refresh)

    def _refresh(self) -> None:
        """Read the leader record and re-arm the watch.

        Every call is bounded (a request queued across a session expiry can otherwise
        wait forever); on failure, while connected, it tries again a second later.
        Refreshes may overlap: each takes a ticket, and a result older than one
        already applied is dropped.
        """
        client = self._client
        if client is None:
            return
        with self._lock:
            self._tickets += 1
            ticket = self._tickets
        try:
            try:
                data, _ = client.get_async(self._path, watch=self._on_watch).get(
                    timeout=READ_TIMEOUT)
            except NoNodeError:
                if client.exists_async(self._path, watch=self._on_watch).get(
                        timeout=READ_TIMEOUT):
                    client.handler.spawn(self._refresh)  # created meanwhile
                    return
                data = None
        except (KazooException, KazooTimeoutError):
            if self._client is not None and client.state == KazooState.CONNECTED:
                client.handler.spawn(self._refresh_later)
            return  # otherwise the next CONNECTED reads again
        with self._lock:
            if ticket < self._applied:
                return
            self._applied = ticket
        self._on_leader(data, None)

    def _refresh_later(self) -> None:
        time.sleep(1.0)
        self._refresh()

    def _on_leader(self, data: bytes | None, stat: Any) -> None:
        info = leader_info_or_none(data)
        with self._lock:
            changed = info != self._info
            if changed:
                self._info = info
                self._version += 1
            if info is None:
                self._event.clear()
            else:
                self._event.set()
            listeners = list(self._listeners) if changed else []
        for listener in listeners:
            try:
                listener()
            except Exception:  # a listener's bug must not stop the detector
                pass

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from a detector thread) after each change of the record.

        It must return quickly and not block; typically it wakes the caller's loop,
        which then asks :meth:`changed`.
        """
        with self._lock:
            self._listeners.append(listener)

    def current(self) -> str | None:
        """The leader's ZeroMQ address, or None while there is no leader."""
        with self._lock:
            return None if self._info is None else str(self._info["address"])

    def info(self) -> dict[str, Any] | None:
        with self._lock:
            return None if self._info is None else dict(self._info)

    def wait(self, timeout: float | None = None) -> str:
        """Block until a leader is known; raises NoLeader on timeout."""
        if not self._event.wait(timeout):
            raise NoLeader(f"no leading master at {self.url} after {timeout:g}s")
        address = self.current()
        if address is None:
            raise NoLeader(f"no leading master at {self.url}")
        return address

    def changed(self) -> str | None:
        """The new leader's address if it changed since the last call, else None."""
        with self._lock:
            if self._version == self._seen_version or self._info is None:
                return None
            self._seen_version = self._version
            return str(self._info["address"])

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                client.stop()
                client.close()
            except KazooException:
                pass
