"""Batch frames: several messages for one peer in one frame (docs/protocol.md, Batches).

A batch is transport only: its receiver handles the items in order as if each had come
alone, a bad item is refused on its own, and a batch that breaks the frame rules is
refused whole. Senders group what one turn has for a peer without reordering it.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.errors import ProtocolError
from mesos_zmq.master.core import Ready
from mesos_zmq.master.server import MasterConfig, MasterServer
from mesos_zmq.protocol import (
    BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    Acknowledge,
    AgentRegistered,
    Envelope,
    Error,
    FileData,
    GetState,
    Heartbeat,
    Message,
    Refused,
    RegisterAgent,
    State,
    batch_frame,
    batches,
    decode,
    decode_frame,
    encode,
    turn_sends,
)
from mesos_zmq.transport import ClientSocket
from tests.unit.fake_router import FakeRouter
from tests.unit.fake_router import turn as drive


def ack(n: int) -> Acknowledge:
    return Acknowledge(framework_id="f", agent_id="a", task_id=f"t{n}", uuid=f"u{n}")


def messages(frame: bytes) -> list[tuple[Message, str]]:
    out = []
    for item in decode_frame(frame):
        assert isinstance(item, Envelope), item
        out.append((item.message, item.request_id))
    return out


# --------------------------------------------------------------------------- codec


@pytest.mark.parametrize("count", [2, 15, 16, 17, 300, MAX_BATCH_MESSAGES])
def test_a_batch_decodes_to_its_messages_in_order(count: int) -> None:
    sent = [(ack(n), f"r{n}") for n in range(count)]
    frame = batch_frame([encode(m, rid, 7) for m, rid in sent])
    items = decode_frame(frame)
    assert [(e.message, e.request_id) for e in items if isinstance(e, Envelope)] == sent
    assert {e.epoch for e in items if isinstance(e, Envelope)} == {7}
    # a msgpack array of the envelopes, nothing else (what any msgpack reader sees)
    assert msgpack.unpackb(frame) == [msgpack.unpackb(encode(m, rid, 7)) for m, rid in sent]


def test_one_message_is_not_wrapped_and_single_decoders_refuse_batches() -> None:
    single = encode(ack(1), "r")
    assert batch_frame([single]) == single
    assert messages(single) == [(ack(1), "r")]
    # a reader that knows only single envelopes refuses a batch rather than misread it
    with pytest.raises(ProtocolError) as exc:
        decode(batch_frame([single, single]))
    assert exc.value.code == "malformed"
    with pytest.raises(ValueError):
        batch_frame([single] * (MAX_BATCH_MESSAGES + 1))


def test_a_bad_item_is_refused_alone_with_its_request_id() -> None:
    good = encode(ack(1), "r1")
    unknown = msgpack.packb([1, "no_such_message", "r2", {}])
    mistyped = msgpack.packb([1, "acknowledge", "r3", {"framework_id": 5}])
    nested = batch_frame([good, good])
    junk = msgpack.packb(42)
    frame = batch_frame([good, unknown, mistyped, nested, junk, encode(ack(2), "r6")])
    items = decode_frame(frame)
    assert [type(i).__name__ for i in items] == ["Envelope", "Refused", "Refused", "Refused",
                                                  "Refused", "Envelope"]
    refused = [i for i in items if isinstance(i, Refused)]
    assert [(r.error.code, r.request_id) for r in refused] == [
        ("unknown_type", "r2"), ("bad_field", "r3"), ("malformed", ""), ("malformed", "")]


def test_a_batch_beyond_the_limits_is_refused_whole() -> None:
    one = encode(ack(1))
    too_many = b"\xdc" + (MAX_BATCH_MESSAGES + 1).to_bytes(2, "big") + \
        one * (MAX_BATCH_MESSAGES + 1)
    with pytest.raises(ProtocolError) as exc:
        decode_frame(too_many)
    assert exc.value.code == "malformed"
    with pytest.raises(ProtocolError) as exc:
        decode_frame(batch_frame([one, one]), max_bytes=len(one))
    assert exc.value.code == "oversized"
    # an empty array is no batch: refused as an envelope would be
    (item,) = decode_frame(msgpack.packb([]))
    assert isinstance(item, Refused) and item.error.code == "malformed"


def test_batches_keep_order_and_stay_under_the_byte_bound() -> None:
    small = [encode(ack(n), f"r{n}") for n in range(3000)]
    big = encode(Error(code="internal", message="x" * (BATCH_BYTES + 10)))
    frames = [*small[:1500], big, *small[1500:]]
    out = list(batches(frames))
    decoded = [m for f in out for m in messages(f)]
    assert decoded == [m for f in frames for m in messages(f)]
    for frame in out:
        assert len(frame) <= BATCH_BYTES + 3 or frame == big
        assert len(decode_frame(frame)) <= MAX_BATCH_MESSAGES
    assert big in out  # alone, in its place
    assert list(batches([])) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.text(max_size=30),
                          st.integers(0, 2**31 - 1)), max_size=60),
       st.integers(min_value=60, max_value=4000))
def test_any_sequence_survives_batching(spec: list[tuple[int, str, int]],
                                        bound: int) -> None:
    frames = [encode(ack(n), rid[:200], epoch) for n, rid, epoch in spec]
    got = [(e.message, e.request_id, e.epoch) for f in batches(frames, bound)
           for e in decode_frame(f) if isinstance(e, Envelope)]
    assert got == [(ack(n), rid[:200], epoch) for n, rid, epoch in spec]


# --------------------------------------------------------------------------- the master


@pytest.fixture
def server() -> Any:
    master = MasterServer(MasterConfig(registry="in_memory", port=0))
    yield master
    master.close()


# One message of each kind a turn sends: small (batched), asked for, large.
_KINDS = {
    "small": lambda n: ack(n),
    "asked": lambda n: FileData(task_id="t", path=f"p{n}", offset=0, data=b"x", size=1),
    "large": lambda n: Error(code="x", message="y" * BATCH_BYTES, in_reply_to=f"{n}"),
}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"a", b"b", b"c"]),
                          st.sampled_from(sorted(_KINDS))), max_size=60))
def test_turn_sends_keeps_each_peers_order_and_sends_asked_and_large_alone(
        plan: list[tuple[bytes, str]]) -> None:
    sends = []
    for n, (peer, kind) in enumerate(plan):
        msg = _KINDS[kind](n)
        sends.append((peer, msg, f"r{n}", encode(msg, f"r{n}")))
    out = list(turn_sends(sends))
    for peer in (b"a", b"b", b"c"):
        wanted = [(msg, rid) for p, msg, rid, _ in sends if p == peer]
        got = [item for p, frame, _, _ in out if p == peer for item in messages(frame)]
        assert got == wanted
    for _peer, frame, msg, rid in out:
        if msg is None:  # a batch: small messages only, within the limits
            assert all(isinstance(m, Acknowledge) for m, _ in messages(frame))
            assert len(frame) <= BATCH_BYTES + 16
        else:  # alone: the frame is exactly that message's
            assert not isinstance(msg, Acknowledge)
            assert messages(frame) == [(msg, rid)]
    # no more frames than needed: consecutive small messages for a peer share one
    runs = 0
    for peer in (b"a", b"b", b"c"):
        kinds = [kind for p, kind in plan if p == peer]
        runs += sum(1 for i, k in enumerate(kinds)
                    if k == "small" and (i == 0 or kinds[i - 1] != "small"))
        runs += sum(1 for k in kinds if k != "small")
    assert len(out) == runs


def turn(server: MasterServer, frames: list[tuple[bytes, bytes]]) -> FakeRouter:
    return drive(server, frames, time.monotonic())


def test_the_master_handles_each_item_of_a_batch_and_refuses_the_bad_one(
        server: MasterServer) -> None:
    register = encode(RegisterAgent(hostname="h1", resources="cpus:1;mem:64"), "r1")
    unknown = msgpack.packb([1, "no_such_message", "r2", {}])
    register2 = encode(RegisterAgent(hostname="h2", resources="cpus:2;mem:64"), "r3")
    fake = turn(server, [(b"agent", batch_frame([register, unknown])),
                         (b"agent2", batch_frame([register2, encode(Heartbeat())]))])
    heard = {(peer, type(m).__name__, rid, getattr(m, "code", ""))
             for peer, frame in fake.sent for m, rid in messages(frame)}
    assert (b"agent", "AgentRegistered", "r1", "") in heard
    assert (b"agent", "Error", "r2", "unknown_type") in heard
    assert (b"agent2", "AgentRegistered", "r3", "") in heard
    assert len(server.core.state.agents) == 2
    assert server.core.counters.get("refused_unknown_type") == 1
    errors = [m for _, frame in fake.sent for m, _ in messages(frame) if isinstance(m, Error)]
    assert [e.in_reply_to for e in errors] == ["r2"]


def test_what_a_turn_has_for_one_peer_goes_as_one_frame_in_order(
        server: MasterServer) -> None:
    ready = Ready()
    for n in range(40):
        ready.messages.append((b"fw", ack(n), ""))
        ready.messages.append((b"other", ack(100 + n), ""))
    # an asked reply goes alone, after what came before it for that peer
    ready.messages.append((b"fw", State(state={"frameworks": []}), "ask"))
    ready.messages.append((b"fw", ack(99), ""))
    fake = turn_flush(server, ready)
    to_fw = [frame for peer, frame in fake.sent if peer == b"fw"]
    assert len(to_fw) == 3
    assert [m for m, _ in messages(to_fw[0])] == [ack(n) for n in range(40)]
    assert [type(m).__name__ for m, _ in messages(to_fw[1])] == ["State"]
    assert [m for m, _ in messages(to_fw[2])] == [ack(99)]
    to_other = [frame for peer, frame in fake.sent if peer == b"other"]
    assert [m for f in to_other for m, _ in messages(f)] == [ack(100 + n) for n in range(40)]
    assert len(to_other) == 1


def turn_flush(server: MasterServer, ready: Ready) -> FakeRouter:
    return drive(server, [], time.monotonic(), ready)


# --------------------------------------------------------------------------- clients


def test_a_client_hears_each_item_and_ignores_stale_and_bad_ones() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    client = ClientSocket(context, f"127.0.0.1:{port}")
    try:
        client.send_all([encode(GetState(), "hello")])
        assert router.poll(5000)
        identity, hello = router.recv_multipart()
        assert messages(hello) == [(GetState(), "hello")]
        first = encode(AgentRegistered(agent_id="a", heartbeat_interval=1.0,
                                       missed_heartbeats=5), "", 5)
        stale = encode(ack(1), "", 4)
        bad = msgpack.packb([1, "acknowledge", "x", {"uuid": 3}])
        last = encode(ack(2), "", 5)
        router.send_multipart([identity, batch_frame([first, stale, bad, last])])
        got: list[Any] = []
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            client.poll(100)
            got.extend(e.message for e in client.receive_all())
        assert got == [decode(first).message, ack(2)]
        assert client.ignored_stale == 1
    finally:
        client.close()
        router.close(linger=0)
        context.term()


def test_a_turn_ends_after_max_batch_messages_not_frames(
        server: MasterServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn is bounded by the messages it handles, however they were framed: three
    frames of three registrations each, with room for five messages a turn."""
    monkeypatch.setattr("mesos_zmq.master.server.MAX_BATCH", 5)
    frames = [(f"agent{n}".encode(), batch_frame([
        encode(RegisterAgent(hostname=f"h{n}{k}", resources="cpus:1;mem:64"), f"r{n}{k}")
        for k in range(3)])) for n in range(3)]
    real = server.server
    fake = FakeRouter(frames)
    server.server = fake  # type: ignore[assignment]
    try:
        ready = Ready()
        assert server._drain(ready, time.monotonic()) is False  # stopped: more queued
        assert len(fake.inbox) == 1  # two frames (six messages) read, one left
        assert server._drain(ready, time.monotonic()) is True
    finally:
        server.server = real


