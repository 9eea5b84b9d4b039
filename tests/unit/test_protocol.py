"""Codec rules: round trips, validation, typed errors."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.errors import ProtocolError
from mesos_zmq.protocol import (
    Accept,
    Error,
    FileData,
    FrameworkInfo,
    Subscribe,
    TaskInfo,
    decode,
    encode,
    error_frame,
    peek_request_id,
    record_types,
)


def test_round_trip_keeps_nested_records_and_request_id() -> None:
    msg = Accept(framework_id="f", offer_ids=["o1", "o2"], refuse_seconds=2,
                 tasks=[TaskInfo(task_id="t", agent_id="a", resources="cpus:1",
                                 env={"K": "V"}, kill_grace_period=1.5)])
    env = decode(encode(msg, "r1"))
    assert env.message == msg and env.request_id == "r1"
    assert isinstance(env.message.refuse_seconds, float)


def test_defaults_fill_missing_optional_fields_and_unknown_fields_are_ignored() -> None:
    frame = msgpack.packb([1, "subscribe", "", {"framework": {"name": "x", "future": 1}}])
    env = decode(frame)
    assert isinstance(env.message, Subscribe)
    assert env.message.framework == FrameworkInfo(name="x")


def test_bytes_field() -> None:
    msg = FileData(task_id="t", path="stdout", offset=0, data=b"\x00\xff", size=2, done=True)
    assert decode(encode(msg)).message == msg


@pytest.mark.parametrize(
    "raw,code",
    [
        ([2, "heartbeat", "", {}], "bad_version"),
        ([1, "nope", "", {}], "unknown_type"),
        ([1, "heartbeat", "", {"seq": "x"}], "bad_field"),
        ([1, "heartbeat", "", {"seq": 1.5}], "bad_field"),
        ([1, "error", "", {"code": "x"}], "bad_field"),
        ([1, "accept", "", {"framework_id": "f", "offer_ids": "o"}], "bad_field"),
        ([1, "accept", "", {"framework_id": "f", "offer_ids": [], "tasks": [{"task_id": 1}]}],
         "bad_field"),
        ({"a": 1}, "malformed"),
        ([1, "heartbeat", 5, {}], "malformed"),
    ],
)
def test_invalid_frames_raise_typed_errors(raw: object, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(msgpack.packb(raw))
    assert info.value.code == code


def test_oversized_frame_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError) as info:
        decode(b"\x00" * 101, max_bytes=100)
    assert info.value.code == "oversized"


def test_error_frame_and_peek() -> None:
    frame = msgpack.packb([1, "nope", "req-7", {}])
    assert peek_request_id(frame) == "req-7"
    assert peek_request_id(b"\xc1") == ""
    reply = decode(error_frame(ProtocolError("unknown_type", "no such type"), "req-7"))
    assert reply.message == Error(code="unknown_type", message="no such type",
                                  in_reply_to="req-7")


def test_records_are_frozen_and_tagged_uniquely() -> None:
    types = record_types()
    assert all(tag == cls.TYPE for tag, cls in types.items())
    msg = Error(code="x", message="y")
    with pytest.raises(AttributeError):
        msg.code = "z"  # type: ignore[misc]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_protocol_error(data: bytes) -> None:
    try:
        decode(data)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                    | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=4)
                    | st.dictionaries(st.text(max_size=5), c, max_size=4), max_leaves=20),
       st.sampled_from(sorted(record_types())))
def test_random_bodies_never_raise_anything_but_protocol_error(body: object, tag: str) -> None:
    try:
        decode(msgpack.packb([1, tag, "", body]))
    except ProtocolError:
        pass
