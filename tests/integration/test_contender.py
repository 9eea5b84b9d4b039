"""Leader election against a real ZooKeeper: a deposed leader touches nothing of the new one.

Issue 9, violation 1: a leader paused past its session woke up with a new session,
withdrew, and deleted the new leader's record (detectors saw no leader after that).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from mesos_zmq.master.contender import Contender, LeadershipLost
from mesos_zmq.testing.zookeeper import Ensemble
from tests.cluster import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def clients(zookeeper: Ensemble) -> Iterator[list[KazooClient]]:
    made: list[KazooClient] = []
    yield made
    for client in made:
        client.stop()
        client.close()


def connect(zookeeper: Ensemble, made: list[KazooClient], **kwargs: object) -> KazooClient:
    client = KazooClient(hosts=zookeeper.hosts, timeout=2.0, **kwargs)  # type: ignore[arg-type]
    client.start(10)
    made.append(client)
    return client


def expire(zookeeper: Ensemble, client: KazooClient, made: list[KazooClient]) -> None:
    """End ``client``'s session as a long pause would (ZooKeeper's own expiry path)."""
    old = client.client_id
    twin = connect(zookeeper, made, client_id=old)
    twin.stop()
    wait_until(lambda: client.connected and client.client_id is not None
               and client.client_id[0] != old[0], 20, what="a new session")


def record(client: KazooClient, path: str) -> dict[str, object]:
    data, _ = client.get(f"{path}/leader")
    value: dict[str, object] = json.loads(data)
    return value


def test_a_deposed_leader_leaves_the_new_leaders_record_alone(
        zookeeper: Ensemble, clients: list[KazooClient]) -> None:
    path = f"/c-{uuid.uuid4().hex[:8]}"
    old_client = connect(zookeeper, clients)
    old = Contender(old_client, path, "old")
    old.join()
    assert old.leads()
    old.publish({"id": "old"})
    expire(zookeeper, old_client, clients)  # paused past its session, then woke up

    new = Contender(connect(zookeeper, clients), path, "new")
    new.join()
    assert new.leads()
    new.publish({"id": "new"})

    # The woken leader notices it lost, may not publish, and withdraws harmlessly.
    assert not old.check_published()
    with pytest.raises(LeadershipLost):
        old.publish({"id": "old again"})
    old.withdraw()
    watcher = connect(zookeeper, clients)
    assert record(watcher, path) == {"id": "new"}
    assert new.check_published()
    assert len(watcher.get_children(f"{path}/election")) == 1


def test_a_leader_republishes_a_record_that_went_missing(
        zookeeper: Ensemble, clients: list[KazooClient]) -> None:
    path = f"/c-{uuid.uuid4().hex[:8]}"
    leader = Contender(connect(zookeeper, clients), path, "m1")
    leader.join()
    leader.publish({"id": "m1"})
    other = connect(zookeeper, clients)
    other.delete(f"{path}/leader")  # e.g. an old master's buggy clean-up
    assert leader.check_published()
    assert record(other, path) == {"id": "m1"}
    # A record some other session owns is never overwritten: step down instead.
    other.delete(f"{path}/leader")
    other.create(f"{path}/leader", b'{"id": "impostor"}', ephemeral=True)
    assert not leader.check_published()
    with pytest.raises(LeadershipLost):
        leader.publish({"id": "m1"})
    leader.withdraw()
    assert record(other, path) == {"id": "impostor"}
