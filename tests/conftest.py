"""Shared fixtures: real-process clusters whose logs are shown when a test fails."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from mesos_zmq.testing.zookeeper import Ensemble
from tests.cluster import Cluster


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed:
        cluster = getattr(item, "_cluster", None)
        if cluster is not None:
            report.sections.append(("cluster logs", cluster.logs()))


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    request.node._cluster = c
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ensemble]:
    """One real ZooKeeper server for the whole run (Debian's package, loopback)."""
    ensemble = Ensemble(tmp_path_factory.mktemp("zookeeper"), size=1).start()
    try:
        yield ensemble
    finally:
        ensemble.stop()


@pytest.fixture
def zk_client(zookeeper: Ensemble) -> Iterator[KazooClient]:
    """A kazoo client chrooted to a fresh path, so tests never see each other's data."""
    root = KazooClient(hosts=zookeeper.hosts, timeout=2.0)
    root.start(10)
    chroot = f"/test-{uuid.uuid4().hex[:12]}"
    root.ensure_path(chroot)
    root.stop()
    root.close()
    client = KazooClient(hosts=zookeeper.hosts + chroot, timeout=2.0)
    client.start(10)
    try:
        yield client
    finally:
        client.stop()
        client.close()