class _NoKeys:
    """A ZAP handler that vouches for nobody."""

    def still_valid(self, user: str) -> bool:
        return False


def test_an_unauthenticated_batch_gets_one_refusal_and_is_not_decoded(
        server: MasterServer) -> None:
    bad = msgpack.packb([1, "no_such_message", "r2", {}])
    frame = batch_frame([encode(RegisterAgent(hostname="h", resources="cpus:1"), "r1"), bad])
    server.zap = _NoKeys()  # type: ignore[assignment]
    try:
        fake = turn(server, [(b"stranger", frame)])
    finally:
        server.zap = None
    (reply,) = [m for _, f in fake.sent for m, _ in messages(f)]
    assert isinstance(reply, Error) and reply.code == "unauthorized"
    assert server.core.counters.get("refused_unauthenticated") == 1
    assert not [k for k in server.core.counters if k.startswith("refused_") and
                k != "refused_unauthenticated"]  # its items were never looked at
    assert not server.core.state.agents


def test_a_frames_refused_items_are_answered_together_and_a_long_batch_whole(
        server: MasterServer) -> None:
    junk = [msgpack.packb([1, "no_such_message", f"r{n}", {}]) for n in range(300)]
    one = encode(Heartbeat())
    count = MAX_BATCH_MESSAGES + 1
    too_long = b"\xdc" + count.to_bytes(2, "big") + one * count
    fake = turn(server, [(b"a", batch_frame(junk)), (b"b", too_long)])
    to_a = [f for peer, f in fake.sent if peer == b"a"]
    assert len(to_a) == 1  # 300 errors, one frame
    assert [m.in_reply_to for m, _ in messages(to_a[0])] == [f"r{n}" for n in range(300)]
    assert server.core.counters.get("refused_unknown_type") == 300
    (to_b,) = [f for peer, f in fake.sent if peer == b"b"]
    ((error, _),) = messages(to_b)
    assert isinstance(error, Error) and error.code == "malformed"


