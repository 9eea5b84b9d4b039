"""The agent's retry back-off (issue 13), at its real values: status updates first re-sent
after 10 to 20 s, the waits doubling up to 10 min; registration spread over
``--registration-backoff-factor``, the bound doubling up to a minute."""

from __future__ import annotations

import inspect
import itertools
import random
from collections import Counter

from mesos_zmq.agent import flags as agent_flags
from mesos_zmq.agent.core import AgentCore, Effects
from mesos_zmq.agent.server import AgentConfig
from mesos_zmq.protocol import (
    Acknowledge,
    AgentRegistered,
    Error,
    Heartbeat,
    RegisterAgent,
    ReregisterAgent,
    RunTasks,
    StatusUpdate,
    TaskInfo,
)
from mesos_zmq.resources import Resources


class Longest(random.Random):
    """Every jittered wait at its longest: the back-off's bounds, exactly."""

    def random(self) -> float:
        return 1.0


def agent(seed: int = 0, agent_id: str | None = None, rng: random.Random | None = None,
          **kwargs: float) -> AgentCore:
    counter = itertools.count()
    return AgentCore("host", Resources.parse("cpus:8;mem:4096"), "", agent_id,
                     lambda: f"u{next(counter)}", rng=rng or random.Random(seed), **kwargs)


def registered(core: AgentCore, now: float, interval: float = 1000.0) -> Effects:
    """Registered with a master that beats rarely (so silence does not interfere)."""
    return core.handle(AgentRegistered(agent_id="A1", heartbeat_interval=interval,
                                       missed_heartbeats=5), "", now)


def start(core: AgentCore, *task_ids: str, now: float) -> None:
    tasks = [TaskInfo(task_id=t, agent_id="A1", resources="cpus:0.1", command="true")
             for t in task_ids]
    core.handle(RunTasks(framework_id="F1", tasks=tasks), "", now)
    for t in task_ids:
        core.task_spawned(("F1", t), now)


def updates(fx: Effects) -> list[StatusUpdate]:
    return [m for m, _ in fx.messages if isinstance(m, StatusUpdate)]


def registrations(fx: Effects) -> list[RegisterAgent | ReregisterAgent]:
    return [m for m, _ in fx.messages if isinstance(m, RegisterAgent | ReregisterAgent)]


def send_times(core: AgentCore, start_at: float, until: float, step: float,
               what: str = "update") -> list[float]:
    """When ticks from ``start_at`` to ``until`` send an update (or a registration)."""
    times = []
    for i in range(int((until - start_at) / step) + 1):
        now = round(start_at + i * step, 6)
        fx = core.tick(now)
        if (updates(fx) if what == "update" else registrations(fx)):
            times.append(now)
    return times


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


# --------------------------------------------------------------------------- defaults


def test_the_defaults_are_mesos_values_written_once_in_the_flag_table() -> None:
    assert agent_flags.STATUS_UPDATE_RETRY == 10.0
    assert agent_flags.STATUS_UPDATE_RETRY_MAX == 600.0
    assert agent_flags.REGISTRATION_BACKOFF_FACTOR == 1.0
    assert agent_flags.REGISTRATION_BACKOFF_MAX == 60.0
    params = inspect.signature(AgentCore).parameters
    assert params["retry_interval"].default == agent_flags.STATUS_UPDATE_RETRY
    assert params["registration_backoff_factor"].default == 1.0
    config = AgentConfig()
    assert config.status_update_retry == 10.0 and config.registration_backoff_factor == 1.0
    assert "--registration-backoff-factor" in agent_flags.BY_NAME[
        "registration_backoff_factor"].option
    assert agent_flags.range_problems({"registration_backoff_factor": -1.0})
    assert agent_flags.range_problems({"status_update_retry": 0.0})
    assert not agent_flags.range_problems({"registration_backoff_factor": 0.0,
                                           "status_update_retry": 0.5})


# --------------------------------------------------------------------------- updates


