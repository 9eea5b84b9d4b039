"""deploy/'s security examples are valid, and the units hand the daemons their keys."""

from __future__ import annotations

import json
from pathlib import Path

from mesos_zmq.auth.acls import Acls
from mesos_zmq.auth.rate_limits import RateLimits

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_acl_and_rate_limit_examples_load() -> None:
    acls = Acls.load(DEPLOY / "acls.json.example")
    assert acls.allows("register_frameworks", "analytics", "analytics")
    assert not acls.allows("register_frameworks", "analytics", "prod")
    assert not acls.allows("update_quotas", "analytics", "analytics")
    assert acls.allows("drain_agents", "alice", "host-1")
    RateLimits.load(DEPLOY / "rate-limits.json.example")
    entries = json.loads((DEPLOY / "credentials.json.example").read_text())["credentials"]
    assert {e["kind"] for e in entries} == {"agent", "framework", "operator"}


def test_the_units_load_keys_as_credentials() -> None:
    master = (DEPLOY / "mesos-zmq-master.service").read_text()
    agent = (DEPLOY / "mesos-zmq-agent.service").read_text()
    assert "LoadCredential=master.key_secret:" in master
    assert "Environment=MESOS_ZMQ_KEY=%d/master.key_secret" in master
    assert "Environment=MESOS_ZMQ_CREDENTIALS=%d/credentials.json" in master
    assert "Environment=MESOS_ZMQ_KEY=%d/agent.key_secret" in agent
    assert "Environment=MESOS_ZMQ_MASTER_KEY=%d/master.key" in agent
