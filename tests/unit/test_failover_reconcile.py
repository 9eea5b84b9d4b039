"""A new leader reconciles a re-registering agent's report against its log
(mesos_zmq.master.agent_api.reconcile_agent, its names looked up once per agent rather
than per report): every branch at once, and the whole outcome checked: what the agent is
told, what is logged, what the tasks' states become."""

from __future__ import annotations

import itertools
from typing import Any

from mesos_zmq.master import records as r
from mesos_zmq.master.core import MasterCore, MasterCoreConfig
from mesos_zmq.master.state import MasterState
from mesos_zmq.protocol import (
    AgentRegistered,
    FrameworkInfo,
    KillTask,
    ReregisterAgent,
    RunTasks,
    ShutdownFramework,
    TaskInfo,
    TaskReport,
)
from mesos_zmq.tasks import TaskState

AGENT = "a000001"
PEER = b"agent-peer"


def _task(task_id: str, resources: str = "cpus:1;mem:64") -> TaskInfo:
    return TaskInfo(task_id=task_id, agent_id=AGENT, resources=resources, role="*",
                    command="sleep 3600")


def _core() -> MasterCore:
    state = MasterState()
    state.apply(r.FrameworkAdded(framework=FrameworkInfo(
        name="f", framework_id="f", roles=["*"], failover_timeout=3600.0), time=1.0))
    state.apply(r.AgentAdded(agent_id=AGENT, hostname="h1", resources="cpus:8;mem:4096",
                             time=1.0))
    for task_id, task_state in (("running", "TASK_RUNNING"), ("staged", "TASK_STAGING"),
                                ("unreachable", "TASK_RUNNING"), ("missing", "TASK_RUNNING"),
                                ("lost", "TASK_RUNNING")):
        state.apply(r.TaskAdded(framework_id="f", task=_task(task_id), state=task_state,
                                time=2.0))
    state.apply(r.TaskUpdated(framework_id="f", task_id="unreachable",
                              state="TASK_UNREACHABLE", time=3.0))
    state.apply(r.TaskUpdated(framework_id="f", task_id="lost", state="TASK_LOST",
                              time=3.0))
    counter = itertools.count()
    return MasterCore(MasterCoreConfig(), lambda: f"id{next(counter)}", state, now=10.0)


def _report(task_id: str, state: str = "TASK_RUNNING", framework_id: str = "f",
            resources: str = "cpus:1;mem:64") -> TaskReport:
    return TaskReport(task=_task(task_id, resources), framework_id=framework_id, state=state)


def test_every_branch_of_a_reconciliation() -> None:
    core = _core()
    reports = [
        _report("running"),                          # known and alive: nothing to do
        _report("unreachable"),                      # heard UNREACHABLE: now RUNNING
        _report("lost"),                             # already LOST: must be killed
        _report("gone-task", framework_id="gone"),   # its framework is unknown
        _report("adopted"),                          # unknown, its framework lives
        _report("invalid", resources="cpus:-1"),     # unknown and invalid: killed
    ]
    ready = core.handle(PEER, ReregisterAgent(agent_id=AGENT, hostname="h1",
                                              resources="cpus:8;mem:4096", tasks=reports),
                        "r1", 11.0)
    to_agent: list[Any] = [m for p, m, _ in ready.messages if p == PEER]
    assert isinstance(to_agent[-1], AgentRegistered) and to_agent[-1].reregistered
    told = to_agent[:-1]
    assert ShutdownFramework(framework_id="gone") in told
    assert KillTask(framework_id="f", task_id="lost") in told
    # refused, it runs on what the master offers again
    assert KillTask(framework_id="f", task_id="invalid") in told
    # the staged task was committed but never delivered: delivered now
    (run,) = [m for m in told if isinstance(m, RunTasks)]
    assert run.framework_id == "f" and [t.task_id for t in run.tasks] == ["staged"]
    assert len(told) == 4

    states = {task_id: rec.state for (_, task_id), rec in core.state.tasks.items()}
    assert states == {
        "running": TaskState.RUNNING,
        "staged": TaskState.STAGING,
        "unreachable": TaskState.RUNNING,
        "adopted": TaskState.STAGING,
    }
    for task_id, state in (("missing", TaskState.LOST), ("lost", TaskState.LOST)):
        rec = core.state.task("f", task_id)
        assert rec is not None and rec.state == state
    assert core.state.task("f", "invalid") is None
    assert core.state.task("gone", "gone-task") is None

    logged = [(type(rec).__name__, getattr(rec, "task_id", "") or getattr(
        getattr(rec, "task", None), "task_id", ""), getattr(rec, "state", ""))
        for rec in ready.records]
    assert ("TaskAdded", "adopted", "TASK_STAGING") in logged
    assert ("TaskUpdated", "unreachable", "TASK_RUNNING") in logged
    assert ("TaskUpdated", "missing", "TASK_LOST") in logged
    assert not [entry for entry in logged if entry[1] in ("running", "lost", "invalid",
                                                          "gone-task")]


def test_a_staged_task_killed_meanwhile_is_not_delivered_again() -> None:
    """Found by a review: a task killed while its agent was stopped (staging), the agent
    SIGKILLed and restarted without it: the master sent its launch again and it ran
    (558 of 600 killed tasks in a burst). Killed before it started, it never starts."""
    core = _core()
    core.staging_kills[("f", "staged")] = None  # as task_book.kill_task records it
    ready = core.handle(PEER, ReregisterAgent(agent_id=AGENT, hostname="h1",
                                              resources="cpus:8;mem:4096",
                                              tasks=[_report("running")]), "r1", 11.0)
    assert not [m for p, m, _ in ready.messages if isinstance(m, RunTasks)]
    rec = core.state.task("f", "staged")
    assert rec is None or rec.state == TaskState.KILLED
    killed = [rec for rec in ready.records if isinstance(rec, r.TaskUpdated)
              and rec.task_id == "staged"]
    assert killed and killed[0].state == "TASK_KILLED"
    assert killed[0].reason == "REASON_TASK_KILLED_DURING_LAUNCH"


def test_a_kill_of_a_staging_task_is_remembered() -> None:
    from mesos_zmq.master import task_book

    core = _core()
    task_book.kill_task(core, "f", "staged", 12.0)
    task_book.kill_task(core, "f", "running", 12.0)
    assert list(core.staging_kills) == [("f", "staged")]
