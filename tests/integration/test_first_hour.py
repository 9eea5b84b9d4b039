"""What a new user meets in the first hour, with real processes (issue 10's defects)."""

from __future__ import annotations

import time

import pytest

from mesos_zmq.protocol import FrameworkInfo, Offer, TaskInfo
from mesos_zmq.scheduler import SchedulerDriver
from tests.cluster import Cluster, wait_until
from tests.integration.recording import Recorder


def fifo_task(offer: Offer) -> list[TaskInfo]:
    return [TaskInfo(task_id="t1", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
                     command="mkfifo pipe && echo ready && exec sleep 300")]


def task_states(cluster: Cluster) -> dict[tuple[str, str], str]:
    return {(t["framework_id"], t["id"]): t["state"] for t in cluster.state()["tasks"]}


@pytest.mark.integration
def test_two_frameworks_one_task_id_and_a_fifo_in_the_sandbox(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    recs = [Recorder(), Recorder()]
    drivers = []
    try:
        for i, rec in enumerate(recs):
            rec.want(lambda o: True, fifo_task)
            driver = SchedulerDriver(rec, FrameworkInfo(name=f"fw{i}"), cluster.master_url)
            driver.start()
            drivers.append(driver)
            if i:  # the first holds what is left of the agent: let the second have it
                wait_until(lambda: len(cluster.state()["frameworks"]) == 2, 10,
                           what="both frameworks subscribed")
                recs[0].release(drivers[0])
            wait_until(lambda rec=rec: "TASK_RUNNING" in rec.states("t1"), 20,
                       what=f"framework {i}'s t1 running")
        fid_a, fid_b = (rec.registered_ids[0] for rec in recs)

        # The id alone is ambiguous: the CLI says so and names both frameworks.
        out = cluster.cli("kill", "--master", cluster.master_url, "t1")
        assert out.returncode != 0 and "2 frameworks" in out.stderr, out.stderr
        assert fid_a in out.stderr and fid_b in out.stderr

        # A FIFO made by the task is refused at once, and the agent keeps beating.
        started = time.monotonic()
        out = cluster.cli("logs", "--master", cluster.master_url, "--framework", fid_a,
                          "--path", "pipe", "t1", timeout=30)
        assert out.returncode != 0 and "FIFO" in out.stderr, out.stderr
        assert time.monotonic() - started < 15
        time.sleep(2.0)  # > the 1 s heartbeat limit of the test cluster
        assert all(a["connected"] for a in cluster.state()["agents"])
        out = cluster.cli("logs", "--master", cluster.master_url, "--framework", fid_a, "t1")
        assert out.returncode == 0 and "ready" in out.stdout, out.stderr

        # Killing B's t1 kills B's only: A's keeps running and hears nothing.
        out = cluster.cli("kill", "--master", cluster.master_url, "--framework", fid_b, "t1")
        assert out.returncode == 0, out.stderr
        wait_until(lambda: "TASK_KILLED" in recs[1].states("t1"), 15, what="B's t1 killed")
        time.sleep(0.5)
        assert recs[0].states("t1") == ["TASK_RUNNING"]
        states = task_states(cluster)
        assert states[(fid_a, "t1")] == "TASK_RUNNING"
        assert states[(fid_b, "t1")] == "TASK_KILLED"
    finally:
        for driver in drivers:
            driver.stop()
            driver.join()


@pytest.mark.integration
def test_a_stopping_agent_is_taken_out_at_once_and_keeps_its_tasks(cluster: Cluster) -> None:
    # A heartbeat limit of 20 s: anything quicker than that is the agent's own word.
    cluster.master_args = ["--heartbeat-interval", "2", "--missed-heartbeats", "10"]
    cluster.start_master()
    agent = cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    rec = Recorder()
    rec.want(lambda o: True, lambda o: [TaskInfo(
        task_id="keeper", agent_id=o.agent_id, resources="cpus:0.1;mem:16",
        command="echo $$ > pid && exec sleep 300")])
    driver = SchedulerDriver(rec, FrameworkInfo(name="keep"), cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: "TASK_RUNNING" in rec.states("keeper"), 20, what="keeper running")
        wait_until(lambda: rec.offers, 10, what="the rest of the agent on offer")
        held = set(rec.offers)
        stopped = time.monotonic()
        agent.stop()  # SIGTERM: a restart under systemd
        wait_until(lambda: not cluster.state()["agents"][0]["connected"], 10,
                   what="the master to hear the agent stop")
        assert time.monotonic() - stopped < 10  # well before the 20 s limit
        wait_until(lambda: held <= {o for _, o in rec.rescinded}, 5, what="offers rescinded")
        assert cluster.state()["tasks"][0]["state"] == "TASK_RUNNING"
        cluster.start_agent(resources="cpus:2;mem:1024", index=0)
        cluster.wait_agents(1)
        (task,) = cluster.state()["tasks"]
        assert task["state"] == "TASK_RUNNING"
        assert rec.states("keeper") == ["TASK_RUNNING"]  # never lost, never restarted
    finally:
        driver.stop()
        driver.join()


@pytest.mark.integration
def test_the_master_keeps_its_id_and_says_where_and_when(cluster: Cluster) -> None:
    master = cluster.start_master()
    first = cluster.state()["master"]
    assert first["pid"] == master.pid and first["address"] == cluster.master_url
    assert isinstance(first["epoch"], int) and not first["replicated"]
    assert abs(first["now"] - time.time()) < 60  # wall clock, not seconds since boot
    master.stop()
    restarted = cluster.start_master()
    again = cluster.state()["master"]
    assert again["id"] == first["id"] and again["pid"] == restarted.pid
    assert again["epoch"] > first["epoch"]
    out = cluster.cli("state", "--master", cluster.master_url)
    assert f"{first['id']} leading at {cluster.master_url}" in out.stdout, out.stdout
