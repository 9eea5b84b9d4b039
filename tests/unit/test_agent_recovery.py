"""Agent recovery rules: checkpoint records, replay, and re-sending exactly what was
not acknowledged (no processes, no sockets)."""

from __future__ import annotations

import json
from pathlib import Path

from mesos_zmq.agent.checkpoint import TaskCheckpoint, TaskLog, launch_record, replay
from mesos_zmq.agent.core import SIGTERM, Effects, RecoveredTask
from mesos_zmq.protocol import KillTask, ReregisterAgent, StatusUpdate, TaskInfo
from tests.unit.test_agent_rules import ack, make, registered, run, updates


def records_of(fx: Effects, task_id: str) -> list[bytes]:
    return [json.dumps(dict(r, k=f"F1/{task_id}")).encode()
            for t, r in fx.checkpoint if t == ("F1", task_id)]


def to_recovered(cp: TaskCheckpoint) -> RecoveredTask:
    return RecoveredTask(framework_id=cp.framework_id, info=cp.info, state=cp.state,
                         exit_code=cp.exit_code, healthy=cp.healthy, pending=cp.pending,
                         kill_reason=cp.kill_reason)


INFO = TaskInfo(task_id="t1", agent_id="A1", resources="cpus:0.1", command="true")


def fold(lines: list[bytes]) -> TaskCheckpoint:
    launch = json.dumps(launch_record("F1", INFO, "c1", [])).encode()
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
        log.append([dict(r, k=f"F1/{t}", seq=1) for _, r in fx.checkpoint])
        log.append([dict(r, k=f"F1/{t}") for _, r in ack(core, fx, 1.1).checkpoint])
    fx = core.task_exited(("F1", "t2"), 0, None, 2.0)
    log.append([dict(r, k="F1/t2", seq=2) for _, r in fx.checkpoint])
    log.append([dict(r, k="F1/t2") for _, r in ack(core, fx, 2.1).checkpoint])
    log.append([{"k": "F1/t2", "forget": True}])
    fx = core.task_health(("F1", "t1"), False, "HTTP 500", 3.0)
    log.append([dict(r, k="F1/t1", seq=3) for _, r in fx.checkpoint])
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
