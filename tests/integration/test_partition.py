"""Issue 5, acceptance 4: an agent SIGSTOPped past the heartbeat limit, then SIGCONTed."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest

from mesos_zmq.protocol import FrameworkInfo, Offer, TaskInfo
from mesos_zmq.scheduler import SchedulerDriver
from tests.cluster import Cluster, wait_until
from tests.integration.recording import Recorder

HEARTBEAT_LIMIT = 0.2 * 5  # the FAST flags of tests.cluster


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.integration
def test_partition_aware_and_plain_frameworks(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_master()
    agent = cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    trigger = tmp_path / "end-now"
    aware, plain = Recorder(), Recorder()

    def aware_tasks(offer: Offer) -> list[TaskInfo]:
        return [
            TaskInfo(task_id="pa-run", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
                     command="echo $$ > pid; exec sleep 60"),
            TaskInfo(task_id="pa-end", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
                     command=f"while [ ! -e {trigger} ]; do sleep 0.05; done; exit 4"),
        ]

    aware.want(lambda o: True, aware_tasks)
    plain.want(lambda o: True, lambda offer: [TaskInfo(
        task_id="plain-run", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
        command="echo $$ > pid; exec sleep 60")])
    d1 = SchedulerDriver(aware, FrameworkInfo(name="aware", capabilities=["PARTITION_AWARE"]),
                         cluster.master_url)
    d2 = SchedulerDriver(plain, FrameworkInfo(name="plain"), cluster.master_url)
    d1.start()
    d2.start()
    try:
        def all_running() -> bool:
            # Whichever framework subscribed first may hold the rest of the agent:
            # hand held offers back until both have launched.
            aware.release(d1)
            plain.release(d2)
            return (aware.states("pa-run") == ["TASK_RUNNING"]
                    and aware.states("pa-end") == ["TASK_RUNNING"]
                    and plain.states("plain-run") == ["TASK_RUNNING"])

        wait_until(all_running, 15, interval=0.2, what="all running")
        sandboxes = tmp_path / "agent0" / "frameworks"
        pa_pid = int(next(sandboxes.glob("*/tasks/pa-run/pid")).read_text())
        plain_pid = int(next(sandboxes.glob("*/tasks/plain-run/pid")).read_text())

        agent.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            wait_until(lambda: aware.states("pa-run")[-1:] == ["TASK_UNREACHABLE"]
                       and aware.states("pa-end")[-1:] == ["TASK_UNREACHABLE"]
                       and plain.states("plain-run")[-1:] == ["TASK_LOST"], 10,
                       what="partition noticed")
            print(f"partition noticed {time.monotonic() - stopped_at:.2f}s after SIGSTOP "
                  f"(limit {HEARTBEAT_LIMIT:.1f}s)")
            trigger.touch()  # one task ends while its agent is unreachable
            time.sleep(0.5)
            # While partitioned the tasks run on: the master only lost sight of them.
            assert alive(pa_pid) and alive(plain_pid)
        finally:
            agent.send_signal(signal.SIGCONT)

        wait_until(lambda: aware.states("pa-run")[-1:] == ["TASK_RUNNING"]
                   and aware.states("pa-end")[-1:] == ["TASK_FAILED"], 15,
                   what="partition-aware framework hears the real states")
        (back,) = [s for _, s in aware.updates if s.task_id == "pa-run"][-1:]
        assert back.reason == "REASON_AGENT_REREGISTERED"
        (ended,) = [s for _, s in aware.updates if s.task_id == "pa-end"][-1:]
        assert ended.exit_code == 4
        # The plain framework was told LOST: the returning agent kills its task...
        wait_until(lambda: not alive(plain_pid), 10, what="plain task killed by its agent")
        assert alive(pa_pid)
        time.sleep(1.0)
        # ...and the framework hears nothing after LOST.
        assert plain.states("plain-run") == ["TASK_RUNNING", "TASK_LOST"]
        assert aware.states("pa-run") == ["TASK_RUNNING", "TASK_UNREACHABLE", "TASK_RUNNING"]
        assert aware.states("pa-end") == ["TASK_RUNNING", "TASK_UNREACHABLE", "TASK_FAILED"]
        tasks = {t["id"]: t["state"] for t in cluster.state()["tasks"]}
        assert tasks["pa-run"] == "TASK_RUNNING" and tasks["plain-run"] == "TASK_LOST"
    finally:
        for d in (d1, d2):
            d.stop()
            d.join()
