"""Per-principal rate limits, in the shape of Mesos's ``--rate_limits``.

Pure (the master core asks with its ``now``). The file is JSON::

    {"limits": [{"principal": "analytics", "qps": 50, "capacity": 500},
                {"principal": "batch", "qps": 5}],
     "aggregate_default_qps": 100, "aggregate_default_capacity": 1000}

Each listed principal gets a token bucket: ``qps`` messages a second, bursts up to
``capacity`` (default: one second's worth). Principals not listed share one bucket of
the aggregate defaults, when given; without them they are not limited, as in Mesos.
A message over the limit is not handled: its sender gets ``rate_limited`` with the
seconds to wait, so nothing is dropped without a word. Heartbeats are never limited
(they keep a connection alive, and cost nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesos_zmq.auth.json_file import load_json
from mesos_zmq.errors import AuthError

#: bounds a rate limit may take
_MAX_QPS = 1e9


@dataclass(slots=True)
class Bucket:
    qps: float
    capacity: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> float:
        """0.0 if a message may pass now (and count it), else seconds until one may."""
        if self.tokens < 0:
            self.tokens, self.updated = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.qps)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.qps


@dataclass(slots=True)
class RateLimits:
    """Limits per principal; :meth:`admit` answers for one message."""

    limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    default: tuple[float, float] | None = None
    _buckets: dict[str, Bucket] = field(default_factory=dict)
    _shared: Bucket | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "rate limits") -> RateLimits:
        if not isinstance(data, dict) or set(data) - {
                "limits", "aggregate_default_qps", "aggregate_default_capacity"}:
            raise AuthError(f"{where}: expected {{\"limits\": [...], "
                            "\"aggregate_default_qps\": ..., "
                            "\"aggregate_default_capacity\": ...}")
        limits: dict[str, tuple[float, float]] = {}
        for number, entry in enumerate(data.get("limits", []), 1):
            at = f"{where}: limit {number}"
            if not isinstance(entry, dict) or not isinstance(entry.get("principal"), str) \
                    or set(entry) - {"principal", "qps", "capacity"}:
                raise AuthError(f"{at}: give principal, qps and optionally capacity")
            qps = _rate(entry.get("qps"), f"{at} qps")
            limits[entry["principal"]] = (qps, _capacity(entry.get("capacity"), qps, at))
        default = None
        if "aggregate_default_qps" in data:
            qps = _rate(data["aggregate_default_qps"], f"{where}: aggregate_default_qps")
            default = (qps, _capacity(data.get("aggregate_default_capacity"), qps, where))
        return cls(limits, default)

    @classmethod
    def load(cls, path: Path | str) -> RateLimits:
        data = load_json(path, "rate limits")
        return cls.from_json(data, str(path))

    def admit(self, principal: str, now: float) -> float:
        """0.0 when ``principal`` may send one more message now, else seconds to wait."""
        bucket = self._buckets.get(principal)
        if bucket is None:
            limit = self.limits.get(principal)
            if limit is None:
                if self.default is None:
                    return 0.0
                if self._shared is None:
                    self._shared = Bucket(*self.default)
                return self._shared.take(now)
            bucket = self._buckets[principal] = Bucket(*limit)
        return bucket.take(now)


def _rate(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0 < value <= _MAX_QPS:
        raise AuthError(f"{where}: a rate in messages a second, above 0 and at most "
                        f"{_MAX_QPS:g}")
    return float(value)


def _capacity(value: Any, qps: float, where: str) -> float:
    if value is None:
        return max(1.0, qps)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 1 <= value <= _MAX_QPS:
        raise AuthError(f"{where}: capacity is a number of messages, at least 1")
    return float(value)
