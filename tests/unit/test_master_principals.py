"""With keys, the master judges every message by the principal its handshake proved
(issue 12, points 1 and 2): what each kind may send, and who owns which id."""

from __future__ import annotations

from typing import Any

from mesos_zmq.auth.principal import Principal
from mesos_zmq.protocol import (
    AgentRegistered,
    Error,
    FrameworkInfo,
    GetState,
    Message,
    RegisterAgent,
    ReregisterAgent,
    SetQuota,
    SetWeights,
    State,
    Subscribe,
    Subscribed,
)
from tests.unit.test_master_core import Harness

AGENT_A = Principal("agent-a", "agent")
AGENT_B = Principal("agent-b", "agent")
FW_A = Principal("fw-a", "framework")
FW_B = Principal("fw-b", "framework")
OPS = Principal("alice", "operator")


def send(h: Harness, peer: bytes, msg: Message, who: Principal | None,
         now: float = 0.0) -> list[Any]:
    out = h._apply(h.core.handle(peer, msg, "rid", now, who))
    return [m for p, m, _ in out if p == peer]


def subscribe(h: Harness, peer: bytes, who: Principal, framework_id: str = "") -> Any:
    (reply, *_) = send(h, peer, Subscribe(framework=FrameworkInfo(
        name="f", framework_id=framework_id)), who)
    return reply


def refused(replies: list[Any], code: str = "unauthorized") -> str:
    assert len(replies) == 1 and isinstance(replies[0], Error), replies
    assert replies[0].code == code, replies[0]
    return replies[0].message


def test_each_kind_sends_only_its_own_messages() -> None:
    h = Harness()
    message = refused(send(h, b"a", Subscribe(framework=FrameworkInfo(name="x")), AGENT_A))
    assert "agent 'agent-a' may not send subscribe" in message
    refused(send(h, b"f", SetWeights(weights={"eng": 2.0}), FW_A))
    refused(send(h, b"f", SetQuota(role="eng", guarantee="cpus:1"), FW_A))
    refused(send(h, b"o", RegisterAgent(hostname="h", resources="cpus:1"), OPS))
    refused(send(h, b"a", GetState(), AGENT_A))
    assert not h.core.state.frameworks and not h.core.state.agents
    assert h.core.state.weights == {} and h.core.state.quotas == {}
    assert isinstance(send(h, b"o", GetState(), OPS)[0], State)
    assert isinstance(send(h, b"f", GetState(), FW_A)[0], State)
    (reply,) = send(h, b"o", SetWeights(weights={"eng": 2.0}), OPS)
    assert not isinstance(reply, Error)
    assert h.core.state.weights == {"eng": 2.0}


def test_a_framework_id_belongs_to_the_principal_that_created_it() -> None:
    h = Harness()
    mine = subscribe(h, b"fa", FW_A)
    assert isinstance(mine, Subscribed)
    fid = mine.framework_id
    assert h.core.state.owner("framework", fid) == "fw-a"
    # another principal cannot take it over (its tasks, updates and offers)
    message = refused([subscribe(h, b"fb", FW_B, fid)])
    assert fid in message and "another principal" in message
    assert h.core.framework_runtimes[fid].peer == b"fa"
    # nor choose an id of its own
    refused([subscribe(h, b"fb", FW_B, "my-own-id")], "invalid")
    assert "my-own-id" not in h.core.state.frameworks
    # its owner fails over to a new connection as before
    again = subscribe(h, b"fa2", FW_A, fid)
    assert isinstance(again, Subscribed) and again.reregistered


def test_ownership_survives_a_master_restart_from_the_log() -> None:
    h = Harness()
    fid = subscribe(h, b"fa", FW_A).framework_id
    (reply,) = send(h, b"a", RegisterAgent(hostname="h", resources="cpus:1;mem:64"), AGENT_A)
    agent_id = reply.agent_id
    restarted = Harness(log=h.log, now=1.0)
    assert restarted.core.state.owner("framework", fid) == "fw-a"
    assert restarted.core.state.owner("agent", agent_id) == "agent-a"
    refused([subscribe(restarted, b"fb", FW_B, fid)])
    refused(send(restarted, b"b", ReregisterAgent(agent_id=agent_id, hostname="h",
                                                  resources="cpus:1;mem:64"), AGENT_B))
    # and from a snapshot
    h.log.write_snapshot(h.core.state.snapshot())
    from_snapshot = Harness(log=h.log, now=2.0)
    assert from_snapshot.core.state.owner("agent", agent_id) == "agent-a"


def test_an_agent_id_cannot_be_taken_by_another_agent_principal() -> None:
    h = Harness()
    (reply,) = send(h, b"a", RegisterAgent(hostname="h", resources="cpus:1;mem:64"), AGENT_A)
    assert isinstance(reply, AgentRegistered)
    agent_id = reply.agent_id
    stolen = send(h, b"evil", ReregisterAgent(agent_id=agent_id, hostname="h",
                                              resources="cpus:64;mem:65536"), AGENT_B)
    refused(stolen)
    assert h.core.state.agents[agent_id].resources == "cpus:1;mem:64"
    assert h.core.agent_runtimes[agent_id].peer == b"a"
    # the real agent re-registers on a new connection
    (back,) = send(h, b"a2", ReregisterAgent(agent_id=agent_id, hostname="h",
                                             resources="cpus:1;mem:64"), AGENT_A)
    assert isinstance(back, AgentRegistered)


def test_a_connection_id_reused_by_another_principal_does_not_inherit_its_binding() -> None:
    h = Harness()
    fid = subscribe(h, b"same-id", FW_A).framework_id
    # a different principal shows up under the same routing id (the client picks it)
    (reply,) = send(h, b"same-id", SetWeights(weights={"x": 1.0}), OPS)
    assert not isinstance(reply, Error)
    assert h.core.framework_runtimes[fid].peer is None  # the binding went with FW_A
    assert b"same-id" not in h.core.peers


def test_without_keys_nothing_changes() -> None:
    h = Harness()
    fid = h.subscribe()
    assert h.core.state.owners == {}
    # anyone may fail over to any id and choose one, as before keys
    assert h.subscribe(peer=b"other", framework_id=fid) == fid
    assert h.subscribe(peer=b"third", framework_id="chosen") == "chosen"
    assert "owners" not in h.core.state.snapshot()
