"""Task health-check rules: when to check, what to report, when to kill (pure).

Shared by the master (which refuses an invalid check at launch) and the task
supervisor (which runs the checks, see :mod:`mesos_zmq.agent.health`).

The policy follows Mesos:

* the first check is due ``delay`` seconds after launch, each later one ``interval``
  seconds after the previous check was recorded;
* a success resets the run of failures; the first success, and every success that
  follows a reported failure, reports ``healthy=True``;
* a failure inside ``grace_period`` seconds of launch, before any check has succeeded,
  is ignored: it neither counts nor reports;
* every other failure counts and reports ``healthy=False``; when ``consecutive_failures``
  (if above 0) failures in a row have counted, the verdict says ``kill`` and the policy
  stops scheduling checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mesos_zmq.protocol import HealthCheck

COMMAND = "COMMAND"
TCP = "TCP"
HTTP = "HTTP"
KINDS = (COMMAND, TCP, HTTP)



# --------------------------------------------------------------------------- validation


def _non_negative(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def check_health_check(hc: HealthCheck) -> str | None:
    """Return what is wrong with ``hc`` in words a user can act on, or ``None``."""
    if hc.kind not in KINDS:
        return f"health check kind {hc.kind!r} is unknown; use one of {', '.join(KINDS)}"
    if hc.kind == COMMAND and not hc.command.strip():
        return "a COMMAND health check needs a non-empty command"
    if hc.kind in (TCP, HTTP) and not 1 <= hc.port <= 65535:
        return f"a {hc.kind} health check needs a port between 1 and 65535, not {hc.port!r}"
    if hc.kind == HTTP and not hc.path.startswith("/"):
        return f"an HTTP health check path must start with '/', not {hc.path!r}"
    for name in ("delay", "grace_period"):
        value = getattr(hc, name)
        if not _non_negative(value):
            return f"health check {name} must be a number of seconds >= 0, not {value!r}"
    for name in ("interval", "timeout"):
        value = getattr(hc, name)
        if not _positive(value):
            return f"health check {name} must be a number of seconds > 0, not {value!r}"
    if hc.consecutive_failures < 0:
        return (
            "health check consecutive_failures must be >= 0 (0 never kills), "
            f"not {hc.consecutive_failures!r}"
        )
    return None


# --------------------------------------------------------------------------- policy


@dataclass(slots=True)
class HealthVerdict:
    """What one recorded check result means for the task."""

    healthy: bool | None  # new health to report, None = nothing changed to report
    kill: bool  # the consecutive-failure limit was reached
    message: str


class HealthPolicy:
    """Decides, from check results and the times they were recorded, what to report.

    Pure: the caller passes the time (any monotonic clock, the same as ``started_at``).
    """

    def __init__(self, check: HealthCheck, started_at: float) -> None:
        self.check = check
        self.started_at = started_at
        self.healthy: bool | None = None  # the last health reported
        self.failures = 0  # counted consecutive failures
        self.succeeded = False  # a check has succeeded at least once
        self.killed = False
        self._next: float = started_at + check.delay

    def next_check_at(self) -> float | None:
        """When the next check is due, or ``None`` once the task is to be killed."""
        return None if self.killed else self._next

    def record(self, ok: bool, message: str, now: float) -> HealthVerdict:
        """Take the result of a check run at ``now`` and say what follows from it."""
        if self.killed:
            return HealthVerdict(
                None, False, f"health check result ignored, task being killed: {message}"
            )
        self._next = now + self.check.interval
        if ok:
            self.failures = 0
            self.succeeded = True
            if self.healthy is True:
                return HealthVerdict(None, False, f"health check passed: {message}")
            self.healthy = True
            return HealthVerdict(True, False, f"health check passed: {message}")
        if not self.succeeded and now - self.started_at < self.check.grace_period:
            return HealthVerdict(
                None, False, f"health check failed within the grace period (ignored): {message}"
            )
        self.failures += 1
        self.healthy = False
        limit = self.check.consecutive_failures
        if limit > 0 and self.failures >= limit:
            self.killed = True
            return HealthVerdict(
                False, True, f"health check failed {self.failures} times in a row: {message}"
            )
        count = f"{self.failures}/{limit}" if limit > 0 else f"{self.failures}"
        return HealthVerdict(False, False, f"health check failed ({count}): {message}")
