"""Issue 5 scope: draining an agent, GPUs handed out by device, sandbox GC, ports env."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mesos_zmq.protocol import FrameworkInfo, Offer, TaskInfo
from mesos_zmq.scheduler import SchedulerDriver
from tests.cluster import Cluster, wait_until
from tests.integration.recording import Recorder

# Ignores SIGTERM for a while so the drain's grace period is what ends it.
STUBBORN = "trap 'echo got TERM' TERM; echo $$ > pid; while :; do sleep 0.05; done"


@pytest.mark.integration
def test_drain_kills_tasks_after_the_grace_period_and_reports_drained(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    rec = Recorder()
    rec.want(lambda o: True, lambda offer: [TaskInfo(
        task_id=f"stubborn-{i}", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
        command=STUBBORN, kill_grace_period=30.0) for i in range(2)])
    driver = SchedulerDriver(rec, FrameworkInfo(name="drained"), cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: all(rec.states(f"stubborn-{i}") == ["TASK_RUNNING"]
                               for i in range(2)), 15, what="running")
        wait_until(lambda: rec.offers, 10, what="an offer held for the agent")
        (agent_id,) = [a["id"] for a in cluster.state()["agents"]]
        asked = time.monotonic()
        out = cluster.cli("agent", "drain", "--master", cluster.master_url, "--grace", "1.5",
                          agent_id)
        assert out.returncode == 0, out.stderr
        assert "draining: 2 task(s)" in out.stdout
        wait_until(lambda: all(rec.states(f"stubborn-{i}")[-1:] == ["TASK_KILLED"]
                               for i in range(2)), 15, what="tasks killed")
        took = time.monotonic() - asked
        print(f"drain with --grace 1.5: tasks killed {took:.2f}s after the request "
              "(their own grace period is 30 s)")
        assert 1.4 <= took < 10
        final = [s for _, s in rec.updates if s.state == "TASK_KILLED"]
        assert {s.reason for s in final} == {"REASON_AGENT_DRAINING"}
        assert rec.rescinded, "the held offer is rescinded"
        wait_until(lambda: cluster.state()["agents"][0]["drain"] == "DRAINED", 10,
                   what="DRAINED")
        listing = cluster.cli("agents", "--master", cluster.master_url)
        assert "DRAINED" in listing.stdout
        with rec.lock:
            rec.offers.clear()
        time.sleep(1.0)
        assert not rec.offers, "a drained agent is not offered"
        back = cluster.cli("agent", "reactivate", "--master", cluster.master_url, agent_id)
        assert back.returncode == 0, back.stderr
        wait_until(lambda: rec.offers, 10, what="offers again after reactivate")
        refused = cluster.cli("agent", "drain", "--master", cluster.master_url, "no-such-agent")
        assert refused.returncode == 2 and "no agent" in refused.stderr
    finally:
        driver.stop()
        driver.join()


@pytest.mark.integration
def test_tasks_see_exactly_their_gpus_and_ports(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024;ports:[31000-31009]",
                        extra=["--gpu-devices", "0,1,2,3"])
    cluster.wait_agents(1)
    (agent,) = cluster.state()["agents"]
    assert "gpus:4" in agent["resources"]
    rec = Recorder()
    show = 'echo "gpus=$CUDA_VISIBLE_DEVICES ports=$PORTS port0=$PORT0"'

    def make(offer: Offer) -> list[TaskInfo]:
        return [
            TaskInfo(task_id="two", agent_id=offer.agent_id,
                     resources="cpus:0.1;mem:16;gpus:2;ports:[31003-31004]",
                     command=f"{show}; sleep 30"),
            TaskInfo(task_id="one", agent_id=offer.agent_id, resources="cpus:0.1;mem:16;gpus:1",
                     command=f"{show}; sleep 30"),
            TaskInfo(task_id="none", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
                     command=show),
        ]

    rec.want(lambda o: True, make)
    driver = SchedulerDriver(rec, FrameworkInfo(name="gpu", capabilities=["GPU_RESOURCES"]),
                             cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: rec.states("none")[-1:] == ["TASK_FINISHED"]
                   and rec.states("two")[-1:] == ["TASK_RUNNING"]
                   and rec.states("one")[-1:] == ["TASK_RUNNING"], 15, what="tasks")
        sandboxes = tmp_path / "agent0" / "frameworks"

        def line(task_id: str) -> str:
            path = next(sandboxes.glob(f"*/tasks/{task_id}/stdout"))
            return wait_until(lambda: path.read_text().strip(), 5, what=f"{task_id} output")

        two, one, none = line("two"), line("one"), line("none")
        print(two, one, none, sep="\n")
        assert two == "gpus=0,1 ports=31003,31004 port0=31003"
        assert one == "gpus=2 ports= port0="
        assert none == "gpus= ports= port0="
    finally:
        driver.stop()
        driver.join()


@pytest.mark.integration
def test_old_sandboxes_are_garbage_collected(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024",
                        extra=["--gc-delay", "2", "--gc-disk-headroom", "0",
                               "--disk-watch-interval", "0.5"])
    cluster.wait_agents(1)
    rec = Recorder()
    rec.want(lambda o: True, lambda offer: [
        TaskInfo(task_id="brief", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
                 command="echo bye"),
        TaskInfo(task_id="lasting", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
                 command="sleep 60")])
    driver = SchedulerDriver(rec, FrameworkInfo(name="gc"), cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: rec.states("brief")[-1:] == ["TASK_FINISHED"], 15, what="finished")
        sandboxes = tmp_path / "agent0" / "frameworks"
        assert list(sandboxes.glob("*/tasks/brief"))
        wait_until(lambda: not list(sandboxes.glob("*/tasks/brief")), 20,
                   what="old sandbox removed")
        time.sleep(1.0)
        assert list(sandboxes.glob("*/tasks/lasting")), "a running task's sandbox stays"
    finally:
        driver.stop()
        driver.join()
