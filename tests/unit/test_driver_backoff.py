"""The scheduler driver's retry back-off (issue 13), as Mesos's driver does it: the first
Subscribe at once, then random waits in [0, 2 s * 2**n] capped at a minute; kills
repeated after waits that double from 5 s up to a minute."""

from __future__ import annotations

import itertools
import random
from collections import Counter

from mesos_zmq.protocol import (
    Error,
    FrameworkInfo,
    Heartbeat,
    Kill,
    StatusUpdate,
    Subscribe,
    Subscribed,
    TaskStatus,
)
from mesos_zmq.scheduler.core import (
    KILL_RETRY,
    KILL_RETRY_MAX,
    SUBSCRIBE_BACKOFF,
    SUBSCRIBE_BACKOFF_MAX,
    Action,
    Call,
    DriverCore,
    Reconnect,
    Send,
)


class Longest(random.Random):
    """Every jittered wait at its longest: the back-off's bounds, exactly."""

    def random(self) -> float:
        return 1.0


def driver(seed: int = 0, rng: random.Random | None = None) -> DriverCore:
    counter = itertools.count()
    return DriverCore(FrameworkInfo(name="fw"), lambda: f"r{next(counter)}",
                      rng=rng or random.Random(seed))


def subscribes(actions: list[Action]) -> list[Subscribe]:
    return [a.message for a in actions if isinstance(a, Send)
            and isinstance(a.message, Subscribe)]


def kills(actions: list[Action]) -> list[Kill]:
    return [a.message for a in actions if isinstance(a, Send) and isinstance(a.message, Kill)]


def subscribed(core: DriverCore, now: float, interval: float = 1000.0) -> list[Action]:
    return core.handle(Subscribed(framework_id="F1", heartbeat_interval=interval,
                                  missed_heartbeats=5), "", now)


def busy_master(core: DriverCore, until: float, step: float = 0.25) -> list[float]:
    """A master that beats but never answers: when the driver subscribes."""
    times = []
    for i in range(1, int(until / step) + 1):
        now = i * step
        core.handle(Heartbeat(), "", now)
        if subscribes(core.tick(now)):
            times.append(now)
    return times


def test_the_defaults_are_mesos_values() -> None:
    assert (SUBSCRIBE_BACKOFF, SUBSCRIBE_BACKOFF_MAX) == (2.0, 60.0)
    assert (KILL_RETRY, KILL_RETRY_MAX) == (5.0, 60.0)


def test_subscribe_goes_at_once_then_after_waits_bounded_by_2s_doubling_to_a_minute() -> None:
    core = driver(rng=Longest())
    assert len(subscribes(core.connected(0.0))) == 1  # prompt: the first at once
    times = [0.0, *busy_master(core, 400.0)]
    waits = [b - a for a, b in itertools.pairwise(times)]
    assert waits[:7] == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_subscribe_waits_are_random_within_their_bounds() -> None:
    core = driver(seed=3)
    core.connected(0.0)
    times = [0.0, *busy_master(core, 600.0)]
    waits = [b - a for a, b in itertools.pairwise(times)]
    for n, wait in enumerate(waits):
        assert wait <= min(60.0, 2.0 * 2**n) + 0.25, (n, wait)
    assert max(waits) > 20.0
    assert len(times) < 25  # the old rule, every second: 600


def test_next_wakeup_while_subscribing_is_the_next_subscribe_never_a_busy_loop() -> None:
    core = driver(seed=4)
    core.connected(0.0)
    now = 0.0
    for _ in range(30):
        wake = core.next_wakeup(now)
        assert wake > now or wake == now == 0.0
        now = wake
        actions = core.tick(now)
        if Reconnect() in actions:
            core.connected(now)
        else:
            assert subscribes(actions)  # each wake-up has its work to do