def test_a_client_stops_reading_frames_once_it_read_its_limit_of_messages() -> None:
    """A backlog of batches does not keep a client from its loop (and its sends): the
    limit counts messages, and a frame is read whole."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    # inproc: what the router sends is in the client's queue when send returns
    router.bind("inproc://limit-test")
    client = ClientSocket(context, "inproc://limit-test")
    try:
        client.send(encode(Heartbeat()))
        assert router.poll(5000)
        identity, _ = router.recv_multipart()
        for b in range(3):
            router.send_multipart([identity, batch_frame(
                [encode(ack(b * 1000 + n)) for n in range(400)])])
        first = list(client.receive_all(limit=500))
        assert len(first) == 800  # two frames: the second began before the limit
        rest = list(client.receive_all(limit=500))
        assert [e.message for e in first + rest] == [
            ack(b * 1000 + n) for b in range(3) for n in range(400)]
    finally:
        client.close()
        router.close(linger=0)
        context.term()


def test_a_small_asked_reply_is_sent_as_asked_and_a_batch_is_not(
        server: MasterServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replies a peer asked for count against its unsent bytes whatever their size
    (MasterServer._send's ``asked``); a batch of small messages does not."""
    calls: list[tuple[bytes, bool, str, str | None]] = []
    monkeypatch.setattr(server, "_send", lambda peer, frame, asked, kind, rid:
                        calls.append((peer, asked, kind, rid)))
    ready = Ready()
    ready.messages.append((b"fw", ack(1), ""))
    ready.messages.append((b"fw", ack(2), ""))
    ready.messages.append((b"fw", State(state={"frameworks": []}), "ask"))
    server._flush(ready)
    assert calls == [(b"fw", False, "batch", None), (b"fw", True, "state", "ask")]


def test_a_refusal_goes_out_in_its_place_among_the_replies(server: MasterServer) -> None:
    """As if each item had come alone: the reply to the registration before the bad
    item, then the refusal, then the reply to the one after it."""
    first = encode(RegisterAgent(hostname="h1", resources="cpus:1;mem:64"), "r1")
    bad = msgpack.packb([1, "no_such_message", "r2", {}])
    again = encode(RegisterAgent(hostname="h1", resources="cpus:1;mem:64"), "r3")
    fake = turn(server, [(b"peer", batch_frame([first, bad, again])),
                         (b"peer", b"\xc1 not msgpack")])
    heard = [(type(m).__name__, rid) for _, frame in fake.sent for m, rid in messages(frame)]
    assert heard == [("AgentRegistered", "r1"), ("Error", "r2"), ("AgentRegistered", "r3"),
                     ("Error", "")]
