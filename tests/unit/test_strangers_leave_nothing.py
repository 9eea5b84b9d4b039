"""Strangers who subscribe and leave leave nothing behind (issue 12, point 6): an audit
left 2,000 frameworks and 2,001 roles behind."""

from __future__ import annotations

from mesos_zmq.protocol import FrameworkInfo, Heartbeat, SetQuota, Subscribe
from tests.unit.test_master_core import Harness


def test_frameworks_and_roles_of_strangers_go_when_they_leave() -> None:
    h = Harness(heartbeat_interval=1.0, missed_heartbeats=3)
    h.register_agent()
    stays = h.subscribe(peer=b"stays", roles=("keep",))
    h.send(b"ops", SetQuota(role="quota/role", guarantee="cpus:0.5"), 0.0)
    for i in range(2000):
        role = f"r{i}" if i % 2 else f"deep/r{i}/leaf"
        h.send(f"s{i}".encode(), Subscribe(framework=FrameworkInfo(
            name="stranger", roles=[role])), 0.0)
    assert len(h.core.state.frameworks) == 2001
    for now in range(1, 12):
        h.send(b"stays", Heartbeat(), float(now))
        h.tick(float(now))
    assert list(h.core.state.frameworks) == [stays]
    assert set(h.core.allocator.role_shares()) == {"keep"}
    assert len(h.core.state.removed_frameworks) <= 1000  # bounded history
    assert "quota/role" in h.core.allocator.quotas()