def test_an_unacknowledged_update_is_resent_after_waits_that_double_up_to_ten_minutes() -> None:
    core = agent(seed=1, registration_backoff_factor=0.0)
    core.connected(0.0)
    registered(core, 0.0)
    start(core, "t1", now=0.0)  # TASK_RUNNING goes at once, never acknowledged
    times = [0.0, *send_times(core, 0.5, 4000.0, 0.5)]
    waits = gaps(times)
    assert len(waits) >= 8
    for n, wait in enumerate(waits):
        low = min(600.0, 10.0 * 2**n)
        high = min(600.0, 10.0 * 2 ** (n + 1))
        assert low <= wait <= high + 0.5, (n, wait, waits)  # ticks are 0.5 s apart
    for before, after in itertools.pairwise(waits):
        assert after >= before - 0.5  # never shorter than the wait before (tick grid)
    assert waits[-1] == 600.0  # capped
    # the old rule (every second) would have sent ~4000 times; this sends a handful
    assert len(times) < 15


def test_waits_are_jittered_so_the_same_rule_gives_different_times() -> None:
    def first_retries(seed: int) -> list[float]:
        core = agent(seed=seed, registration_backoff_factor=0.0)
        core.connected(0.0)
        registered(core, 0.0)
        start(core, "t1", now=0.0)
        return send_times(core, 0.25, 100.0, 0.25)[:2]

    seen = {tuple(first_retries(seed)) for seed in range(20)}
    assert len(seen) >= 15


def test_registration_sends_every_unacknowledged_head_at_once_and_restarts_its_backoff() -> None:
    core = agent(seed=2, registration_backoff_factor=0.0)
    core.connected(0.0)
    registered(core, 0.0)
    start(core, "t1", "t2", "t3", now=0.0)
    resent = Counter(m.status.task_id for t in range(1, 401)
                     for m in updates(core.tick(float(t))))
    # each head re-sent 4 or 5 times (after 10-20, 20-40, 40-80, 80-160... s): its
    # waits have grown to minutes
    assert set(resent) == {"t1", "t2", "t3"} and all(4 <= n <= 5 for n in resent.values())
    # a new leader: while registering nothing is sent...
    core.connected(400.0)
    assert updates(core.tick(400.0)) == [] and not core.registered
    # ...and once registered, every head at once
    fx = registered(core, 401.0)
    assert sorted(m.status.task_id for m in updates(fx)) == ["t1", "t2", "t3"]
    assert all(m.status.state == "TASK_RUNNING" for m in updates(fx))
    # their back-off started again: the next send within [10, 20] s, not minutes away
    assert send_times(core, 401.5, 410.5, 0.5) == []
    again = [m.status.task_id for i in range(21)
             for m in updates(core.tick(411.0 + i * 0.5))]
    assert sorted(again) == ["t1", "t2", "t3"]


def test_an_acknowledgement_sends_the_next_update_at_once_with_a_fresh_backoff() -> None:
    core = agent(seed=3, registration_backoff_factor=0.0)
    core.connected(0.0)
    registered(core, 0.0)
    start(core, "t1", now=0.0)
    core.task_exited(("F1", "t1"), 0, None, 1.0)  # FINISHED waits behind RUNNING
    times = send_times(core, 1.0, 200.0, 1.0)
    assert len(times) >= 3  # RUNNING was retried, its waits grew beyond 40 s
    running = core.tasks[("F1", "t1")].updates[0]
    fx = core.handle(Acknowledge(framework_id="F1", agent_id="A1", task_id="t1",
                                 uuid=running.uuid), "", 200.5)
    (finished,) = updates(fx)
    assert finished.status.state == "TASK_FINISHED"  # at once
    later = send_times(core, 201.0, 240.0, 0.5)
    assert 210.5 <= later[0] <= 220.5 + 0.5  # its own back-off, from the start


