"""Heartbeat bookkeeping shared by every peer, kept pure so its rules are testable.

Each side sends a heartbeat every ``interval`` seconds when it has sent nothing else,
and treats the other side as gone when nothing at all has arrived for
``interval * missed`` seconds. Any message counts as a sign of life.
"""

from __future__ import annotations

from dataclasses import dataclass


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
