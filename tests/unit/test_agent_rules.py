"""Agent core rules: registration, reliable ordered updates, kills (no processes)."""

from __future__ import annotations

import itertools
import random

from structlog.testing import capture_logs

from mesos_zmq.agent.core import SIGKILL, SIGTERM, AgentCore, Effects, TaskView
from mesos_zmq.agent.events import (
    Exited,
    Failed,
    Health,
    KillStarted,
    OtherEvent,
    Started,
    Supervising,
    UpdateAcked,
    UpdateRecorded,
)
from mesos_zmq.protocol import (
    Acknowledge,
    AgentRegistered,
    Error,
    Heartbeat,
    KillTask,
    ReadFile,
    RegisterAgent,
    ReregisterAgent,
    RunTasks,
    ShutdownFramework,
    StatusUpdate,
    TaskInfo,
)
from mesos_zmq.resources import Resources
from mesos_zmq.tasks import TaskState


def make(agent_id: str | None = None) -> AgentCore:
    """An agent whose first registration attempt goes at once (factor 0), whose updates
    are first re-sent after 1 to 2 s, with seeded jitter (test_agent_backoff.py holds
    the back-off rules at their real values)."""
    counter = itertools.count()
    return AgentCore("host", Resources.parse("cpus:2;mem:512"), "rack:r1", agent_id,
                     lambda: f"u{next(counter)}", kill_grace=3.0, retry_interval=1.0,
                     registration_backoff_factor=0.0, rng=random.Random(0))


def registered(core: AgentCore, now: float = 0.0) -> Effects:
    core.connected(now)
    return core.handle(AgentRegistered(agent_id="A1", heartbeat_interval=1.0,
                                       missed_heartbeats=5), "", now)


def updates(fx: Effects) -> list[tuple[str, str]]:
    return [(m.status.task_id, m.status.state) for m, _ in fx.messages
            if isinstance(m, StatusUpdate)]


def run(core: AgentCore, *task_ids: str, now: float = 0.0, grace: float | None = None) -> Effects:
    tasks = [TaskInfo(task_id=t, agent_id="A1", resources="cpus:0.1", command="true",
                      kill_grace_period=grace) for t in task_ids]
    return core.handle(RunTasks(framework_id="F1", tasks=tasks), "", now)


def ack(core: AgentCore, fx: Effects, now: float) -> Effects:
    (msg, _), = [(m, r) for m, r in fx.messages if isinstance(m, StatusUpdate)]
    s = msg.status
    return core.handle(Acknowledge(framework_id=s.framework_id, agent_id=s.agent_id,
                                   task_id=s.task_id, uuid=s.uuid), "", now)


def test_new_agent_registers_and_checkpoints_its_id() -> None:
    core = make()
    fx = core.connected(0)
    assert isinstance(fx.messages[0][0], RegisterAgent)
    fx = core.handle(AgentRegistered(agent_id="A1", heartbeat_interval=1.0,
                                     missed_heartbeats=5), "", 0)
    assert fx.checkpoint_agent_id == "A1" and core.registered


def test_known_agent_reregisters_with_its_tasks() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1")
    core.task_spawned(("F1", "t1"), 0.1)
    fx = core.connected(5)
    (msg, _), = fx.messages
    assert isinstance(msg, ReregisterAgent)
    assert [(r.task.task_id, r.state) for r in msg.tasks] == [("t1", "TASK_RUNNING")]


def test_registration_is_retried_until_answered() -> None:
    core = make()
    assert isinstance(core.connected(0).messages[0][0], RegisterAgent)
    assert core.tick(0.0).messages == []  # not again in the same instant
    # the first retry waits at most 2 * REGISTER_RETRY_MIN (factor 0)
    assert isinstance(core.tick(0.2).messages[0][0], RegisterAgent)


def test_not_registered_error_triggers_reregistration() -> None:
    core = make("A1")
    registered(core)
    fx = core.handle(Error(code="not_registered", message="who?"), "", 1)
    assert isinstance(fx.messages[0][0], ReregisterAgent) and not core.registered