def test_a_new_update_behind_an_empty_queue_goes_at_once() -> None:
    core = agent(seed=4, registration_backoff_factor=0.0)
    core.connected(0.0)
    registered(core, 0.0)
    start(core, "t1", now=0.0)
    running = core.tasks[("F1", "t1")].updates[0]
    core.handle(Acknowledge(framework_id="F1", agent_id="A1", task_id="t1",
                            uuid=running.uuid), "", 50.0)
    fx = core.task_exited(("F1", "t1"), 0, None, 60.0)
    assert [m.status.state for m in updates(fx)] == ["TASK_FINISHED"]


# --------------------------------------------------------------------------- registration


def test_the_first_registration_waits_within_the_factor_then_the_bound_doubles() -> None:
    core = agent(rng=Longest())
    assert registrations(core.connected(0.0)) == []
    for now in (0.0, 0.5, 0.99):
        assert registrations(core.tick(now)) == []
    # waits at their longest: 1 s, then bounds of 2, 4, 8 s...
    assert send_times(core, 1.0, 14.5, 0.5, what="register") == [1.0, 3.0, 7.0]


def test_registration_waits_are_bounded_by_doubling_and_capped_at_a_minute() -> None:
    core = agent(seed=5)
    core.connected(0.0)
    times = []
    for i in range(int(600 / 0.25)):
        now = i * 0.25
        core.handle(Heartbeat(), "", now)  # a master alive, but too busy to answer
        if registrations(core.tick(now)):
            times.append(now)
    assert 0.0 <= times[0] <= 1.0
    for n, wait in enumerate(gaps(times), start=1):
        assert wait <= min(60.0, 2.0**n) + 0.25, (n, wait)
    assert max(gaps(times)) > 30.0  # it did grow
    assert len(times) < 30  # the old rule: 600 attempts


def test_a_tiny_factor_registers_at_once_but_retries_still_back_off() -> None:
    core = agent(seed=6, registration_backoff_factor=0.0)
    assert registrations(core.connected(0.0))  # at once
    times = [0.0]
    for i in range(1, 1200):
        now = i * 0.05
        core.handle(Heartbeat(), "", now)
        if registrations(core.tick(now)):
            times.append(now)
    assert len(times) < 20  # not one attempt per tick
    assert max(gaps(times)) > 2.0


def test_registration_resets_the_registration_backoff() -> None:
    core = agent(rng=Longest(), agent_id="A1")
    core.connected(0.0)
    for t in range(0, 40):
        core.handle(Heartbeat(), "", float(t))
        core.tick(float(t))  # attempts at 1, 3, 7, 15, 31: the bound is now 64 -> 60
    registered(core, 40.0, interval=1.0)
    assert core.registered
    # the master goes silent: abandoned at once while registered...
    fx = core.tick(46.0)
    assert fx.reconnect
    # ...and the next registration starts from the factor again, not from a minute
    assert registrations(core.connected(46.0)) == []
    assert registrations(core.tick(46.5)) == []
    (msg,) = registrations(core.tick(47.0))
    assert isinstance(msg, ReregisterAgent)


def test_a_silent_master_is_left_only_when_an_attempt_is_due_and_the_backoff_goes_on() -> None:
    core = agent(rng=Longest())  # monitor before registration: 1 s x 10 missed
    core.connected(0.0)
    sent = {t: registrations(core.tick(float(t))) for t in range(0, 31)}
    assert [t for t, msgs in sent.items() if msgs] == [1, 3, 7, 15]  # silent since 0
    fx = core.tick(31.0)  # due, and the attempt at 15 is 16 s unanswered
    assert fx.reconnect and not fx.messages
    (msg,) = registrations(core.connected(31.0))  # the due attempt, on the new socket
    assert isinstance(msg, RegisterAgent)
    # the back-off went on: the next wait is 32 s (the sixth attempt's bound), not 1 s
    for i in range(63):
        fx = core.tick(31.5 + i * 0.5)
        assert not fx.messages and not fx.reconnect
    assert core.tick(63.0).reconnect  # due; the attempt at 31 went unanswered


