"""Becoming the leading master through ZooKeeper.

Each master joins ``<path>/election`` with an ephemeral sequential znode; the lowest
sequence leads. A waiting master watches only its predecessor, so a leader's exit
wakes one contender, not all. The winner publishes its leader record at
``<path>/leader`` (ephemeral, so it disappears with the leader's session) only once
it is ready to serve. kazoo does not interrupt a leader whose session is in doubt: the
master listens for connection states itself (see :mod:`mesos_zmq.master.ha`).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from mesos_zmq.detector import ELECTION_NODE, LEADER_NODE


class Contender:
    def __init__(self, client: KazooClient, path: str, member_id: str) -> None:
        self.zk = client
        self.path = "/" + path.strip("/")
        self.member_id = member_id
        self.node: str | None = None
        self.published = False

    def join(self) -> None:
        self.zk.ensure_path(f"{self.path}/{ELECTION_NODE}")
        created = self.zk.create(f"{self.path}/{ELECTION_NODE}/m-", self.member_id.encode(),
                                 ephemeral=True, sequence=True)
        self.node = str(created).rsplit("/", 1)[-1]

    def wait_for_leadership(self, stop: threading.Event, poll: float = 0.5) -> bool:
        """Block until this member leads (True) or ``stop`` is set (False)."""
        assert self.node is not None, "join() first"
        while not stop.is_set():
            members = sorted(self.zk.get_children(f"{self.path}/{ELECTION_NODE}"),
                             key=lambda n: int(n.rsplit("-", 1)[-1]))
            if self.node not in members:
                raise RuntimeError("our election node vanished: the session was lost")
            index = members.index(self.node)
            if index == 0:
                return True
            woken = threading.Event()
            predecessor = f"{self.path}/{ELECTION_NODE}/{members[index - 1]}"

            def wake(_event: Any, woken: threading.Event = woken) -> None:
                woken.set()

            if self.zk.exists(predecessor, watch=wake) is None:
                continue
            while not woken.is_set() and not stop.is_set():
                woken.wait(poll)
        return False

    def publish(self, info: dict[str, Any]) -> None:
        """Tell agents, frameworks and the CLI where the leader listens."""
        data = json.dumps(info, sort_keys=True).encode()
        node = f"{self.path}/{LEADER_NODE}"
        try:
            self.zk.create(node, data, ephemeral=True)
        except NodeExistsError:
            # Left by our own earlier attempt in this session; anyone else's would
            # belong to a live leader, which cannot exist while we lead.
            self.zk.set(node, data)
        self.published = True

    def withdraw(self) -> None:
        """Leave at once (graceful stop): the next contender takes over immediately."""
        for node in (f"{self.path}/{LEADER_NODE}" if self.published else None,
                     f"{self.path}/{ELECTION_NODE}/{self.node}" if self.node else None):
            if node is None:
                continue
            try:
                self.zk.delete(node)
            except NoNodeError:
                pass