def test_updates_are_ordered_and_retried_until_acknowledged() -> None:
    core = make()
    registered(core)
    fx = run(core, "t1")
    assert fx.launch and fx.launch[0][1].task_id == "t1"
    running = core.task_spawned(("F1", "t1"), 0.1)
    assert updates(running) == [("t1", "TASK_RUNNING")]
    finished = core.task_exited(("F1", "t1"), 0, None, 0.2)
    assert updates(finished) == []  # waits behind the unacknowledged RUNNING
    assert updates(core.tick(1.05)) == []  # never before retry_interval
    assert updates(core.tick(2.1)) == [("t1", "TASK_RUNNING")]  # retried within 2x
    after_ack = ack(core, running, 2.2)
    assert updates(after_ack) == [("t1", "TASK_FINISHED")]
    status = next(m.status for m, _ in after_ack.messages if isinstance(m, StatusUpdate))
    assert status.exit_code == 0 and status.message == "Command exited with status 0"
    ack(core, after_ack, 2.3)
    assert ("F1", "t1") not in core.tasks and core.knows(("F1", "t1"))


def test_exit_codes_and_signals_map_to_states() -> None:
    core = make()
    registered(core)
    run(core, "bad", "segv")
    for t in ("bad", "segv"):
        ack(core, core.task_spawned(("F1", t), 0), 0)
    fx = core.task_exited(("F1", "bad"), 3, None, 1)
    (s,) = [m.status for m, _ in fx.messages]
    assert (s.state, s.exit_code, s.message) == ("TASK_FAILED", 3, "Command exited with status 3")
    fx = core.task_exited(("F1", "segv"), None, 11, 1)
    (s,) = [m.status for m, _ in fx.messages]
    assert (s.state, s.exit_code) == ("TASK_FAILED", 139) and "SIGSEGV" in s.message


def test_kill_escalates_to_sigkill_after_grace() -> None:
    core = make()
    registered(core)
    run(core, "t1", grace=2.0)
    ack(core, core.task_spawned(("F1", "t1"), 0), 0)
    fx = core.handle(KillTask(framework_id="F1", task_id="t1"), "", 1.0)
    assert fx.signal == [(("F1", "t1"), SIGTERM)]
    assert core.tick(2.5).signal == []
    assert core.tick(3.0).signal == [(("F1", "t1"), SIGKILL)]
    fx = core.task_exited(("F1", "t1"), None, 9, 3.1)
    (s,) = [m.status for m, _ in fx.messages]
    assert s.state == "TASK_KILLED"


def test_kill_of_unknown_task_reports_lost_and_duplicate_launch_is_ignored() -> None:
    core = make()
    registered(core)
    fx = core.handle(KillTask(framework_id="F1", task_id="ghost"), "", 0)
    assert updates(fx) == [("ghost", "TASK_LOST")]
    run(core, "t1")
    assert run(core, "t1").launch == []


def test_unsafe_task_id_is_an_error_not_a_launch() -> None:
    core = make()
    registered(core)
    fx = run(core, "../../etc")
    assert fx.launch == [] and updates(fx) == [("../../etc", "TASK_ERROR")]


def test_shutdown_framework_kills_its_tasks() -> None:
    core = make()
    registered(core)
    run(core, "t1", "t2")
    core.task_spawned(("F1", "t1"), 0)
    core.task_spawned(("F1", "t2"), 0)
    fx = core.handle(ShutdownFramework(framework_id="F1"), "", 1)
    assert sorted(fx.signal) == [(("F1", "t1"), SIGTERM), (("F1", "t2"), SIGTERM)]


def test_kill_before_spawn_is_applied_once_spawned() -> None:
    core = make()
    registered(core)
    run(core, "t1")
    assert core.handle(KillTask(framework_id="F1", task_id="t1"), "", 0).signal == []
    assert core.task_spawned(("F1", "t1"), 0.1).signal == [(("F1", "t1"), SIGTERM)]


def test_master_silence_means_reconnect_and_heartbeats_are_sent() -> None:
    core = make()
    registered(core)
    assert any(isinstance(m, Heartbeat) for m, _ in core.tick(1.0).messages)
    assert core.tick(5.5).reconnect


def test_read_file_requests_go_to_the_shell_with_their_request_id() -> None:
    core = make()
    registered(core)
    fx = core.handle(ReadFile(agent_id="A1", task_id="t1"), "rid", 0)
    assert fx.read_file and fx.read_file[0][1] == "rid"


