"""Acceptance 4 and 5: agent loss, and a master restart while tasks run."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from mesos_zmq.protocol import FrameworkInfo, TaskInfo
from mesos_zmq.scheduler import SchedulerDriver
from tests.cluster import Cluster, wait_until
from tests.integration.recording import Recorder, sleep_tasks

HEARTBEAT_LIMIT = 0.2 * 5  # the FAST flags of tests.cluster


@pytest.mark.integration
def test_killed_agent_tasks_become_lost_and_offers_rescinded(cluster: Cluster) -> None:
    cluster.start_master()
    victim = cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(2)
    rec = Recorder()
    victim_host = "agent0"
    # Short enough that the orphans of the killed agent end by themselves.
    rec.want(lambda o: o.hostname == victim_host, sleep_tasks("doomed", 2, 20))
    driver = SchedulerDriver(rec, FrameworkInfo(name="loss-test"), cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: rec.states("doomed-0")[-1:] == ["TASK_RUNNING"]
                   and rec.states("doomed-1")[-1:] == ["TASK_RUNNING"], 15,
                   what="tasks running")
        # Wait until the framework holds an offer for the victim's leftovers.
        held = wait_until(lambda: [o for o in list(rec.offers.values())
                                   if o.hostname == victim_host], 15, what="held offer")
        killed_at = time.monotonic()
        victim.send_signal(signal.SIGKILL)
        wait_until(lambda: "TASK_LOST" in rec.states("doomed-0")
                   and "TASK_LOST" in rec.states("doomed-1"), 10, what="LOST updates")
        lost_at = max(t for t, s in rec.updates if s.state == "TASK_LOST")
        print(f"LOST {lost_at - killed_at:.2f}s after SIGKILL "
              f"(heartbeat limit {HEARTBEAT_LIMIT:.1f}s)")
        assert lost_at - killed_at < HEARTBEAT_LIMIT + 3.0
        wait_until(lambda: {o.offer_id for o in held} <= {r for _, r in rec.rescinded}, 5,
                   what="offers rescinded")
        lost = [s for _, s in rec.updates if s.state == "TASK_LOST"]
        assert all(s.source == "master" for s in lost)
        assert len(lost) == 2  # exactly once each
    finally:
        driver.stop()
        driver.join()


@pytest.mark.integration
def test_master_restart_keeps_tasks_and_delivers_updates_once(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(2)
    rec = Recorder()
    rec.want(lambda o: True, sleep_tasks("survivor", 4, 4))
    driver = SchedulerDriver(rec, FrameworkInfo(name="restart-test", failover_timeout=60),
                             cluster.master_url)
    driver.start()
    try:
        ids = [f"survivor-{i}" for i in range(4)]
        wait_until(lambda: all(rec.states(t)[-1:] == ["TASK_RUNNING"] for t in ids), 15,
                   what="tasks running")
        first_id = rec.registered_ids[0]
        assert cluster.master is not None
        cluster.master.stop(signal.SIGKILL)
        time.sleep(0.5)
        cluster.start_master()
        cluster.wait_agents(2)
        wait_until(lambda: rec.reregistered_count >= 1, 15, what="framework re-subscribed")
        state = cluster.state()
        assert [f["id"] for f in state["frameworks"]] == [first_id]
        running = {t["id"] for t in state["tasks"] if t["state"] == "TASK_RUNNING"}
        assert running == set(ids), state["tasks"]
        wait_until(lambda: all("TASK_FINISHED" in rec.states(t) for t in ids), 20,
                   what="tasks finished")
        time.sleep(1.5)  # room for any duplicate to show up
        for task_id in ids:
            counts = Counter(rec.states(task_id))
            assert counts == {"TASK_RUNNING": 1, "TASK_FINISHED": 1}, (task_id, counts)
        assert rec.registered_ids == [first_id]
    finally:
        driver.stop()
        driver.join()


@pytest.mark.integration
def test_a_master_paused_past_the_heartbeat_limit_keeps_its_agents(cluster: Cluster) -> None:
    """SIGSTOP the master (a long stall: swap, a frozen VM) past the agents' heartbeat
    limit, then SIGCONT. It removed every agent at its first turn (their tasks LOST):
    what the agents sent meanwhile was still in the kernel's buffers, not yet read by
    ZeroMQ, so nothing looked queued and every peer looked silent for the whole pause.
    Checked from outside too: the task's process lives on."""
    cluster.master_args = ["--heartbeat-interval", "0.3", "--missed-heartbeats", "10"]
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:256")
    cluster.wait_agents(1)
    rec = Recorder()
    rec.want(lambda o: True, lambda offer: [TaskInfo(
        task_id="long", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
        command="echo $$ > pid; exec sleep 300")])
    driver = SchedulerDriver(rec, FrameworkInfo(name="pause", failover_timeout=120),
                             cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: rec.states("long") == ["TASK_RUNNING"], 20, what="running")
        cluster.master.pause()
        time.sleep(5.0)  # past the limit: 0.3 s x 10
        cluster.master.resume()
        time.sleep(6.0)  # past the limit again, once back
        assert rec.states("long") == ["TASK_RUNNING"], rec.states("long")
        agents = cluster.state()["agents"]
        assert len(agents) == 1 and agents[0]["connected"], agents
        sandbox = cluster.root / "agent0" / "frameworks" / rec.registered_ids[0] / "tasks"
        pid = int((sandbox / "long" / "pid").read_text())
        os.kill(pid, 0)  # still running (raises if not)
    finally:
        driver.stop()
        driver.join()
