"""Per-principal rate limits (issue 12, point 7): over the limit the sender hears so and
when to retry; nothing is dropped without a word; heartbeats always pass."""

from __future__ import annotations

import pytest

from mesos_zmq.auth.principal import Principal
from mesos_zmq.auth.rate_limits import RateLimits
from mesos_zmq.errors import AuthError
from mesos_zmq.protocol import Error, GetState, Heartbeat, State
from tests.unit.test_master_core import Harness
from tests.unit.test_master_principals import send

NOISY = Principal("noisy", "operator")
CALM = Principal("calm", "operator")


def test_a_bucket_refills_at_its_rate_and_says_when_to_retry() -> None:
    limits = RateLimits.from_json({"limits": [{"principal": "p", "qps": 2, "capacity": 3}]})
    assert [limits.admit("p", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limits.admit("p", 0.0) == pytest.approx(0.5)
    assert limits.admit("p", 0.5) == 0.0  # one token back after half a second
    assert limits.admit("unlisted", 0.0) == 0.0  # no aggregate default: unlimited


def test_unlisted_principals_share_the_aggregate_default() -> None:
    limits = RateLimits.from_json({"aggregate_default_qps": 1,
                                   "aggregate_default_capacity": 2})
    assert limits.admit("a", 0.0) == 0.0 and limits.admit("b", 0.0) == 0.0
    assert limits.admit("c", 0.0) > 0


@pytest.mark.parametrize("data,needle", [
    ({"limits": [{"principal": "p", "qps": 0}]}, "above 0"),
    ({"limits": [{"principal": "p", "qps": float("nan")}]}, "above 0"),
    ({"limits": [{"principal": "p", "qps": 1, "capacity": 0.5}]}, "at least 1"),
    ({"limits": [{"qps": 1}]}, "give principal"),
    ({"limit": []}, "expected"),
])
def test_bad_limits_are_refused(data: object, needle: str) -> None:
    with pytest.raises(AuthError, match=needle):
        RateLimits.from_json(data)


def test_the_master_refuses_what_is_over_the_limit_and_says_when_to_retry() -> None:
    h = Harness(rate_limits=RateLimits.from_json(
        {"limits": [{"principal": "noisy", "qps": 1, "capacity": 2}]}))
    replies = [send(h, b"n", GetState(), NOISY, now=0.0)[0] for _ in range(5)]
    assert [type(r).__name__ for r in replies] == ["State", "State", "Error", "Error", "Error"]
    over = replies[2]
    assert isinstance(over, Error) and over.code == "rate_limited"
    assert "retry in 1.00 s" in over.message and over.in_reply_to == "rid"
    beats = send(h, b"n", Heartbeat(), NOISY, now=0.0)  # never limited
    assert all(getattr(m, "code", "") != "rate_limited" for m in beats)
    assert isinstance(send(h, b"c", GetState(), CALM, now=0.0)[0], State)
    assert isinstance(send(h, b"n", GetState(), NOISY, now=1.0)[0], State)


def test_agents_are_not_limited_and_errors_are() -> None:
    from mesos_zmq.protocol import RegisterAgent

    h = Harness(rate_limits=RateLimits.from_json({"aggregate_default_qps": 1,
                                                  "aggregate_default_capacity": 2}))
    agent = Principal("agent-1", "agent")
    for _ in range(2):
        send(h, b"n", GetState(), NOISY, now=0.0)
    (reply,) = send(h, b"a", RegisterAgent(hostname="h", resources="cpus:1"), agent, now=0.0)
    assert not isinstance(reply, Error), reply  # the framework's use does not starve agents
    (over,) = send(h, b"n", Error(code="x", message="y"), NOISY, now=0.0)
    assert isinstance(over, Error) and over.code == "rate_limited"
