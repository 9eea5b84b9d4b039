"""A new leader publishes its record as soon as its socket listens, before it builds
its core (0.25 s at 100,000 tasks): agents connect and send meanwhile, and what they
sent is handled once the loop starts (issue 13: failover within session + 3 s)."""

from __future__ import annotations

import socket

import pytest
import zmq

from mesos_zmq.master.core import Ready
from mesos_zmq.master.server import MasterConfig, MasterServer
from mesos_zmq.protocol import AgentRegistered, RegisterAgent, decode, encode


def test_a_message_sent_while_the_core_is_built_is_answered_once_it_serves() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    agent = context.socket(zmq.DEALER)
    agent.setsockopt(zmq.LINGER, 0)
    seen: list[str] = []

    def listening(address: str) -> None:
        seen.append(address)
        agent.connect(address)
        agent.send(encode(RegisterAgent(hostname="h1", resources="cpus:1;mem:64"), "r1"))

    server = MasterServer(MasterConfig(registry="in_memory", port=0), on_listening=listening)
    try:
        assert seen == [server.address]
        assert not server.core.peers  # nothing was handled before the core existed
        ready = Ready()
        for _ in range(100):  # the frame crosses ZeroMQ's I/O threads
            server._drain(ready, 1.0)
            if ready.messages:
                break
            agent.poll(10)
        server._flush(ready)
        assert agent.poll(2000)
        reply = decode(agent.recv())
        assert isinstance(reply.message, AgentRegistered) and reply.request_id == "r1"
    finally:
        agent.close(0)
        context.term()
        server.close()


def test_a_failed_publication_leaves_nothing_listening() -> None:
    bound: list[str] = []

    def refuse(address: str) -> None:
        bound.append(address)
        raise RuntimeError("another master leads")

    with pytest.raises(RuntimeError, match="another master leads"):
        MasterServer(MasterConfig(registry="in_memory", port=0), on_listening=refuse)
    port = int(bound[0].rsplit(":", 1)[1])
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", port))
