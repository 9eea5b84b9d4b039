"""Agent recovery rules: checkpoint records, replay, and re-sending exactly what was
not acknowledged (no processes, no sockets)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mesos_zmq.agent.checkpoint import (
    TaskCheckpoint,
    TaskLog,
    encode_lines,
    forget_record,
    launch_record,
    replay,
)
from mesos_zmq.agent.core import SIGTERM, Effects, RecoveredTask
from mesos_zmq.agent.events import LogLine, Started, decode_event
from mesos_zmq.protocol import KillTask, ReregisterAgent, StatusUpdate, TaskInfo
from tests.unit.test_agent_rules import ack, make, registered, run, updates


def records_of(fx: Effects, task_id: str) -> list[bytes]:
    return encode_lines((f"F1/{task_id}", r) for t, r in fx.checkpoint
                        if t == ("F1", task_id)).splitlines()


def lines_of(fx: Effects, task_id: str, seq: int | None = None) -> list[LogLine]:
    return [(f"F1/{task_id}", r if seq is None else replace(r, seq=seq))
            for _, r in fx.checkpoint]


def to_recovered(cp: TaskCheckpoint) -> RecoveredTask:
    return RecoveredTask(framework_id=cp.framework_id, info=cp.info, state=cp.state,
                         exit_code=cp.exit_code, healthy=cp.healthy, pending=cp.pending,
                         kill_reason=cp.kill_reason)


INFO = TaskInfo(task_id="t1", agent_id="A1", resources="cpus:0.1", command="true")


def fold(lines: list[bytes]) -> TaskCheckpoint:
    launch = encode_lines([launch_record("F1", INFO, "c1", [])])
    (cp,) = replay([launch, *lines]).values()
    return cp


def test_every_update_and_ack_is_a_checkpoint_record() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1")
    log: list[bytes] = []
    fx = core.task_spawned(("F1", "t1"), 1.0)
    log += records_of(fx, "t1")
    log += records_of(ack(core, fx, 1.1), "t1")
    fx = core.task_exited(("F1", "t1"), 3, None, 2.0)
    log += records_of(fx, "t1")
    cp = fold(log)
    assert cp.state == "TASK_FAILED" and cp.exit_code == 3
    assert [s.state for s in cp.pending] == ["TASK_FAILED"]  # RUNNING was acknowledged


def test_restarted_agent_resends_unacknowledged_updates_with_their_uuids() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1")
    fx = core.task_spawned(("F1", "t1"), 1.0)
    (sent, _), = fx.messages
    assert isinstance(sent, StatusUpdate)
    lines = records_of(fx, "t1")  # the agent dies before the ack arrives
    fresh = make("A1")
    fresh.recover([to_recovered(fold(lines))], 5.0)
    fx = fresh.connected(5.0)
    (msg, _), = fx.messages
    assert isinstance(msg, ReregisterAgent)
    assert [(r.task.task_id, r.state) for r in msg.tasks] == [("t1", "TASK_RUNNING")]
    fx = registered(fresh, 5.1)
    (again, _), = fx.messages
    assert isinstance(again, StatusUpdate) and again.status.uuid == sent.status.uuid


def test_acknowledged_terminal_task_is_forgotten_on_recovery() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1")
    log: list[bytes] = []
    fx = core.task_spawned(("F1", "t1"), 1.0)
    log += records_of(fx, "t1") + records_of(ack(core, fx, 1.1), "t1")
    fx = core.task_exited(("F1", "t1"), 0, None, 2.0)
    log += records_of(fx, "t1")
    fx2 = ack(core, fx, 2.1)
    assert fx2.forget == [("F1", "t1")]
    log += records_of(fx2, "t1")
    fresh = make("A1")
    fx = fresh.recover([to_recovered(fold(log))], 5.0)
    assert fx.forget == [("F1", "t1")] and not fresh.tasks


def test_kill_in_progress_is_started_again_after_recovery() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1")
    fx = core.task_spawned(("F1", "t1"), 1.0)
    log = records_of(fx, "t1") + records_of(ack(core, fx, 1.1), "t1")
    fx = core.handle(KillTask(
        framework_id="F1", task_id="t1"), "", 2.0)
    log += records_of(fx, "t1")
    cp = fold(log)
    assert cp.kill_reason == "REASON_TASK_KILLED"
    fresh = make("A1")
    fx = fresh.recover([to_recovered(cp)], 5.0)
    assert fx.signal == [(("F1", "t1"), SIGTERM)]
    fx = fresh.task_exited(("F1", "t1"), None, 15, 5.5)
    assert updates(fx) == [] and fresh.tasks[("F1", "t1")].state == "TASK_KILLED"


def test_torn_last_line_is_ignored() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1")
    lines = records_of(core.task_spawned(("F1", "t1"), 1.0), "t1")
    cp = fold([*lines, b'{"update": {"task_id": "t1", "sta'])
    assert [s.state for s in cp.pending] == ["TASK_RUNNING"]


def test_event_sequence_numbers_are_remembered() -> None:
    cp = fold([b'{"k": "F1/t1", "seq": 1}', b'{"k": "F1/t1", "seq": 3}',
               b'{"k": "F1/t1", "ack": "nope", "seq": 2}'])
    assert cp.last_seq == 3 and cp.pending == []


def test_forgotten_tasks_are_gone_and_compaction_keeps_the_rest(tmp_path: Path) -> None:
    core = make("A1")
    registered(core)
    run(core, "t1", "t2")
    log = TaskLog(tmp_path)
    for t in ("t1", "t2"):
        info = TaskInfo(task_id=t, agent_id="A1", resources="cpus:0.1", command="true")
        log.append([launch_record("F1", info, f"c-{t}", [])])
    for t in ("t1", "t2"):
        fx = core.task_spawned(("F1", t), 1.0)
        log.append(lines_of(fx, t, seq=1))
        log.append(lines_of(ack(core, fx, 1.1), t))
    fx = core.task_exited(("F1", "t2"), 0, None, 2.0)
    log.append(lines_of(fx, "t2", seq=2))
    log.append(lines_of(ack(core, fx, 2.1), "t2"))
    log.append([forget_record("F1", "t2")])
    fx = core.task_health(("F1", "t1"), False, "HTTP 500", 3.0)
    log.append(lines_of(fx, "t1", seq=3))
    before = log.load()
    assert list(before) == ["F1/t1"]
    log.compact(list(before.values()))
    after = log.load()["F1/t1"]
    assert (after.state, after.healthy, after.last_seq) == ("TASK_RUNNING", False, 3)
    assert [s.uuid for s in after.pending] == [s.uuid for s in before["F1/t1"].pending]
    assert len(log.path.read_bytes().splitlines()) == 3  # launch, state, pending update


def test_oom_and_health_kills_have_their_own_reasons() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1", "t2")
    core.task_spawned(("F1", "t1"), 1.0)
    core.task_spawned(("F1", "t2"), 1.0)
    core.task_exited(("F1", "t1"), None, 9, 2.0, oom=True)
    core.task_exited(("F1", "t2"), None, 15, 2.0, killed="health check failed: HTTP 500")
    t1 = core.tasks[("F1", "t1")].updates[-1]
    t2 = core.tasks[("F1", "t2")].updates[-1]
    assert (t1.state, t1.reason) == ("TASK_FAILED", "REASON_CONTAINER_LIMITATION_MEMORY")
    assert "memory limit" in t1.message
    assert (t2.state, t2.reason, t2.healthy) == (
        "TASK_KILLED", "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED", False)


def test_health_changes_are_running_updates() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1")
    core.task_spawned(("F1", "t1"), 1.0)
    core.task_health(("F1", "t1"), True, "HTTP 200", 2.0)
    last = core.tasks[("F1", "t1")].updates[-1]
    assert (last.state, last.healthy) == ("TASK_RUNNING", True)


def test_supervisor_death_fails_the_task() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1")
    core.task_spawned(("F1", "t1"), 1.0)
    core.supervisor_lost(("F1", "t1"), 2.0)
    last = core.tasks[("F1", "t1")].updates[-1]
    assert (last.state, last.reason) == ("TASK_FAILED", "REASON_EXECUTOR_TERMINATED")


def test_unreadable_records_are_skipped_but_count_for_their_event_number() -> None:
    cp = fold([b'{"k": "F1/t1", "update": "garbage", "seq": 4}',
               b'{"k": "F1/t1", "ack": 12, "seq": 5}',
               b'{"k": "F1/t1", "forget": false}',
               b'{"k": "F1/t1", "state": [], "seq": true}',
               b'{"k": 7, "seq": 9}', b'{"seq": 9}', b"[]", b"null", b"\xff\xfe",
               b'{"k": "F1/t1", "kill": "REASON_TASK_KILLED"}'])
    assert (cp.last_seq, cp.state, cp.pending) == (5, "", [])
    assert cp.kill_reason == "REASON_TASK_KILLED"
    # a launch that cannot be read is a task that cannot be recovered
    launch = encode_lines([launch_record("F1", INFO, "c1", [])])
    assert replay([launch, b'{"k": "F1/t1", "launch": {"task": 1}}']) == {}


def test_supervisor_events_never_fail_to_read() -> None:
    junk: list[object] = [None, [], "x", {}, {"seq": "1"}, {"seq": 1.5, "event": "started"}]
    assert [decode_event(j) for j in junk] == [None] * len(junk)
    values: list[object] = [None, True, 3, -1, 2.5, "s", [], {}, [1], {"a": 1}]
    for kind in ("supervising", "started", "failed", "health", "exited", "later", None, 5):
        for value in values:
            raw = {"seq": 2, "event": kind, "time": value, "pid": value, "start": value,
                   "supervisor": value, "error": value, "healthy": value, "message": value,
                   "kill": value, "exit_code": value, "signal": value, "killed": value,
                   "oom": value}
            event = decode_event(raw)
            assert event is not None and event.seq == 2
            # and the agent core takes whatever was read
            core = make("A1")
            registered(core)
            run(core, "t1")
            core.supervisor_event(("F1", "t1"), event, 1.0)
    assert decode_event({"seq": 3, "event": "started", "pid": "12"}) == Started(pid=None,
                                                                                 seq=3)
