"""Becoming the leading master through ZooKeeper.

Each master joins ``<path>/election`` with an ephemeral sequential znode; the lowest
sequence leads. A waiting master watches only its predecessor, so a leader's exit
wakes one contender, not all. The winner publishes its leader record at
``<path>/leader`` (ephemeral, so it disappears with the leader's session) only once
it is ready to serve. kazoo does not interrupt a leader whose session is in doubt: the
master listens for connection states itself (see :mod:`mesos_zmq.master.ha`).

Ownership rule: a contender touches only znodes that its *current* ZooKeeper session
created. A leader paused past its session (SIGSTOP, swap) wakes up with a new session
that kazoo opened for it; everything it created is gone, and a node at the same path
now belongs to someone else (the new leader's record). So every write or delete first
checks that the session which created our node is still the client's session and
that the node's ``ephemeralOwner`` is that session; otherwise it leaves the node alone
and reports that leadership is lost. The leader also re-checks its record while it
serves (:meth:`Contender.check_published`) and republishes one that went missing.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from mesos_zmq.detector import ELECTION_NODE, LEADER_NODE
from mesos_zmq.errors import LogError


class LeadershipLost(LogError):
    """This master no longer leads (its session ended, or another record is there)."""


class Contender:
    def __init__(self, client: KazooClient, path: str, member_id: str,
                 address: str = "") -> None:
        self.zk = client
        self.path = "/" + path.strip("/")
        self.member_id = member_id
        #: where this master serves once it leads (shown to operators as a standby's)
        self.address = address
        self.node: str | None = None
        #: the ZooKeeper session that created our election node (and leader record)
        self.session: int | None = None
        self.published = False
        self._record: bytes = b""
        #: ACL of the leader record (None: the client's default); readable by clients
        self.public_acl: list[Any] | None = None

    # ----------------------------------------------------------------- sessions
    def current_session(self) -> int | None:
        """The client's session id now (kazoo opens a new one after an expiry)."""
        client_id = self.zk.client_id
        return int(client_id[0]) if client_id else None

    def _session_is_ours(self) -> bool:
        return self.session is not None and self.current_session() == self.session

    def _owned(self, path: str) -> Any:
        """The stat of ``path`` if our current session created it, else None."""
        if not self._session_is_ours():
            return None
        stat = self.zk.exists(path)
        if stat is None or stat.ephemeralOwner != self.session:
            return None
        return stat

    # ----------------------------------------------------------------- election
    def join(self) -> None:
        self.zk.ensure_path(f"{self.path}/{ELECTION_NODE}")
        self.session = self.current_session()
        data = json.dumps({"id": self.member_id, "address": self.address}).encode()
        created = self.zk.create(f"{self.path}/{ELECTION_NODE}/m-", data,
                                 ephemeral=True, sequence=True)
        self.node = str(created).rsplit("/", 1)[-1]

    def _members(self) -> list[str]:
        return sorted(self.zk.get_children(f"{self.path}/{ELECTION_NODE}"),
                      key=lambda n: int(n.rsplit("-", 1)[-1]))

    def _ahead_of_us(self) -> str | None:
        """The member just before ours (None: we lead). Raises :class:`LeadershipLost`
        when our session ended or our node is gone."""
        assert self.node is not None, "join() first"
        if not self._session_is_ours():
            raise LeadershipLost("the ZooKeeper session that joined the election has ended")
        members = self._members()
        if self.node not in members:
            raise LeadershipLost("our election node vanished: the session was lost")
        index = members.index(self.node)
        return members[index - 1] if index else None

    def others(self) -> list[dict[str, Any]]:
        """The other members (standbys), in election order, as they described themselves
        (an id alone for a member that wrote a plain id)."""
        found = []
        for name in self._members():
            if name == self.node:
                continue
            try:
                data, _ = self.zk.get(f"{self.path}/{ELECTION_NODE}/{name}")
            except NoNodeError:
                continue
            try:
                member = json.loads(data)
            except ValueError:
                member = None
            if not isinstance(member, dict):
                member = {"id": data.decode(errors="replace")}
            found.append({"id": str(member.get("id", ""))[:200],
                          "address": str(member.get("address", ""))[:200]})
        return found

    def leads(self) -> bool:
        """Whether we lead now: our node, created by our live session, is first."""
        return self._ahead_of_us() is None

    def wait_for_leadership(self, stop: threading.Event, poll: float = 0.5) -> bool:
        """Block until this member leads (True) or ``stop`` is set (False)."""
        assert self.node is not None, "join() first"
        while not stop.is_set():
            ahead = self._ahead_of_us()
            if ahead is None:
                return True
            woken = threading.Event()
            predecessor = f"{self.path}/{ELECTION_NODE}/{ahead}"

            def wake(_event: Any, woken: threading.Event = woken) -> None:
                woken.set()

            if self.zk.exists(predecessor, watch=wake) is None:
                continue
            while not woken.is_set() and not stop.is_set():
                woken.wait(poll)
        return False

    # ----------------------------------------------------------------- leader record
    def publish(self, info: dict[str, Any]) -> None:
        """Tell agents, frameworks and the CLI where the leader listens.

        Only a current leader publishes, and it never overwrites a record that another
        session owns: that would hide a live leader (:class:`LeadershipLost`).
        """
        if not self.leads():
            raise LeadershipLost("another master leads; not publishing")
        data = json.dumps(info, sort_keys=True).encode()
        node = f"{self.path}/{LEADER_NODE}"
        try:
            self.zk.create(node, data, acl=self.public_acl, ephemeral=True)
        except NodeExistsError:
            stat = self._owned(node)
            if stat is None:
                raise LeadershipLost("a leader record owned by another session exists") from None
            try:
                self.zk.set(node, data, version=stat.version)
            except (BadVersionError, NoNodeError):
                raise LeadershipLost("the leader record changed under us") from None
        self._record = data
        self.published = True

    def check_published(self) -> bool:
        """While serving: our record is there and ours (republished if it went missing).

        Returns False when we must step down: the session changed, we no longer lead,
        or the record belongs to someone else.
        """
        if not self.published:
            return True
        node = f"{self.path}/{LEADER_NODE}"
        try:
            if not self.leads():
                return False
            stat = self.zk.exists(node)
            if stat is None:
                self.zk.create(node, self._record, acl=self.public_acl, ephemeral=True)
                return True
            return bool(stat.ephemeralOwner == self.session)
        except (LeadershipLost, NodeExistsError):
            return False

    def withdraw(self) -> None:
        """Leave at once (graceful stop): the next contender takes over immediately.

        Deletes only what our still-current session created; after a session loss
        there is nothing of ours left, and a node at our paths is someone else's.
        """
        nodes = []
        if self.published:
            nodes.append(f"{self.path}/{LEADER_NODE}")
        if self.node:
            nodes.append(f"{self.path}/{ELECTION_NODE}/{self.node}")
        for node in nodes:
            stat = self._owned(node)
            if stat is None:
                continue
            try:
                self.zk.delete(node, version=stat.version)
            except (NoNodeError, BadVersionError):
                pass
        self.published = False
