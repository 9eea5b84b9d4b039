"""Exponential back-off with jitter, pure: the random source is given, never global.

Theory of operation
-------------------
A retry loop that waits the same fixed time after every attempt keeps a crowd in step:
10,000 agents that lost their master together re-register together, every second,
for as long as the new leader is slow, and each round makes it slower (issue 13 saw
146k status-update retries for 24k tasks). Two things break that: waits that grow
(the load the crowd makes falls off while the server is in trouble), and jitter
(members of the crowd drift apart, so their attempts no longer arrive at one instant).

:class:`Backoff` holds the bounds of one retry policy. The bound of attempt ``n``
(counted from 0) is ``initial * factor**n``, capped at ``maximum``; the wait for it is
drawn from a :class:`random.Random` the caller passes in, so that a core stays pure and
a seeded test or the deterministic simulator replays exactly. Two draws:

* :meth:`Backoff.full_jitter`: uniform in ``[0, bound(n)]`` ("full jitter"). The
  widest spread for a given mean, so the best at taking a crowd apart; an attempt may
  come early, even at once. This is what Apache Mesos does for agent registration
  (``registration_backoff_factor`` times a uniform random, the bound doubling up to a
  minute) and for the scheduler driver's registration. Used where an early attempt
  costs little (registration, subscription).
* :meth:`Backoff.floored_jitter`: uniform in ``[bound(n), bound(n + 1)]``. Never
  sooner than the bound, which is a floor the protocol wants (Mesos never re-sends a
  status update before ``STATUS_UPDATE_RETRY_INTERVAL_MIN``, 10 s); each wait is at
  least the previous one's upper end, so the waits never shrink, the mean still
  doubles, and the spread grows with it. Used for status updates and kills, where a
  retry sooner than the floor would be wasted work.

Why not "decorrelated" jitter (``min(cap, uniform(base, 3 * previous))``): its waits
may fall back to the base after long ones, it piles up exactly at the cap (where a
crowd then moves in step again), and its state is the previous wait rather than a
count, which is harder to reason about and to test. With the two draws above a
crowd's phases come apart during the growing waits and stay apart at the cap: waits
at the cap are all equal, but the sums of the jittered waits before them are not.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """The bounds of a retry policy: ``initial * factor**attempt``, at most ``maximum``."""

    initial: float
    maximum: float
    factor: float = 2.0

    def __post_init__(self) -> None:
        for name in ("initial", "maximum", "factor"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"back-off {name} must be a finite number, got {value!r}")
        if self.initial < 0:
            raise ValueError(f"back-off initial must be at least 0, got {self.initial!r}")
        if self.maximum < self.initial:
            raise ValueError(f"back-off maximum {self.maximum!r} is below its initial "
                             f"{self.initial!r}")
        if self.factor < 1:
            raise ValueError(f"back-off factor must be at least 1, got {self.factor!r}")

    def bound(self, attempt: int) -> float:
        """The bound for attempt ``attempt`` (0 is the first): it grows by ``factor``
        per attempt until it reaches ``maximum``; a negative attempt counts as 0."""
        attempt = max(attempt, 0)
        try:
            grown = self.initial * self.factor ** attempt
        except OverflowError:
            return self.maximum
        return min(self.maximum, grown)

    def full_jitter(self, attempt: int, rng: random.Random) -> float:
        """A wait uniform in ``[0, bound(attempt)]`` (spreads a crowd the most)."""
        return _uniform(0.0, self.bound(attempt), rng)

    def floored_jitter(self, attempt: int, rng: random.Random) -> float:
        """A wait uniform in ``[bound(attempt), bound(attempt + 1)]``: never below the
        bound, never shorter than the wait before it; ``maximum`` once capped."""
        return _uniform(self.bound(attempt), self.bound(attempt + 1), rng)


def _uniform(low: float, high: float, rng: random.Random) -> float:
    """``rng.uniform``, kept within ``[low, high]`` whatever the rounding."""
    return min(high, max(low, rng.uniform(low, high)))