def test_shutting_down_agent_starts_no_new_task() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1")
    core.task_spawned(("F1", "t1"), 0.5)
    fx = core.shutdown(1.0)
    assert fx.signal == [(("F1", "t1"), SIGTERM)]
    fx = run(core, "late", now=1.5)
    assert fx.launch == []
    late = core.tasks[("F1", "late")].updates[-1]
    assert (late.state, late.reason) == ("TASK_LOST", "REASON_AGENT_SHUTDOWN")


def test_task_ids_are_per_framework_on_an_agent() -> None:
    """Two frameworks each launch "t1": both run, and one's kill or ack never touches the
    other's task (a second launch was dropped as a "retry" and a kill crossed over)."""
    core = make("A1")
    registered(core)
    run(core, "t1")
    first = core.handle(RunTasks(framework_id="F2", tasks=[
        TaskInfo(task_id="t1", agent_id="A1", resources="cpus:0.1", command="true")]), "", 0)
    assert [(fid, t.task_id) for fid, t in first.launch] == [("F2", "t1")]
    assert updates(core.task_spawned(("F1", "t1"), 0.1)) == [("t1", "TASK_RUNNING")]
    assert core.task_spawned(("F2", "t1"), 0.1).messages  # F2's own RUNNING update
    fx = core.handle(KillTask(framework_id="F2", task_id="t1"), "", 1.0)
    assert fx.signal == [(("F2", "t1"), SIGTERM)]
    assert not core.tasks[("F1", "t1")].killing
    # An acknowledgement names its framework too: F2's ack of F1's uuid does nothing.
    head = core.tasks[("F1", "t1")].updates[0]
    assert core.handle(Acknowledge(framework_id="F2", agent_id="A1", task_id="t1",
                                   uuid=head.uuid), "", 1.0).checkpoint == []
    # A framework restarted under a new id may reuse a finished task's id.
    core.task_exited(("F1", "t1"), 0, None, 2.0)
    while core.tasks.get(("F1", "t1")) is not None:
        head = core.tasks[("F1", "t1")].updates[0]
        core.handle(Acknowledge(framework_id="F1", agent_id="A1", task_id="t1",
                                uuid=head.uuid), "", 2.5)
    assert core.knows(("F1", "t1"))
    again = core.handle(RunTasks(framework_id="F3", tasks=[
        TaskInfo(task_id="t1", agent_id="A1", resources="cpus:0.1", command="true")]), "", 4)
    assert [(fid, t.task_id) for fid, t in again.launch] == [("F3", "t1")]


def test_update_timestamps_are_wall_clock() -> None:
    core = make("A1")
    core.wall_offset = 1.7e9  # the shell keeps it at time.time() - time.monotonic()
    registered(core)
    run(core, "t1")
    (msg, _), = core.task_spawned(("F1", "t1"), 5.0).messages
    assert isinstance(msg, StatusUpdate) and msg.status.timestamp == 1.7e9 + 5.0


def test_a_finished_task_never_runs_again() -> None:
    """The core moves tasks along the lifecycle table: a late start (or start failure)
    of a task whose end was already reported is refused, reported to no one, logged."""
    core = make("A1")
    registered(core)
    run(core, "t1")
    core.task_spawned(("F1", "t1"), 1.0)
    core.task_exited(("F1", "t1"), 0, None, 2.0)
    task = core.tasks[("F1", "t1")]  # FINISHED, not acknowledged yet
    before = list(task.updates)
    with capture_logs() as logs:
        fx = core.task_spawned(("F1", "t1"), 3.0)
        fx.extend(core.spawn_failed(("F1", "t1"), "too late", 3.0))
    assert fx == Effects()
    assert task.state == TaskState.FINISHED and task.exit_code == 0
    assert list(task.updates) == before
    assert [(e["log_level"], e["state"], e["refused"]) for e in logs] == [
        ("warning", "TASK_FINISHED", "TASK_RUNNING"),
        ("warning", "TASK_FINISHED", "TASK_FAILED")]


