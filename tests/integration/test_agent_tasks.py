"""Agents running real processes: environment, kill, sandbox reads and their limits."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

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


@contextlib.contextmanager
def launcher_stopped(cluster: Cluster, tmp_path: Path, ids: list[str],
                     extra: list[str] | None = None) -> Iterator[tuple[Recorder, SchedulerDriver]]:
    """A framework launching ``ids`` (each touches a marker file) on an agent whose
    launcher is stopped (SIGSTOP) until the block ends; then, the launcher woken, none
    of them may run, and their states must not change."""
    cluster.start_master()
    agent = cluster.start_agent(resources="cpus:2;mem:1024", extra=extra)
    cluster.wait_agents(1)
    with open(f"/proc/{agent.pid}/task/{agent.pid}/children") as handle:
        (launcher,) = [int(pid) for pid in handle.read().split()]
    marks = tmp_path / "ran"
    marks.mkdir()
    rec = Recorder()
    rec.want(lambda o: True, lambda offer: [
        TaskInfo(task_id=t, agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
                 command=f"touch {marks}/{t}") for t in ids])
    driver = SchedulerDriver(rec, FrameworkInfo(name="launcher-stopped"), cluster.master_url)
    os.kill(launcher, signal.SIGSTOP)  # the launches reach it and wait there
    try:
        try:
            driver.start()
            yield rec, driver
        finally:
            os.kill(launcher, signal.SIGCONT)
        states = {t: rec.states(t) for t in ids}
        time.sleep(2.0)  # the launcher forks their supervisors now: they start nothing
        assert list(marks.iterdir()) == []
        assert {t: rec.states(t) for t in ids} == states
    finally:
        driver.stop()
        driver.join()


def test_a_task_killed_before_its_start_never_runs(cluster: Cluster, tmp_path: Path) -> None:
    """Found by a review: a kill of a task the agent had not started yet was only
    remembered; the task was started when its turn came, then killed (118 of 300 killed
    in a burst ran their command; with the launcher stopped, the framework heard
    nothing until it woke, and then the tasks ran). Mesos takes such a task off the
    queue and reports it TASK_KILLED (REASON_TASK_KILLED_DURING_LAUNCH)."""
    ids = [f"early-{i}" for i in range(3)]
    with launcher_stopped(cluster, tmp_path, ids) as (rec, driver):
        wait_until(lambda: rec.states(ids[0]) or len(rec.wanted) == 0, 15, what="launch")
        time.sleep(0.5)  # the launch requests are with the stopped launcher by now
        for t in ids:
            driver.kill_task(t)
        wait_until(lambda: all(rec.states(t) == ["TASK_KILLED"] for t in ids), 10,
                   what="killed while the launcher is stopped")
        reasons = {s.reason for _, s in rec.updates if s.task_id in ids}
        assert reasons == {"REASON_TASK_KILLED_DURING_LAUNCH"}


def test_a_task_not_started_in_time_is_failed_and_never_runs(cluster: Cluster,
                                                            tmp_path: Path) -> None:
    """Found by a review: with the agent's launcher stopped, launched tasks stayed
    TASK_STAGING for good, their resources held. Mesos fails the tasks of an executor
    that has not registered within --executor_registration_timeout."""
    ids = [f"late-{i}" for i in range(2)]
    with launcher_stopped(cluster, tmp_path, ids,
                          extra=["--executor-registration-timeout", "2"]) as (rec, _):
        wait_until(lambda: all(rec.states(t) == ["TASK_FAILED"] for t in ids), 15,
                   what="failed, not started in time")
        messages = {s.message for _, s in rec.updates if s.task_id in ids}
        assert all("not started within 2 s" in m for m in messages), messages