def test_not_registered_means_registering_again_within_the_factor() -> None:
    core = agent(rng=Longest(), agent_id="A1")
    core.connected(0.0)
    core.tick(1.0)
    registered(core, 1.5)
    fx = core.handle(Error(code="not_registered", message="who?"), "", 10.0)
    assert registrations(fx) == [] and not core.registered  # not at once: spread
    # a burst of these starts no burst of registrations
    assert not core.handle(Error(code="not_registered", message="who?"), "", 10.2).messages
    assert registrations(core.tick(10.9)) == []
    (msg,) = registrations(core.tick(11.0))
    assert isinstance(msg, ReregisterAgent)


# --------------------------------------------------------------------------- a crowd


def test_agents_that_lost_their_master_together_come_back_spread_out() -> None:
    """300 agents, each its own seed, all told of a new leader at t=0."""
    crowd = [agent(seed=seed, agent_id=f"A{seed}") for seed in range(300)]
    for core in crowd:
        core.connected(0.0)
    when: dict[int, float] = {}
    for i in range(0, 101):
        now = i * 0.01
        for n, core in enumerate(crowd):
            if registrations(core.tick(now)):
                when.setdefault(n, now)
    first = list(when.values())
    assert len(first) == 300  # everyone within the factor (1 s)
    buckets = Counter(round(t, 1) for t in first)
    assert len(buckets) >= 10 and max(buckets.values()) <= 60  # ~30 per 0.1 s, not 300
    assert max(Counter(first).values()) <= 10  # no instant holds more than a few


def test_agents_registered_together_do_not_retry_their_updates_together() -> None:
    crowd = [agent(seed=1000 + seed, registration_backoff_factor=0.0) for seed in range(300)]
    for core in crowd:
        core.connected(0.0)
        registered(core, 0.0)
        start(core, "t1", now=0.0)  # all sent at once, none acknowledged
    retries = [5.0 for core in crowd if updates(core.tick(5.0))]
    for i in range(1101):
        now = round(9.99 + i * 0.01, 2)
        retries += [now for core in crowd if updates(core.tick(now))]
    assert len(retries) == 300 and min(retries) >= 10.0 and max(retries) <= 20.0
    per_second = Counter(int(t) for t in retries)
    assert len(per_second) >= 10 and max(per_second.values()) <= 50  # ~30 each
    assert max(Counter(retries).values()) <= 5


def test_resuming_a_frameworks_updates_sends_its_heads_at_once_with_a_fresh_backoff() -> None:
    """For a framework that failed over (as Mesos's agent on UpdateFrameworkMessage)."""
    core = agent(seed=7, registration_backoff_factor=0.0)
    core.connected(0.0)
    registered(core, 0.0)
    start(core, "t1", now=0.0)
    core.handle(RunTasks(framework_id="F2", tasks=[TaskInfo(
        task_id="other", agent_id="A1", resources="cpus:0.1", command="true")]), "", 0.0)
    core.task_spawned(("F2", "other"), 0.0)
    send_times(core, 1.0, 300.0, 1.0)  # both heads retried: their waits are long now
    fx = core.resume_updates("F1", 300.5)
    assert [(m.status.framework_id, m.status.task_id) for m in updates(fx)] == [("F1", "t1")]
    later = [(t, m.status.task_id) for i in range(41)
             for t in [300.5 + i * 0.5] for m in updates(core.tick(t))]
    assert [task for _, task in later if task == "t1"] == ["t1"]  # once, within 10-20 s
    assert all(310.5 <= t <= 321.0 for t, task in later if task == "t1")
    core.connected(400.0)  # not registered: registration will send them
    assert not core.resume_updates("F1", 400.0)


def test_update_framework_from_the_master_resumes_that_frameworks_updates() -> None:
    from mesos_zmq.protocol import UpdateFramework

    core = agent(seed=7, registration_backoff_factor=0.0)
    core.connected(0.0)
    registered(core, 0.0)
    start(core, "t1", now=0.0)
    send_times(core, 1.0, 300.0, 1.0)
    fx = core.handle(UpdateFramework(framework_id="F1"), "", 300.5)
    assert [m.status.task_id for m in updates(fx)] == ["t1"]
    assert not updates(core.handle(UpdateFramework(framework_id="F9"), "", 300.6))