def test_subscribed_resets_the_backoff_for_the_next_subscription() -> None:
    core = driver(rng=Longest())
    core.connected(0.0)
    busy_master(core, 100.0)  # the bound has grown to a minute
    subscribed(core, 100.0)
    actions = core.handle(Error(code="not_registered", message="who?"), "", 150.0)
    assert len(subscribes(actions)) == 1  # at once, as before
    assert core.next_wakeup(150.0) == 150.0 + SUBSCRIBE_BACKOFF  # and from 2 s again


def test_a_silent_master_while_subscribed_means_resubscribing_at_once_from_scratch() -> None:
    core = driver(rng=Longest())
    core.connected(0.0)
    busy_master(core, 100.0)
    subscribed(core, 100.0, interval=1.0)
    actions = core.tick(105.5)
    assert actions == [Call("disconnected"), Reconnect()]
    assert len(subscribes(core.connected(105.5))) == 1
    assert core.next_wakeup(105.5) == 105.5 + SUBSCRIBE_BACKOFF


def test_drivers_that_lost_their_master_together_retry_at_different_times() -> None:
    crowd = [driver(seed=seed) for seed in range(200)]
    for core in crowd:
        core.connected(0.0)  # all at once (Mesos's driver does not delay the first)
    retries = [core.next_wakeup(0.0) for core in crowd]
    assert all(0.0 <= r <= SUBSCRIBE_BACKOFF for r in retries)
    assert len(set(retries)) == 200
    tenths = Counter(int(r / 0.2) for r in retries)  # ~20 in each fifth of a second...
    assert len(tenths) >= 10 and max(tenths.values()) <= 40


# --------------------------------------------------------------------------- kills


def ended(core: DriverCore, task_id: str, now: float) -> None:
    core.handle(StatusUpdate(status=TaskStatus(task_id=task_id, framework_id="F1",
                                               agent_id="A1", state="TASK_KILLED",
                                               uuid=f"u-{task_id}", timestamp=now)), "", now)


def kill_times(core: DriverCore, start: float, until: float, step: float = 0.5) -> list[float]:
    times = []
    for i in range(int((until - start) / step) + 1):
        now = start + i * step
        if kills(core.tick(now)):
            times.append(now)
    return times


def test_a_kill_is_repeated_after_waits_that_double_from_5s_to_a_minute() -> None:
    core = driver(seed=5)
    core.connected(0.0)
    subscribed(core, 0.0)
    assert len(kills(core.request(Kill(framework_id="F1", task_id="t1")))) == 1  # at once
    times = [0.0, *kill_times(core, 0.0, 600.0)]
    waits = [b - a for a, b in itertools.pairwise(times)]
    for n, wait in enumerate(waits):
        low, high = min(60.0, 5.0 * 2**n), min(60.0, 5.0 * 2 ** (n + 1))
        assert low <= wait <= high + 0.5, (n, wait, waits)
    assert waits[-1] == 60.0 and len(waits) < 16  # the old rule: 120 repeats
    ended(core, "t1", 600.2)
    assert kill_times(core, 600.5, 800.0) == []  # its task ended: no more


def test_resubscribing_sends_a_kill_again_at_once_and_restarts_its_backoff() -> None:
    core = driver(rng=Longest())
    core.connected(0.0)
    subscribed(core, 0.0)
    core.request(Kill(framework_id="F1", task_id="t1"))
    # waits at their longest: 10, 20, 40, then capped at 60
    assert kill_times(core, 0.0, 199.5) == [10.0, 30.0, 70.0, 130.0, 190.0]
    core.connected(200.0)
    actions = subscribed(core, 200.5)
    assert len(kills(actions)) == 1  # again at once
    assert kill_times(core, 201.0, 230.0) == [211.0]  # its first wait again (5 -> 10 s)


def test_kills_of_drivers_started_together_are_repeated_at_different_times() -> None:
    first = []
    for seed in range(100):
        core = driver(seed=seed)
        core.connected(0.0)
        subscribed(core, 0.0)
        core.request(Kill(framework_id="F1", task_id="t1"))
        core.tick(0.0)
        first.append(core.next_wakeup(0.0))
    assert all(KILL_RETRY <= t <= 2 * KILL_RETRY for t in first)
    assert len(set(first)) == 100
