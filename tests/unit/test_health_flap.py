"""A health check that flaps as fast as it may: bounded at the source, damped when
reported, and read by the agent at a cost that does not grow with the events file.

Before: a COMMAND check at ``interval`` 0.001 s that alternated healthy/unhealthy wrote
an event per check (6 MB in 4 minutes) and the agent re-read the whole events file on
each poke, work quadratic in the file's size.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mesos_zmq.agent.containerizer import Container, Containerizer
from mesos_zmq.agent.events import Health, Started, SupervisorEvent, encode_event
from mesos_zmq.agent.health import HealthPolicy
from mesos_zmq.agent.isolation import Limits, Posix
from mesos_zmq.master.validation import task_problem
from mesos_zmq.protocol import Accept, HealthCheck, StatusUpdate, TaskInfo
from mesos_zmq.scheduler.validation import InvalidRequestError, check_task
from tests.unit.test_master_core import FW, Harness

FLOOR = 1.0  # seconds: the documented minimum interval
HOLD_MAX = 60.0  # seconds: the documented longest hold of a flapping check's change


def flapping_task(interval: float) -> TaskInfo:
    check = HealthCheck(kind="COMMAND", command="test $((RANDOM % 2)) = 0",
                        interval=interval, grace_period=0.0, consecutive_failures=0)
    return TaskInfo(task_id="flap", agent_id="", resources="cpus:1", command="sleep 1000",
                    health_check=check)


# ----------------------------------------------------------------- the floor


@pytest.mark.parametrize("interval", [0.001, 0.5, 0.999])
def test_the_master_refuses_an_interval_below_the_floor(interval: float) -> None:
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0.0)
    task = replace(flapping_task(interval), agent_id=agent_id)
    replies = h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id], tasks=[task]),
                     0.1)
    (status,) = [m.status for m in replies if isinstance(m, StatusUpdate)]
    assert status.state == "TASK_ERROR" and status.reason == "REASON_TASK_INVALID"
    assert "health check interval must be at least 1.0 seconds" in status.message
    assert "interval >= 1.0" in status.message  # says what to do
    assert h.core.state.task(fid, "flap") is None


def test_the_floor_itself_is_accepted_and_the_sdk_refuses_below_it() -> None:
    assert task_problem(flapping_task(FLOOR)) is None
    assert task_problem(flapping_task(10.0)) is None
    with pytest.raises(InvalidRequestError, match=r"interval must be at least 1\.0 seconds"):
        check_task(flapping_task(0.01), "launch")


def test_a_supervisor_given_a_smaller_interval_checks_once_a_floor() -> None:
    """A task an older master accepted: its checks run no faster than the floor."""
    check = flapping_task(0.001).health_check
    assert check is not None
    policy = HealthPolicy(check, started_at=0.0)
    assert policy.next_check_at() == 0.0
    policy.record(True, "ok", 0.002)
    assert policy.next_check_at() == pytest.approx(0.002 + FLOOR)


# ----------------------------------------------------------------- damping


def reports(policy: HealthPolicy, results: list[tuple[float, bool]]) -> list[tuple[float, bool]]:
    """What a supervisor writes: the health of each verdict that changes what it wrote."""
    written: list[tuple[float, bool]] = []
    last: bool | None = None
    for now, ok in results:
        verdict = policy.record(ok, "x", now)
        if verdict.healthy is not None and verdict.healthy != last:
            last = verdict.healthy
            written.append((now, verdict.healthy))
    return written


def flapping_policy(consecutive_failures: int = 0) -> HealthPolicy:
    check = replace(flapping_task(FLOOR).health_check or HealthCheck(kind="COMMAND"),
                    consecutive_failures=consecutive_failures)
    return HealthPolicy(check, started_at=0.0)


def test_a_check_flipping_every_second_is_reported_about_once_a_minute() -> None:
    hour = [(float(t), t % 2 == 0) for t in range(3600)]
    written = reports(flapping_policy(), hour)
    # Before: 3600 events (and updates, and task-log records) an hour.
    assert len(written) <= 3600 / HOLD_MAX + 10
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(written)]
    assert max(gaps) <= HOLD_MAX + FLOOR  # never silent for longer than a hold
    assert gaps[-20:] == [pytest.approx(HOLD_MAX, abs=FLOOR)] * 20


@pytest.mark.parametrize("settled", [True, False])
def test_a_health_that_settles_is_reported_within_a_hold(settled: bool) -> None:
    policy = flapping_policy()
    flapping = [(float(t), t % 2 == 0) for t in range(600)]
    written = reports(policy, flapping)
    calm = [(600.0 + t, settled) for t in range(int(HOLD_MAX) + 2)]
    written += reports(policy, calm) if written[-1][1] != settled else []
    assert written[-1][1] is settled
    assert written[-1][0] <= 600.0 + HOLD_MAX + FLOOR


def test_the_failure_that_kills_is_never_held() -> None:
    policy = flapping_policy(consecutive_failures=3)
    for t in range(100):  # flapping: never 3 failures in a row; the hold grows
        policy.record(t % 2 == 0, "x", float(t))
    assert policy.hold > 1.0
    policy.record(True, "ok", 100.0)
    policy.record(False, "bad", 101.0)
    policy.record(False, "bad", 102.0)
    verdict = policy.record(False, "bad", 103.0)
    assert (verdict.healthy, verdict.kill) == (False, True)


def test_after_a_quiet_spell_a_change_is_reported_at_once() -> None:
    policy = flapping_policy()
    reports(policy, [(float(t), t % 2 == 0) for t in range(300)])
    assert policy.hold == HOLD_MAX
    last = policy.reported_at
    assert last is not None and policy.healthy is not None
    steady = policy.healthy
    # Stable for two holds, then one change: reported by the very check that saw it.
    for t in range(1, int(2 * HOLD_MAX) + 1):
        policy.record(steady, "x", last + t)
    assert policy.reported_at == last and policy.healthy is steady
    change_at = last + 2 * HOLD_MAX + 1
    verdict = policy.record(not steady, "x", change_at)
    assert verdict.healthy is (not steady)
    assert policy.hold == 0.0


def test_a_flap_back_to_the_reported_health_is_never_reported() -> None:
    policy = flapping_policy()
    assert policy.record(True, "ok", 0.0).healthy is True
    assert policy.record(False, "bad", 1.0).healthy is False  # reported: hold 0 then
    # Now held: a success one second later waits; the failure after it is no change.
    assert policy.record(True, "ok", 1.5).healthy is None
    assert policy.record(False, "bad", 2.0).healthy is False  # same as reported
    assert policy.healthy is False


# ----------------------------------------------------------------- reading


def line(event: SupervisorEvent) -> bytes:
    return (encode_event(event) + "\n").encode()


def test_read_appended_never_consumes_a_half_written_line(tmp_path: Path) -> None:
    from mesos_zmq.agent.events import read_appended

    path = tmp_path / "events"
    first, second = line(Started(pid=5, seq=1)), line(Health(healthy=True, seq=2))
    path.write_bytes(first + second[:10])
    read, end = read_appended(path)
    assert [(event.seq, at) for event, at in read] == [(1, len(first))]
    assert end == len(first)  # the torn bytes are read again, once complete
    with path.open("ab") as f:
        f.write(second[10:])
    read, end = read_appended(path, end, after=1)
    assert [(event, at) for event, at in read] == [(Health(healthy=True, seq=2),
                                                     len(first) + len(second))]
    assert end == len(first) + len(second)
    assert read_appended(path, end, after=2) == ([], end)


def test_read_appended_skips_what_is_not_new(tmp_path: Path) -> None:
    from mesos_zmq.agent.events import read_appended

    path = tmp_path / "events"
    events: list[SupervisorEvent] = [Started(pid=5, seq=1), Health(healthy=True, seq=2),
                                     Health(healthy=False, seq=3)]
    data = line(events[0]) + b"{torn\n" + b"".join(line(e) for e in events[1:])
    path.write_bytes(data)
    read, end = read_appended(path, 0, after=2)
    assert [event for event, _ in read] == events[2:] and end == len(data)
    # a file shorter than where we were is another file: read from its start
    read, end = read_appended(path, len(data) + 100, after=0)
    assert [event for event, _ in read] == events and end == len(data)
    assert read_appended(tmp_path / "missing", 7) == ([], 7)


@pytest.fixture
def containerizer(tmp_path: Path) -> Iterator[Containerizer]:
    c = Containerizer(tmp_path / "work", Posix())
    yield c
    c.close(wait=True)


def watched(c: Containerizer, path: Path) -> Container:
    container = Container(framework_id="F1", task_id="flap", container_id="c1", events=path,
                          sandbox=path.parent, limits=Limits())
    c.containers[container.key] = container
    return container


def consume(c: Containerizer, container: Container) -> list[SupervisorEvent]:
    events = c.new_events(container.key)
    for event in events:
        c.consumed(container.key, event)
    return events


def bytes_read() -> int:
    """What this process has read so far (every read and pread, whatever reads)."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        pytest.skip("no /proc/self/io to count reads with")
    return int(next(f for f in text.splitlines() if f.startswith("rchar:")).split()[1])


