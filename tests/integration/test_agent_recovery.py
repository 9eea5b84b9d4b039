"""Issue 5, acceptance 2: SIGKILL the agent while tasks run, restart it, lose nothing."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from mesos_zmq.protocol import FrameworkInfo, TaskInfo
from mesos_zmq.scheduler import SchedulerDriver
from tests.cluster import Cluster, wait_until
from tests.integration.recording import Recorder

LONG = 15
ENDING = 5


def recovery_tasks(trigger: Path, agent_id: str) -> list[TaskInfo]:
    """15 tasks that sleep on; 5 that end with exit code 3..7 once ``trigger`` exists."""
    tasks = [TaskInfo(task_id=f"long-{i}", agent_id=agent_id, resources="cpus:0.1;mem:16",
                      command="echo $$ > pid; exec sleep 120") for i in range(LONG)]
    for i in range(ENDING):
        tasks.append(TaskInfo(
            task_id=f"ending-{i}", agent_id=agent_id, resources="cpus:0.1;mem:16",
            command=f"echo $$ > pid; while [ ! -e {trigger} ]; do sleep 0.05; done; "
                    f"exit {3 + i}"))
    return tasks


@pytest.mark.integration
def test_agent_sigkill_and_restart_keeps_tasks_and_loses_no_update(
        cluster: Cluster, tmp_path: Path) -> None:
    # The master tolerates 10 s of agent silence (Mesos's default is 75 s): a restart
    # is not a partition.
    cluster.master_args = ["--heartbeat-interval", "0.5", "--missed-heartbeats", "20"]
    cluster.start_master()
    cluster.start_agent(resources="cpus:4;mem:2048")
    cluster.wait_agents(1)
    trigger = tmp_path / "go"
    rec = Recorder()

    rec.want(lambda o: True, lambda offer: recovery_tasks(trigger, offer.agent_id))
    driver = SchedulerDriver(rec, FrameworkInfo(name="recovery", failover_timeout=60),
                             cluster.master_url)
    driver.start()
    ids = [f"long-{i}" for i in range(LONG)] + [f"ending-{i}" for i in range(ENDING)]
    sandbox = tmp_path / "agent0" / "frameworks"
    try:
        wait_until(lambda: all(rec.states(t) == ["TASK_RUNNING"] for t in ids), 20,
                   what="20 tasks running")
        pids = {t: int(next(sandbox.glob(f"*/tasks/{t}/pid")).read_text()) for t in ids}
        agent = cluster.agents[0]
        agent.stop(signal.SIGKILL)
        trigger.touch()  # five tasks end while no agent runs
        wait_until(lambda: not any(psutil.pid_exists(pids[f"ending-{i}"])
                                   and psutil.Process(pids[f"ending-{i}"]).status()
                                   != psutil.STATUS_ZOMBIE for i in range(ENDING)), 10,
                   what="the five tasks to end")
        assert all(psutil.pid_exists(pids[f"long-{i}"]) for i in range(LONG))
        time.sleep(0.5)
        restarted_at = time.monotonic()
        cluster.start_agent(resources="cpus:4;mem:2048", index=0)
        wait_until(lambda: all(rec.states(f"ending-{i}")[-1:] == ["TASK_FAILED"]
                               for i in range(ENDING)), 20, what="five exits reported")
        print(f"exits reported {time.monotonic() - restarted_at:.2f}s after the restart")
        for i in range(ENDING):
            (final,) = [s for _, s in rec.updates if s.task_id == f"ending-{i}"
                        and s.state == "TASK_FAILED"]
            assert final.exit_code == 3 + i, final
            assert final.source == "agent"
        # The fifteen ran on untouched: same processes, no update besides RUNNING.
        time.sleep(1.0)
        for i in range(LONG):
            proc = psutil.Process(pids[f"long-{i}"])
            assert proc.status() != psutil.STATUS_ZOMBIE
            assert rec.states(f"long-{i}") == ["TASK_RUNNING"]
        # Exactly once: every (task, state) seen once, no uuid twice.
        with rec.lock:
            uuids = Counter(s.uuid for _, s in rec.updates)
            pairs = Counter((s.task_id, s.state) for _, s in rec.updates)
        assert max(uuids.values()) == 1
        assert max(pairs.values()) == 1
        state = cluster.state()
        running = [t for t in state["tasks"] if t["state"] == "TASK_RUNNING"]
        assert len(running) == LONG
        # The restarted agent can still kill a recovered task.
        driver.kill_task("long-0")
        wait_until(lambda: rec.states("long-0")[-1:] == ["TASK_KILLED"], 10,
                   what="recovered task killed")
        assert not psutil.pid_exists(pids["long-0"]) or (
            psutil.Process(pids["long-0"]).status() == psutil.STATUS_ZOMBIE)
    finally:
        driver.stop()
        driver.join()


@pytest.mark.integration
def test_killed_supervisor_fails_its_task_and_kills_it(cluster: Cluster,
                                                       tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    rec = Recorder()
    rec.want(lambda o: True, lambda offer: [TaskInfo(
        task_id="orphan", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
        command="echo $$ > pid; exec sleep 120")])
    driver = SchedulerDriver(rec, FrameworkInfo(name="supervisor-loss"), cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: rec.states("orphan") == ["TASK_RUNNING"], 15, what="running")
        events = next((tmp_path / "agent0" / "meta" / "events").glob("*/orphan"))
        (supervising,) = [json.loads(line) for line in events.read_text().splitlines()
                          if '"supervising"' in line]
        task_pid = int(next((tmp_path / "agent0" / "frameworks").glob(
            "*/tasks/orphan/pid")).read_text())
        os.kill(supervising["pid"], signal.SIGKILL)
        wait_until(lambda: rec.states("orphan")[-1:] == ["TASK_FAILED"], 15,
                   what="task failed after its supervisor died")
        final = [s for _, s in rec.updates if s.task_id == "orphan"][-1]
        assert final.reason == "REASON_EXECUTOR_TERMINATED"
        wait_until(lambda: not psutil.pid_exists(task_pid)
                   or psutil.Process(task_pid).status() == psutil.STATUS_ZOMBIE, 10,
                   what="the task killed too")
    finally:
        driver.stop()
        driver.join()
