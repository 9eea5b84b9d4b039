"""The back-off helper (issue 13): bounds that grow and stop, jitter that spreads."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from mesos_zmq.backoff import Backoff

MESOS_UPDATES = Backoff(10.0, 600.0)  # STATUS_UPDATE_RETRY_INTERVAL_MIN / _MAX
MESOS_REGISTRATION = Backoff(1.0, 60.0)  # registration_backoff_factor / REGISTER_RETRY_MAX


def test_bounds_double_from_the_initial_and_stop_at_the_maximum() -> None:
    assert [MESOS_UPDATES.bound(n) for n in range(8)] == [
        10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0, 600.0]
    assert [MESOS_REGISTRATION.bound(n) for n in range(8)] == [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert Backoff(1.0, 100.0, factor=3.0).bound(3) == 27.0
    assert Backoff(5.0, 5.0).bound(4) == 5.0  # a fixed interval is a back-off too


def test_huge_and_negative_attempts_do_not_break_the_bound() -> None:
    assert MESOS_UPDATES.bound(10**6) == 600.0  # no OverflowError, no inf
    assert Backoff(1.0, 60.0, factor=3.0).bound(5000) == 60.0
    assert MESOS_UPDATES.bound(-3) == 10.0
    assert MESOS_UPDATES.floored_jitter(10**6, random.Random(1)) == 600.0


def test_full_jitter_stays_within_zero_and_the_bound() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        bound = MESOS_REGISTRATION.bound(attempt)
        waits = [MESOS_REGISTRATION.full_jitter(attempt, rng) for _ in range(300)]
        assert all(0.0 <= w <= bound for w in waits)
        # it uses the whole range, not just a corner of it
        assert min(waits) < 0.05 * bound and max(waits) > 0.95 * bound
    assert Backoff(0.0, 60.0).full_jitter(0, rng) == 0.0  # a factor of 0: at once


def test_floored_jitter_never_goes_below_the_bound_nor_beyond_the_next() -> None:
    rng = random.Random(11)
    for attempt in range(10):
        low, high = MESOS_UPDATES.bound(attempt), MESOS_UPDATES.bound(attempt + 1)
        waits = [MESOS_UPDATES.floored_jitter(attempt, rng) for _ in range(300)]
        assert all(low <= w <= high for w in waits), attempt
        if high > low:
            assert max(waits) - min(waits) > 0.9 * (high - low)  # spread over the range
    # capped: exactly the maximum
    assert {MESOS_UPDATES.floored_jitter(9, rng) for _ in range(10)} == {600.0}


def test_successive_floored_waits_never_shrink_and_their_mean_doubles() -> None:
    for seed in range(50):
        rng = random.Random(seed)
        waits = [MESOS_UPDATES.floored_jitter(n, rng) for n in range(9)]
        assert waits == sorted(waits), seed
        assert waits[0] >= 10.0 and waits[-1] == 600.0
    rng = random.Random(3)
    means = [statistics.fmean(MESOS_UPDATES.floored_jitter(n, rng) for _ in range(2000))
             for n in range(4)]
    assert means[0] == pytest.approx(15.0, rel=0.05)
    for before, after in itertools.pairwise(means):
        assert after / before == pytest.approx(2.0, rel=0.08)


def test_full_jitter_mean_is_half_the_bound() -> None:
    rng = random.Random(5)
    for attempt in (0, 3, 6):
        mean = statistics.fmean(MESOS_REGISTRATION.full_jitter(attempt, rng)
                                for _ in range(4000))
        assert mean == pytest.approx(MESOS_REGISTRATION.bound(attempt) / 2, rel=0.05)


def test_a_seed_replays_and_different_seeds_spread() -> None:
    def draws(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [MESOS_REGISTRATION.full_jitter(n, rng) for n in range(6)]

    assert draws(42) == draws(42)
    assert draws(42) != draws(43)
    # a crowd that starts together: 1000 members, 1000 different first waits, spread
    # evenly over [0, 1 s] (no tenth of the range holds more than 13 % of them)
    firsts = [MESOS_REGISTRATION.full_jitter(0, random.Random(seed)) for seed in range(1000)]
    assert len(set(firsts)) == 1000
    tenths = [sum(1 for w in firsts if k / 10 <= w < (k + 1) / 10) for k in range(10)]
    assert max(tenths) < 130 and min(tenths) > 70, tenths


def test_the_random_source_is_the_one_given() -> None:
    """No global random: seeding the module's generator changes nothing."""
    random.seed(1)
    a = MESOS_UPDATES.floored_jitter(2, random.Random(9))
    random.seed(2)
    b = MESOS_UPDATES.floored_jitter(2, random.Random(9))
    assert a == b


@pytest.mark.parametrize("args,needle", [
    ((-1.0, 10.0), "initial must be at least 0"),
    ((10.0, 5.0), "below its initial"),
    ((1.0, 10.0, 0.5), "factor must be at least 1"),
    ((float("nan"), 10.0), "finite"),
    ((1.0, float("inf")), "finite"),
])
def test_nonsense_bounds_are_refused(args: tuple[float, ...], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Backoff(*args)
