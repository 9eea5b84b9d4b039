"""The in-memory ZooKeeper keeps the semantics our election and log depend on."""

from __future__ import annotations

import pytest
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
)
from kazoo.protocol.states import EventType, KazooState, WatchedEvent

from mesos_zmq.testing.fakezk import FakeKazooClient, FakeZooKeeper


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def zk(clock: Clock) -> FakeZooKeeper:
    return FakeZooKeeper(clock, sync_watches=True)


def client(zk: FakeZooKeeper, timeout: float = 2.0) -> FakeKazooClient:
    c = FakeKazooClient(zk, timeout)
    c.start()
    return c


def test_create_get_set_delete_with_versions(zk: FakeZooKeeper) -> None:
    c = client(zk)
    assert c.create("/a", b"x") == "/a"
    with pytest.raises(NodeExistsError):
        c.create("/a")
    with pytest.raises(NoNodeError):
        c.create("/b/c")
    assert c.create("/b/c", b"y", makepath=True) == "/b/c"
    data, stat = c.get("/a")
    assert (data, stat.version, stat.ephemeralOwner) == (b"x", 0, 0)
    assert c.set("/a", b"z", version=0).version == 1
    with pytest.raises(BadVersionError):
        c.set("/a", b"w", version=0)
    with pytest.raises(NotEmptyError):
        c.delete("/b")
    c.delete("/b", recursive=True)
    assert c.exists("/b") is None
    with pytest.raises(BadVersionError):
        c.delete("/a", version=0)
    c.delete("/a", version=1)
    assert c.get_children("/") == []


def test_sequence_numbers_come_from_cversion_and_leave_gaps(zk: FakeZooKeeper) -> None:
    c = client(zk)
    c.ensure_path("/log")
    first = c.create("/log/e-", sequence=True)
    second = c.create("/log/e-", sequence=True)
    assert (first, second) == ("/log/e-0000000000", "/log/e-0000000001")
    c.delete(first)  # a deletion bumps cversion too
    assert c.create("/log/e-", sequence=True) == "/log/e-0000000003"
    assert c.exists("/log").cversion == 4  # type: ignore[union-attr]


def test_ephemerals_belong_to_the_session_and_die_with_it(zk: FakeZooKeeper,
                                                          clock: Clock) -> None:
    a, b = client(zk), client(zk)
    a.create("/leader", b"a", ephemeral=True)
    assert a.client_id is not None
    assert a.exists("/leader").ephemeralOwner == a.client_id[0]  # type: ignore[union-attr]
    clock.now = 1.5
    b.ping()
    a.ping()  # heard: still alive
    clock.now = 4.0
    b.ping()
    assert zk.expire_due() == [a.client_id[0]]
    assert b.exists("/leader") is None


def test_a_paused_client_gets_lost_then_a_new_session(zk: FakeZooKeeper, clock: Clock) -> None:
    c = client(zk)
    seen: list[str] = []
    c.add_listener(seen.append)
    assert c.client_id is not None
    old = c.client_id[0]
    c.create("/e", ephemeral=True)
    clock.now = 10.0  # paused past its session timeout
    c.create("/f", ephemeral=True)  # the next call notices
    assert seen == [KazooState.LOST, KazooState.CONNECTED]
    assert c.client_id is not None and c.client_id[0] != old
    assert c.exists("/e") is None
    assert c.exists("/f").ephemeralOwner == c.client_id[0]  # type: ignore[union-attr]


def test_watches_are_one_shot_and_fire_on_changes(zk: FakeZooKeeper) -> None:
    c = client(zk)
    events: list[WatchedEvent] = []
    assert c.exists("/n", watch=events.append) is None
    c.create("/n", b"1")
    c.set("/n", b"2")  # the exists watch was used up by the creation
    assert [e.type for e in events] == [EventType.CREATED]
    c.get("/n", watch=events.append)
    c.get_children("/", watch=events.append)
    c.delete("/n")
    assert [e.type for e in events] == [EventType.CREATED, EventType.DELETED, EventType.CHILD]


def test_queued_watches_run_only_when_pending_work_runs(clock: Clock) -> None:
    zk = FakeZooKeeper(clock)
    c = client(zk)
    events: list[WatchedEvent] = []
    c.exists("/n", watch=events.append)
    c.create("/n")
    assert events == []
    assert zk.run_pending() == 1
    assert [e.path for e in events] == ["/n"]


def test_failed_transaction_applies_nothing(zk: FakeZooKeeper) -> None:
    c = client(zk)
    c.create("/epoch")
    c.ensure_path("/log")
    txn = c.transaction()
    txn.check("/epoch", 5)
    txn.create("/log/e-", b"x", sequence=True)
    results = txn.commit()
    assert isinstance(results[0], BadVersionError)
    assert isinstance(results[1], RolledBackError)
    assert c.get_children("/log") == []
    assert c.exists("/log").cversion == 0  # type: ignore[union-attr]
    txn = c.transaction()
    txn.create("/log/e-", b"x", sequence=True)
    txn.create("/exists")
    txn.create("/epoch")
    results = txn.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[2], NodeExistsError)
    assert c.get_children("/log") == [] and c.exists("/exists") is None
    txn = c.transaction()
    txn.check("/epoch", 0)
    txn.create("/log/e-", b"x", sequence=True)
    txn.set_data("/epoch", b"v")
    ok = txn.commit()
    assert ok[:2] == [True, "/log/e-0000000000"] and ok[2].version == 1


def test_async_calls_complete_at_once(zk: FakeZooKeeper) -> None:
    c = client(zk)
    c.create_async("/a", b"x").get()
    assert c.get_async("/a").get()[0] == b"x"
    assert c.exists_async("/nope").get() is None
    with pytest.raises(NoNodeError):
        c.get_children_async("/nope").get()
    c.delete_async("/a").get()
    assert c.exists("/a") is None


def test_stop_closes_the_session_at_once(zk: FakeZooKeeper) -> None:
    c, other = client(zk), client(zk)
    c.create("/e", ephemeral=True)
    c.stop()
    assert c.client_id is None
    assert other.exists("/e") is None
    with pytest.raises(ConnectionClosedError):
        c.get("/")
