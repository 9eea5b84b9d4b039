"""The deterministic cluster simulator: a sweep, replay, and one scenario per fault.

Each run wires the real master, agent and driver cores, the real ZooKeeper log and
contender (on the in-memory ZooKeeper) and checks the invariants of
:mod:`mesos_zmq.testing.sim` after every step. A failure message carries the seed and
the trace; replay it with ``python tools/simulate.py --seed N``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import structlog

from mesos_zmq.testing.sim import Result, Scripted, SimConfig, run

QUIET = frozenset[str]()


@pytest.fixture(autouse=True)
def quiet_logs() -> Iterator[None]:
    with structlog.testing.capture_logs():
        yield


def assert_ok(result: Result) -> None:
    assert result.failure is None, result.failure.report()


def scenario(seed: int, *faults: Scripted, **overrides: Any) -> Result:
    config = SimConfig(seed=seed, steps=220, quiesce=120, faults=QUIET, scripted=faults,
                       trace_limit=None)
    return run(replace(config, **overrides))


def test_sweep_of_random_faults() -> None:
    failures = [r.failure for r in (run(SimConfig(seed=s, steps=200, quiesce=100))
                                    for s in range(250)) if r.failure is not None]
    assert not failures, "\n\n".join(f.report() for f in failures[:3])


def test_same_seed_same_trace() -> None:
    first = run(SimConfig(seed=7, steps=160, quiesce=80, trace_limit=None))
    second = run(SimConfig(seed=7, steps=160, quiesce=80, trace_limit=None))
    assert first.trace == second.trace and len(first.trace) > 100
    assert first.faults == second.faults
    other = run(SimConfig(seed=8, steps=160, quiesce=80, trace_limit=None))
    assert other.trace != first.trace


@pytest.mark.parametrize("seed", range(4))
def test_leader_paused_past_its_session_then_resumed(seed: int) -> None:
    result = scenario(seed, Scripted(8.0, "leader_pause"))
    assert_ok(result)
    assert any("LEADER epoch=2" in line for line in result.trace)


@pytest.mark.parametrize("seed", range(4))
def test_compaction_while_a_standby_lags(seed: int) -> None:
    result = scenario(seed, Scripted(4.0, "slow_standby"), Scripted(6.0, "compact"),
                      Scripted(8.0, "compact"), Scripted(9.0, "leader_crash"), masters=2)
    assert_ok(result)


@pytest.mark.parametrize("seed", range(4))
def test_two_masters_killed_in_a_row(seed: int) -> None:
    result = scenario(seed, Scripted(8.0, "leader_crash"), Scripted(8.25, "master_crash"),
                      masters=3)
    assert_ok(result)


@pytest.mark.parametrize("seed", range(4))
def test_new_leader_killed_right_after_taking_over(seed: int) -> None:
    result = scenario(seed, Scripted(8.0, "kill_next_leader"), Scripted(8.0, "leader_crash"))
    assert_ok(result)
    assert any("crash new leader" in fault for fault in result.faults)


@pytest.mark.parametrize("seed", range(4))
def test_decline_sent_to_a_dying_leader(seed: int) -> None:
    result = scenario(seed, Scripted(6.0, "decline_then_crash"), hold_probability=0.9)
    assert_ok(result)


@pytest.mark.parametrize("seed", range(3))
def test_crash_after_commit_before_send(seed: int) -> None:
    result = scenario(seed, Scripted(5.0, "crash_after_commit"))
    assert_ok(result)
