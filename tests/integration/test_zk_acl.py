"""ZooKeeper secured (issue 12, point 5): with --zk-credentials the masters' znodes are
theirs; the leader record is readable by anyone and writable by no one else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from mesos_zmq.detector import LeaderDetector
from mesos_zmq.testing.zookeeper import Ensemble
from tests.cluster import Cluster, wait_until
from tests.integration.test_ha import start_masters

pytestmark = pytest.mark.integration


def test_only_the_masters_write_and_only_the_leader_record_is_public(
        zookeeper: Ensemble, tmp_path: Path) -> None:
    creds = tmp_path / "zk.secret"
    creds.write_text("masters:s3cret\n")
    os.chmod(creds, 0o600)
    path = f"/acl-{tmp_path.name}"
    zk_url = f"zk://{zookeeper.hosts}{path}"
    cluster = Cluster(tmp_path)
    start_masters(cluster, zk_url, 1, ["--zk-credentials", str(creds),
                                       "--snapshot-every", "1"])
    detector = LeaderDetector(zk_url, session_timeout=2.0)
    stranger = KazooClient(hosts=zookeeper.hosts, timeout=2.0)
    stranger.start()
    try:
        wait_until(lambda: detector.current() is not None, 30.0, what="a leader")
        cluster.master_url = zk_url
        cluster.start_agent()
        cluster.wait_agents(1)
        out = cluster.cli("run", "--master", zk_url, "--", "sh", "-c", "echo hi")
        assert out.returncode == 0, out.stderr + cluster.logs()
        # anyone finds the leader (agents, frameworks and the CLI need it)
        data, _ = stranger.get(f"{path}/leader")
        assert b"address" in data
        with pytest.raises(NoAuthError):
            stranger.set(f"{path}/leader", b'{"address": "tcp://evil:1"}')
        with pytest.raises(NoAuthError):
            stranger.set(f"{path}/epoch", b"bumped")  # would fence the leader
        with pytest.raises(NoAuthError):
            stranger.create(f"{path}/election/m-", b"{}", ephemeral=True, sequence=True)
        # the log holds task environments: nobody else reads it
        for node in ("log", "snapshots", "epoch"):
            with pytest.raises(NoAuthError):
                stranger.get_children(f"{path}/{node}")
        with pytest.raises(NoAuthError):
            stranger.get(f"{path}/snapshot")
        with pytest.raises(NoAuthError):
            stranger.delete(f"{path}/leader")
    finally:
        stranger.stop()
        stranger.close()
        detector.close()
        cluster.stop()


def test_a_credentials_file_others_can_read_is_refused(tmp_path: Path) -> None:
    creds = tmp_path / "zk.secret"
    creds.write_text("masters:s3cret\n")
    os.chmod(creds, 0o644)
    cluster = Cluster(tmp_path)
    out = cluster.cli("master", "--zk", "zk://127.0.0.1:1/x", "--port", "5999",
                      "--zk-credentials", str(creds), "--work-dir", str(tmp_path / "m"),
                      timeout=30)
    assert out.returncode != 0 and "chmod 600" in out.stderr, out.stderr


def test_a_tree_made_before_credentials_is_secured_entry_by_entry(
        zookeeper: Ensemble, tmp_path: Path) -> None:
    """A log entry anyone may write would be replayed by the next leader."""
    path = f"/old-{tmp_path.name}"
    zk_url = f"zk://{zookeeper.hosts}{path}"
    cluster = Cluster(tmp_path)
    stranger = KazooClient(hosts=zookeeper.hosts, timeout=2.0)
    stranger.start()
    try:
        (old,) = start_masters(cluster, zk_url, 1)  # no credentials: an open tree
        detector = LeaderDetector(zk_url, session_timeout=2.0)
        try:
            wait_until(lambda: detector.current() is not None, 30.0, what="a leader")
        finally:
            detector.close()
        cluster.master_url = zk_url
        cluster.start_agent()
        cluster.wait_agents(1)
        entries = stranger.get_children(f"{path}/log")
        assert entries
        old.stop()
        creds = tmp_path / "zk.secret"
        creds.write_text("masters:s3cret\n")
        os.chmod(creds, 0o600)
        start_masters(cluster, zk_url, 1, ["--zk-credentials", str(creds)])
        wait_until(lambda: _denied(stranger, f"{path}/log/{entries[0]}"), 30.0,
                   what="old log entries secured")
        with pytest.raises(NoAuthError):
            stranger.set(f"{path}/log/{entries[0]}", b"forged")
    finally:
        stranger.stop()
        stranger.close()
        cluster.stop()


def _denied(client: KazooClient, node: str) -> bool:
    try:
        client.get(node)
    except NoAuthError:
        return True
    return False
