"""Acceptance 6: hostile frames never crash the master or change its state."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgpack
import pytest
import zmq

from mesos_zmq.protocol import (
    PROTOCOL_VERSION,
    Envelope,
    Error,
    FrameworkInfo,
    GetState,
    RegisterAgent,
    State,
    Subscribe,
    decode,
    decode_frame,
    encode,
)
from tests.cluster import Cluster


def pack(obj: object) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


V = PROTOCOL_VERSION
HOSTILE: list[tuple[str, Callable[[], list[bytes]], str]] = [
    ("empty frame", lambda: [b""], "malformed"),
    ("not msgpack", lambda: [b"\xc1\xc1\xc1garbage"], "malformed"),
    ("truncated msgpack", lambda: [pack([V, "heartbeat", "r", {}])[:-2]], "malformed"),
    ("envelope not a list", lambda: [pack({"type": "heartbeat"})], "malformed"),
    ("envelope too short", lambda: [pack([V, "heartbeat"])], "malformed"),
    ("envelope too long", lambda: [pack([V, "heartbeat", "r", {}, 5, 6])], "malformed"),
    ("epoch not an integer", lambda: [pack([V, "heartbeat", "r", {}, "x"])], "malformed"),
    ("version from the future", lambda: [pack([99, "heartbeat", "r", {}])], "bad_version"),
    ("version is a string", lambda: [pack(["1", "heartbeat", "r", {}])], "malformed"),
    ("unknown type", lambda: [pack([V, "launch_missiles", "r", {}])], "unknown_type"),
    ("type not a string", lambda: [pack([V, 7, "r", {}])], "malformed"),
    ("body not a map", lambda: [pack([V, "subscribe", "r", [1, 2]])], "malformed"),
    ("missing field", lambda: [pack([V, "subscribe", "r", {}])], "bad_field"),
    ("wrong field type", lambda: [pack([V, "register_agent", "r",
                                         {"hostname": 5, "resources": "cpus:1"}])], "bad_field"),
    ("bool for int", lambda: [pack([V, "heartbeat", "r", {"seq": True}])], "bad_field"),
    ("nested record wrong", lambda: [pack([V, "subscribe", "r", {"framework": "x"}])],
     "bad_field"),
    ("list of wrong items", lambda: [pack([V, "decline", "r",
                                           {"framework_id": "f", "offer_ids": [1, 2]}])],
     "bad_field"),
    ("nan float", lambda: [pack([V, "decline", "r", {"framework_id": "f", "offer_ids": [],
                                                      "refuse_seconds": float("nan")}])],
     "bad_field"),
    ("oversized frame", lambda: [pack([V, "heartbeat", "r", {"pad": "x" * (5 << 20)}])],
     "oversized"),
    ("two frames", lambda: [pack([V, "heartbeat", "r", {}]), b"extra"], "malformed"),
    ("request id too long", lambda: [pack([V, "heartbeat", "r" * 500, {}])], "malformed"),
    ("invalid resources in registration",
     lambda: [encode(RegisterAgent(hostname="h", resources="cpus:-5"))], "invalid"),
    ("message only the master sends", lambda: [pack([V, "offers", "r", {"offers": []}])],
     "unexpected"),
    ("accept before subscribing",
     lambda: [pack([V, "accept", "r", {"framework_id": "f", "offer_ids": ["o"]}])],
     "not_registered"),
    ("deep nesting", lambda: [pack([V, "get_state", "r", {"x": [[[[[[[[[[1]]]]]]]]]]}])], ""),
]


def comparable(state: dict) -> dict:
    return {k: state[k] for k in ("frameworks", "agents", "tasks")}


@pytest.mark.integration
def test_master_survives_hostile_frames(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_agent()
    cluster.wait_agents(1)
    before = comparable(cluster.state())
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(cluster.master_url)
    kinds = 0
    try:
        for name, make, code in HOSTILE:
            sock.send_multipart(make())
            if not sock.poll(5000):
                raise AssertionError(f"{name}: no reply from the master")
            reply = decode(sock.recv())
            if code:
                assert isinstance(reply.message, Error), name
                assert reply.message.code == code, (name, reply.message)
                kinds += 1
            else:
                assert isinstance(reply.message, State), name
        assert kinds >= 15
        # Still serving, nothing changed, and a well-formed sender still gets through.
        assert comparable(cluster.state()) == before
        sock.send(encode(Subscribe(framework=FrameworkInfo(name="ok")), "good"))
        deadline = time.monotonic() + 5
        got = None
        while time.monotonic() < deadline and got is None:
            if sock.poll(1000):
                for env in decode_frame(sock.recv()):  # Subscribed may share a batch
                    if isinstance(env, Envelope) and env.request_id == "good":
                        got = env.message
        assert got is not None and got.TYPE == "subscribed"
        sock.send(encode(GetState(), "s"))
        assert cluster.master is not None and cluster.master.alive()
    finally:
        sock.close()
        ctx.term()