def test_supervisor_events_are_dispatched_by_type() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1", "t2", "t3")
    key = ("F1", "t1")
    assert core.supervisor_event(key, Supervising(pid=7, seq=1), 1.0) == Effects()
    assert updates(core.supervisor_event(key, Started(pid=8, seq=2), 1.0)) == [
        ("t1", "TASK_RUNNING")]
    assert core.supervisor_event(key, OtherEvent(kind="newer", seq=3), 1.0) == Effects()
    fx = core.supervisor_event(key, Health(healthy=False, message="HTTP 500", seq=4), 1.0)
    assert [(t, type(r)) for t, r in fx.checkpoint] == [(key, UpdateRecorded)]
    assert core.tasks[key].healthy is False
    # the shell's own finding that the memory limit ended it counts, unless the
    # supervisor killed the task itself
    core.supervisor_event(("F1", "t2"), Started(pid=9), 1.0)
    core.supervisor_event(("F1", "t2"), Exited(exit_code=None, signal=9), 2.0, oom=True)
    assert core.tasks[("F1", "t2")].updates[-1].reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    core.supervisor_event(key, Exited(exit_code=None, signal=15, killed="unhealthy"), 2.0,
                          oom=True)
    assert core.tasks[key].updates[-1].reason == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
    fx = core.supervisor_event(("F1", "t3"), Failed(error="no such file"), 2.0)
    (status,) = [m.status for m, _ in fx.messages if isinstance(m, StatusUpdate)]
    assert (status.state, status.message) == (
        "TASK_FAILED", "failed to start the task: no such file")


def test_checkpoint_records_are_typed_and_the_view_is_what_a_compaction_keeps() -> None:
    core = make("A1")
    registered(core)
    run(core, "t1")
    key = ("F1", "t1")
    spawned = core.task_spawned(key, 1.0)
    ((_, update),) = spawned.checkpoint
    assert isinstance(update, UpdateRecorded) and update.status.state == "TASK_RUNNING"
    assert ack(core, spawned, 1.1).checkpoint == [(key, UpdateAcked(update.status.uuid))]
    fx = core.handle(KillTask(framework_id="F1", task_id="t1"), "", 2.0)
    assert fx.checkpoint == [(key, KillStarted("REASON_TASK_KILLED"))]
    fx = core.task_exited(key, None, 15, 2.5)
    assert core.checkpoint_view(key) == TaskView(
        state="TASK_KILLED", exit_code=143, healthy=None,
        pending=tuple(r.status for _, r in fx.checkpoint if isinstance(r, UpdateRecorded)),
        kill_reason="REASON_TASK_KILLED")
    assert core.checkpoint_view(("F1", "nope")) is None


def test_a_task_killed_before_it_started_is_cancelled_and_reported_killed() -> None:
    """A kill of a task not yet started asks the shell to keep it from starting; taken
    off (its launch still queued) or written off (its supervisor finds its events file
    taken), it is TASK_KILLED and never RUNNING (Mesos: killed during launch)."""
    core = make()
    registered(core)
    run(core, "queued", "launched", "begun", grace=5.0)
    fx = core.handle(KillTask(framework_id="F1", task_id="queued"), "", 1.0)
    assert fx.cancel == [("F1", "queued")] and fx.signal == []
    fx = core.killed_unstarted(("F1", "queued"), 1.1)
    assert updates(fx) == [("queued", "TASK_KILLED")]
    (status,) = [m.status for m, _ in fx.messages if isinstance(m, StatusUpdate)]
    assert status.reason == "REASON_TASK_KILLED_DURING_LAUNCH"
    assert core.is_terminal(("F1", "queued"))
    assert updates(core.task_spawned(("F1", "queued"), 1.2)) == []  # never RUNNING
    # written off at the launcher: the supervisor's failed start is the kill's end
    core.handle(KillTask(framework_id="F1", task_id="launched"), "", 2.0)
    fx = core.spawn_failed(("F1", "launched"), "the task was killed before it started", 2.1)
    assert updates(fx) == [("launched", "TASK_KILLED")]
    # too late to keep it from starting: it starts, and is stopped at once
    core.handle(KillTask(framework_id="F1", task_id="begun"), "", 3.0)
    fx = core.task_spawned(("F1", "begun"), 3.1)
    assert updates(fx) == [("begun", "TASK_RUNNING")]
    assert fx.signal == [(("F1", "begun"), SIGTERM)]
    # a task that is not killed and fails to start is FAILED, as ever; a cancel of a
    # task that has started or ended changes nothing
    run(core, "plain")
    assert updates(core.spawn_failed(("F1", "plain"), "no such user", 4.0)) == [
        ("plain", "TASK_FAILED")]
    assert updates(core.killed_unstarted(("F1", "begun"), 4.1)) == []
