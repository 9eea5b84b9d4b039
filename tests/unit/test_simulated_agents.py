"""The simulated agents (tools/simulate_agents.py) read what the master sends as a real
agent does: a batch frame (several messages for one peer in one frame) is handled in
full and in order, a refused item counts as a bad frame without losing the others, and
the rest of a batch is dropped once the agent has reconnected. What they send is what a
real agent sends: a re-registration assembled from pieces packed in advance is byte for
byte the frame ``encode`` makes."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from mesos_zmq.protocol import (
    AgentRegistered,
    HealthCheck,
    ReregisterAgent,
    RunTasks,
    TaskInfo,
    TaskReport,
    batch_frame,
    encode,
)
from tools.simulate_agents import (
    Config,
    _Agent,
    _Worker,
    report_parts,
    reregistration_frame,
)


def _worker() -> tuple[_Worker, _Agent]:
    worker = _Worker(Config(master="", agents=1, processes=1), 0, 0, 1, "tcp://127.0.0.1:1")
    return worker, worker.agents[0]


def _registered_then_run(epoch: int = 3) -> list[bytes]:
    return [
        encode(AgentRegistered(agent_id="agent-1", heartbeat_interval=30.0,
                               missed_heartbeats=5), "", epoch),
        encode(RunTasks(framework_id="f", tasks=[TaskInfo(
            task_id="t-1", agent_id="agent-1", resources="cpus:1")]), "", epoch),
    ]


def test_a_batch_of_two_messages_is_handled_in_full() -> None:
    worker, agent = _worker()
    try:
        worker.on_frame(agent, batch_frame(_registered_then_run()), 1.0)
        assert agent.registered and agent.agent_id == "agent-1"
        assert list(agent.tasks) == [("f", "t-1")]
        # the task's TASK_RUNNING went out: RunTasks came after the registration
        assert agent.tasks[("f", "t-1")].state == "TASK_RUNNING"
        counts = worker.counts
        assert counts["frames_in"] == 1 and counts["registered"] == 1
        assert counts["run_tasks"] == 1 and counts["tasks_started"] == 1
        assert counts["updates_sent"] == 1 and counts["bad_frames"] == 0
        assert agent.max_epoch == 3
    finally:
        worker.context.term()


def test_a_refused_item_counts_as_a_bad_frame_and_the_others_still_count() -> None:
    worker, agent = _worker()
    try:
        registered, run = _registered_then_run()
        junk = msgpack.packb([1, "no_such_message", "", {}])
        worker.on_frame(agent, batch_frame([registered, junk, run]), 1.0)
        assert worker.counts["bad_frames"] == 1
        assert agent.registered and list(agent.tasks) == [("f", "t-1")]
        # a frame that is not msgpack at all is one bad frame
        worker.on_frame(agent, b"\xc1", 1.0)
        assert worker.counts["bad_frames"] == 2 and worker.counts["frames_in"] == 2
    finally:
        worker.context.term()


def test_a_stale_item_of_a_batch_is_ignored_alone() -> None:
    worker, agent = _worker()
    try:
        agent.max_epoch = 4
        registered, _ = _registered_then_run(epoch=3)
        _, run = _registered_then_run(epoch=4)
        worker.on_frame(agent, batch_frame([registered, run]), 1.0)
        assert worker.counts["stale_epoch"] == 1 and not agent.registered
        assert worker.counts["run_tasks"] == 1
    finally:
        worker.context.term()


def test_the_rest_of_a_batch_is_dropped_once_the_agent_reconnected() -> None:
    worker, agent = _worker()
    try:
        handled: list[str] = []
        original = worker.on_registered

        def reconnect_on_registered(a: _Agent, msg: AgentRegistered, now: float) -> Any:
            handled.append(msg.agent_id)
            original(a, msg, now)
            worker.connect(a, now, 10.0)  # as a "check" timer would

        worker.on_registered = reconnect_on_registered  # type: ignore[method-assign]
        worker.connect(agent, 0.0, 10.0)
        worker.on_frame(agent, batch_frame(_registered_then_run()), 1.0)
        assert handled == ["agent-1"]
        assert worker.counts["run_tasks"] == 0 and not agent.tasks
    finally:
        worker.disconnect(agent)
        worker.context.term()


def _reports(count: int) -> list[TaskReport]:
    states = ["TASK_STAGING", "TASK_RUNNING", "TASK_FINISHED", "TASK_KILLED"]
    out = []
    for i in range(count):
        task = TaskInfo(task_id=f"t-{i}", agent_id="agent-1", resources="cpus:0.5;mem:64",
                        name=f"näme {i}" if i % 3 else "", command="sleep 3600",
                        env={"SIM_SECONDS": str(i)} if i % 2 else {}, role="*",
                        argv=["a", "b"] if i % 5 == 4 else [],
                        shell=i % 5 != 4, kill_grace_period=2.5 if i % 4 == 1 else None,
                        health_check=HealthCheck(kind="TCP", port=80) if i == 7 else None,
                        user="nobody" if i == 3 else "")
        out.append(TaskReport(task=task, framework_id=f"fw-{i % 2}", state=states[i % 4]))
    return out


@pytest.mark.parametrize("count", [0, 1, 10, 15, 16, 40])
def test_an_assembled_reregistration_is_the_frame_encode_makes(count: int) -> None:
    """The simulated agents send the same bytes a real agent would."""
    reports = _reports(count)
    assembled = reregistration_frame(
        "agent-1", "sim-a-1", "cpus:8;mem:16384",
        [(report_parts(r.task, r.framework_id), r.state) for r in reports])
    assert assembled == encode(ReregisterAgent(agent_id="agent-1", hostname="sim-a-1",
                                               resources="cpus:8;mem:16384", tasks=reports))


def test_a_worker_reregisters_with_the_frame_encode_makes() -> None:
    worker, agent = _worker()
    try:
        worker.on_frame(agent, batch_frame(_registered_then_run()), 1.0)
        agent.registered = False
        worker.register(agent, 2.0)
        task = agent.tasks[("f", "t-1")]
        assert agent.reregistration == encode(ReregisterAgent(
            agent_id="agent-1", hostname=agent.hostname, resources=worker.config.resources,
            tasks=[TaskReport(task=task.info, framework_id="f", state="TASK_RUNNING")]))
    finally:
        worker.context.term()


def _reregistered(epoch: int) -> bytes:
    return encode(AgentRegistered(agent_id="agent-1", heartbeat_interval=30.0,
                                  missed_heartbeats=5, reregistered=True), "", epoch)


def test_an_agent_back_is_counted_and_timed_at_its_first_reregistration_only() -> None:
    """The failover figure of bench_cluster: an agent that re-registers twice after a
    leader change (an answer lost, a retry) counts once, at the first."""
    worker, agent = _worker()
    try:
        agent.agent_id = "agent-1"
        worker.new_leader("tcp://127.0.0.1:2", 1.0)
        worker.on_frame(agent, _reregistered(4), 2.0)
        agent.registered = False  # told to register again ("not_registered")
        worker.on_frame(agent, _reregistered(4), 3.5)
        counts = worker.counts
        assert counts["reregistered_acks"] == 2 and counts["last_reregistered_ms"] == 3500
        assert counts["reregistered_agents"] == 1
        assert counts["last_first_reregistered_ms"] == 2000
        # the next leader change counts it again
        worker.new_leader("tcp://127.0.0.1:3", 4.0)
        worker.on_frame(agent, _reregistered(5), 5.0)
        assert counts["reregistered_agents"] == 2
        assert counts["last_first_reregistered_ms"] == 5000
    finally:
        worker.context.term()