def test_the_agent_reads_only_what_was_appended(containerizer: Containerizer,
                                                tmp_path: Path) -> None:
    """Before: each poke read the whole file (a flapping check's 6 MB, once per event)."""
    c = containerizer
    path = tmp_path / "events"
    n = 20_000
    path.write_bytes(line(Started(pid=5, seq=1)) + b"".join(
        line(Health(healthy=i % 2 == 0, message="health check passed", seq=i))
        for i in range(2, n + 1)))
    container = watched(c, path)
    assert len(consume(c, container)) == n  # the first read: the whole file, once
    size = path.stat().st_size
    assert size > 1_000_000 and container.last_seq == n
    costs = []
    for seq in range(n + 1, n + 6):
        extra = line(Health(healthy=seq % 2 == 0, seq=seq))
        with path.open("ab") as f:
            f.write(extra)
        before = bytes_read()
        assert [e.seq for e in consume(c, container)] == [seq]
        costs.append(bytes_read() - before)
    # Proportional to what was appended (a few hundred bytes), not to the file (1 MB+);
    # allow for a stat's worth of reading by anything else in the process.
    assert max(costs) < 64 * 1024, costs


def test_the_agent_waits_for_a_half_written_line(containerizer: Containerizer,
                                                 tmp_path: Path) -> None:
    c = containerizer
    path = tmp_path / "events"
    started, healthy = line(Started(pid=5, seq=1)), line(Health(healthy=True, seq=2))
    path.write_bytes(started + healthy[:7])
    container = watched(c, path)
    assert consume(c, container) == [Started(pid=5, seq=1)]
    assert container.events_offset == len(started)
    assert consume(c, container) == []
    with path.open("ab") as f:
        f.write(healthy[7:])
    assert consume(c, container) == [Health(healthy=True, seq=2,
                                            time=json.loads(healthy)["time"])]
    assert container.events_offset == len(started) + len(healthy)


def test_events_returned_but_not_consumed_come_again(containerizer: Containerizer,
                                                     tmp_path: Path) -> None:
    """The agent's loop consumes one event at a time: what it did not get to is read
    again, as when the whole file was read each time."""
    c = containerizer
    path = tmp_path / "events"
    events: list[SupervisorEvent] = [Started(pid=5, seq=1), Health(healthy=True, seq=2),
                                     Health(healthy=False, seq=3)]
    path.write_bytes(b"".join(line(e) for e in events))
    container = watched(c, path)
    first = c.new_events(container.key)
    assert [e.seq for e in first] == [1, 2, 3]
    c.consumed(container.key, first[0])
    assert [e.seq for e in c.new_events(container.key)] == [2, 3]
    assert [e.seq for e in consume(c, container)] == [2, 3]
    assert consume(c, container) == []
    assert container.events_offset == path.stat().st_size
