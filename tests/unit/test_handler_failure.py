"""A handler that raises commits nothing and sends nothing (issue 12, point 6): the
state afterwards equals a replay of the log, and the sender hears ``internal``."""

from __future__ import annotations

from typing import Any

import pytest

from mesos_zmq.master.records import WeightsSet
from mesos_zmq.master.server import MasterConfig, MasterServer
from mesos_zmq.master.state import state_from
from mesos_zmq.protocol import (
    AgentRegistered,
    RegisterAgent,
    SetWeights,
    encode,
)
from tests.unit.fake_router import turn


@pytest.fixture
def server() -> Any:
    master = MasterServer(MasterConfig(registry="in_memory", port=0))
    yield master
    master.close()


def test_a_failing_handler_leaves_no_trace_and_the_batch_before_it_stands(
        server: MasterServer) -> None:
    def broken(peer: bytes, msg: Any, rid: str, now: float) -> None:
        server.core.commit(WeightsSet(weights={"eng": 5.0}))
        server.core.send(peer, AgentRegistered(agent_id="leak", heartbeat_interval=1.0,
                                               missed_heartbeats=5, reregistered=False))
        raise RuntimeError("a bug after the first commit")

    server.core._handlers[SetWeights] = broken
    fake = turn(server, [
        (b"agent", encode(RegisterAgent(hostname="h", resources="cpus:1;mem:64"), "r1")),
        (b"ops", encode(SetWeights(weights={"eng": 5.0}), "r2")),
    ], 1.0)
    sent = {(peer, type(msg).__name__, getattr(msg, "code", ""))
            for peer, msg in fake.sent_messages()}
    assert (b"ops", "Error", "internal") in sent
    assert (b"agent", "AgentRegistered", "") in sent  # the handler before it stands
    assert all(getattr(msg, "agent_id", "") != "leak" for _, msg in fake.sent_messages())
    recovered = server.log.recover()
    replayed = state_from(recovered.snapshot, recovered.records)
    assert replayed.snapshot() == server.core.state.snapshot()
    assert server.core.state.weights == {} and len(server.core.state.agents) == 1
    assert server.core.counters["handler_failures"] == 1
