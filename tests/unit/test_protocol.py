"""Codec rules: round trips, validation, typed errors."""

from __future__ import annotations

import dataclasses
import types
import typing

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
    from_plain,
    peek_request_id,
    record_types,
    to_plain,
    to_wire,
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


def _sample(hint: object, fill: bool) -> object:
    """A value of ``hint``: with ``fill``, one that is not any field's default."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = next(a for a in typing.get_args(hint) if a is not type(None))
        return _sample(inner, fill) if fill else None
    if origin is list:
        return [_sample(typing.get_args(hint)[0], fill)] if fill else []
    if origin is dict:
        return {"k": _sample(typing.get_args(hint)[1], fill)} if fill else {}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _instance(hint, fill)
    return {str: "s", int: 7, float: 2.5, bool: True, bytes: b"\x01"}.get(hint, "any")  # type: ignore[call-overload]


def _instance(cls: type, fill: bool) -> object:
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if fill or required:
            values[f.name] = _sample(hints[f.name], True)
    return cls(**values)


@pytest.mark.parametrize("tag", sorted(record_types()))
@pytest.mark.parametrize("fill", [False, True])
def test_every_message_round_trips_with_defaults_left_off_the_wire(tag: str, fill: bool) -> None:
    cls = record_types()[tag]
    msg = _instance(cls, fill)  # a record refusing these samples needs its own here
    frame = encode(msg, "r")  # type: ignore[arg-type]
    assert decode(frame).message == msg
    body = msgpack.unpackb(frame)[3]
    defaults = {f.name for f in dataclasses.fields(cls)
                if f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING}
    if fill:
        assert set(body) == {f.name for f in dataclasses.fields(cls)}
    else:
        assert not set(body) & defaults, "a field at its default went on the wire"


def test_a_value_equal_to_its_default_but_of_another_type_stays_on_the_wire() -> None:
    @dataclasses.dataclass(frozen=True)
    class Probe:
        flag: object = False
        ratio: object = 0.0
        name: object = ""

    assert to_wire(Probe(flag=0, ratio=0, name="")) == {"flag": 0, "ratio": 0}
    assert to_wire(Probe()) == {}


def test_what_is_stored_keeps_every_field() -> None:
    task = TaskInfo(task_id="t", agent_id="a", resources="cpus:1")
    plain = to_plain(task)
    assert plain["env"] == {} and plain["kill_grace_period"] is None
    assert from_plain(TaskInfo, plain) == task
    assert "env" not in to_wire(task)
