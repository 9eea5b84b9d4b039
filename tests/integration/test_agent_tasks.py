"""Agents running real processes: environment, kill, sandbox reads and their limits."""

from __future__ import annotations

import threading

import pytest

from mesos_zmq.protocol import Error, FileData, FrameworkInfo, Message, Offer, TaskInfo
from mesos_zmq.scheduler import SchedulerDriver
from tests.cluster import Cluster, wait_until
from tests.integration.recording import Recorder, sleep_tasks


def read(driver: SchedulerDriver, agent_id: str, task_id: str, path: str) -> Message:
    done = threading.Event()
    box: list[Message] = []

    def got(reply: Message) -> None:
        box.append(reply)
        done.set()

    driver.read_file(agent_id, task_id, path, 0, 65536, got)
    assert done.wait(10), f"no answer reading {path}"
    return box[0]


@pytest.mark.integration
def test_environment_kill_and_sandbox_reads(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024;ports:[31000-31009]")
    cluster.wait_agents(1)
    rec = Recorder()

    def env_task(offer: Offer) -> list[TaskInfo]:
        return [TaskInfo(task_id="env", agent_id=offer.agent_id,
                         resources="cpus:0.1;mem:16;ports:[31003-31004]",
                         command='echo "$MESOS_TASK_ID $PORT0 $PORTS $MY_VAR"; pwd',
                         env={"MY_VAR": "x1"})]

    rec.want(lambda o: True, env_task)
    driver = SchedulerDriver(rec, FrameworkInfo(name="agent-test"), cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: "TASK_FINISHED" in rec.states("env"), 15, what="env task")
        agent_id = rec.updates[-1][1].agent_id
        out = read(driver, agent_id, "env", "stdout")
        assert isinstance(out, FileData) and out.done
        first, cwd = out.data.decode().splitlines()
        assert first == "env 31003 31003,31004 x1"
        assert cwd.endswith("/tasks/env")
        for hostile in ("../../../../etc/passwd", "/etc/passwd", "..", "missing.txt"):
            reply = read(driver, agent_id, "env", hostile)
            assert isinstance(reply, Error) and reply.code == "invalid", hostile
        reply = read(driver, agent_id, "no-such-task", "stdout")
        assert isinstance(reply, Error)

        rec.want(lambda o: True, sleep_tasks("victim", 1, 300))
        rec.release(driver)
        wait_until(lambda: rec.states("victim-0")[-1:] == ["TASK_RUNNING"], 15,
                   what="victim running")
        driver.kill_task("victim-0")
        wait_until(lambda: "TASK_KILLED" in rec.states("victim-0"), 10, what="killed")
        killed = [s for _, s in rec.updates if s.task_id == "victim-0"][-1]
        assert killed.exit_code == 128 + 15 and "SIGTERM" in killed.message
    finally:
        driver.stop()
        driver.join()
