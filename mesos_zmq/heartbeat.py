"""Heartbeat bookkeeping shared by every peer, kept pure so its rules are testable.

Each side sends a heartbeat every ``interval`` seconds when it has sent nothing else,
and treats the other side as gone when nothing at all has arrived for
``interval * missed`` seconds. Any message counts as a sign of life.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: agent heartbeats a second a master aims at, by default (see :func:`scaled_interval`)
AGENT_HEARTBEATS_PER_SECOND = 1000.0
#: how far below a step's threshold the agent count must fall before the interval
#: comes down a step (agents joining and leaving near a threshold retune nobody)
_HYSTERESIS = 0.9

#: the heartbeat settings a peer takes from a master: a day between beats, a million
#: missed beats; beyond, a silent master would never be noticed
MAX_HEARTBEAT_INTERVAL = 86400.0
MAX_MISSED_HEARTBEATS = 1_000_000


def settings_problem(interval: float, missed: int) -> str | None:
    """Why a master's heartbeat settings cannot make a monitor, or None.

    A zero or negative interval cannot even be built; a NaN or a huge one would never
    expire, so the peer would never notice its master went silent.
    """
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
            or not math.isfinite(interval) or not 0 < interval <= MAX_HEARTBEAT_INTERVAL:
        return (f"heartbeat interval {interval!r} is not within (0, "
                f"{MAX_HEARTBEAT_INTERVAL:g}] seconds")
    if isinstance(missed, bool) or not isinstance(missed, int) \
            or not 1 <= missed <= MAX_MISSED_HEARTBEATS:
        return f"missed heartbeats {missed!r} is not within 1..{MAX_MISSED_HEARTBEATS}"
    return None


def scaled_interval(base: float, peers: int, rate: float, current: float | None = None) -> float:
    """The interval ``peers`` agents beat at so that together they send at most ``rate``
    heartbeats a second, never below ``base`` (``rate`` <= 0: always ``base``).

    Why: an idle master's work is heartbeats, one each way per agent and interval (about
    25-50 us each on a 2-core host): 10,000 agents every 2 s took a quarter of a core. As
    Nomad does (``max_heartbeats_per_second``), the interval grows with the cluster
    instead, so the heartbeat load stays bounded; the time to notice a silent agent
    (interval x missed) grows with it. It moves in whole multiples of ``base``, and comes
    down a step only once the count is a tenth below that step's threshold (``current``
    is the interval in use), so a cluster hovering at a threshold does not retune every
    agent back and forth.
    """
    if rate <= 0 or peers <= 0:
        return base
    per_step = rate * base  # agents one multiple of base can hold
    step = max(1, math.ceil(peers / per_step))
    if current is not None:
        held = round(current / base)
        if step < held and peers > (held - 1) * per_step * _HYSTERESIS:
            step = held
    return base * step


@dataclass(slots=True)
class HeartbeatMonitor:
    interval: float
    missed: int
    last_received: float = 0.0
    last_sent: float = 0.0

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("heartbeat interval must be positive")
        if self.missed < 1:
            raise ValueError("missed heartbeat limit must be at least 1")

    def reset(self, now: float) -> None:
        """Start counting afresh (on connect)."""
        self.last_received = now
        self.last_sent = now

    def received(self, now: float) -> None:
        self.last_received = now

    def sent(self, now: float) -> None:
        self.last_sent = now

    def send_due(self, now: float) -> bool:
        return now - self.last_sent >= self.interval

    def expired(self, now: float) -> bool:
        return now - self.last_received > self.interval * self.missed

    @property
    def timeout(self) -> float:
        return self.interval * self.missed
