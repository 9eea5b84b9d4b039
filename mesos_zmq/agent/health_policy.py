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

Two bounds Mesos leaves out, because every reported change costs a line in the task's
events file, a datagram, a status update to the framework and records in the agent's
task log, all written for as long as the task runs:

* checks run at most once a :data:`MIN_INTERVAL` (the master refuses a smaller
  ``interval``, see :mod:`mesos_zmq.master.validation`; the policy clamps one that got
  here anyway, from an older master);
* a flapping check is damped: a change of health is reported at once after a quiet
  spell, but one that comes within ``hold`` seconds of the last report is held, and
  reported by the first check after the hold ends if the health still differs (a flap
  that returns to the reported health in the meantime is never reported). ``hold`` is 0
  after a quiet spell (:data:`REPORT_QUIET` without a report), then doubles with each
  report from :data:`REPORT_HOLD_MIN` to :data:`REPORT_HOLD_MAX`: a task whose check
  flips every second costs about one report a minute, not one a second. The verdict
  that kills the task is never held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mesos_zmq.protocol import HealthCheck

COMMAND = "COMMAND"
TCP = "TCP"
HTTP = "HTTP"
KINDS = (COMMAND, TCP, HTTP)

#: the smallest ``interval`` a task may ask for, in seconds: a COMMAND check forks a
#: shell per check, and a check that flips at every run writes an event (and the agent
#: a status update, task-log records) per run; Kubernetes has the same floor for
#: ``periodSeconds`` (Mesos has none, and defaults to 10 s)
MIN_INTERVAL = 1.0
#: the first hold after a report that followed another closely (seconds)
REPORT_HOLD_MIN = 1.0
#: the longest a flapping check's change of health waits to be reported (seconds)
REPORT_HOLD_MAX = 60.0
#: this long without a report, a change is reported at once again (seconds)
REPORT_QUIET = 2 * REPORT_HOLD_MAX


def interval_problem(hc: HealthCheck) -> str | None:
    """What is wrong with ``hc.interval`` against :data:`MIN_INTERVAL`, or None.

    Apart from :func:`check_health_check`, which a supervisor runs before every check:
    a task an older master accepted with a smaller interval is clamped there, not
    failed check after check."""
    if math.isfinite(hc.interval) and 0 < hc.interval < MIN_INTERVAL:
        return (f"health check interval must be at least {MIN_INTERVAL:.1f} seconds, not "
                f"{hc.interval!r} (checks that often cost the agent more than they tell; "
                f"use interval >= {MIN_INTERVAL:.1f})")
    return None


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
        #: the interval as run: never below MIN_INTERVAL, whatever the task asked for
        self.interval = max(check.interval, MIN_INTERVAL)
        #: when the last change of health was reported, and how long the next one waits
        self.reported_at: float | None = None
        self.hold = 0.0
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
        self._next = now + self.interval
        if ok:
            self.failures = 0
            self.succeeded = True
            return self._report(True, False, f"health check passed: {message}", now)
        if not self.succeeded and now - self.started_at < self.check.grace_period:
            return HealthVerdict(
                None, False, f"health check failed within the grace period (ignored): {message}"
            )
        self.failures += 1
        limit = self.check.consecutive_failures
        if limit > 0 and self.failures >= limit:
            self.killed = True
            return self._report(
                False, True, f"health check failed {self.failures} times in a row: {message}",
                now)
        count = f"{self.failures}/{limit}" if limit > 0 else f"{self.failures}"
        return self._report(False, False, f"health check failed ({count}): {message}", now)

    def _report(self, healthy: bool, kill: bool, message: str, now: float) -> HealthVerdict:
        """The verdict for a counted result: the health if it is to be reported now.

        Unchanged health reports as it always did (a success nothing, a failure
        ``False`` again, which the supervisor does not write twice); a change is held
        while the hold since the last report lasts, unless it kills the task."""
        if healthy == self.healthy:
            return HealthVerdict(None if healthy else False, kill, message)
        if (not kill and self.reported_at is not None
                and now < self.reported_at + self.hold):
            held = self.reported_at + self.hold - now
            return HealthVerdict(None, False, f"{message} (health flapping: this change is "
                                              f"reported in {held:.3g}s if it lasts)")
        if self.reported_at is not None and now - self.reported_at < REPORT_QUIET:
            self.hold = min(REPORT_HOLD_MAX, max(REPORT_HOLD_MIN, 2 * self.hold))
        else:
            self.hold = 0.0
        self.healthy = healthy
        self.reported_at = now
        return HealthVerdict(healthy, kill, message)
