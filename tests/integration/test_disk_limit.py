"""Limits a task cannot pass on a real agent: its disk (Mesos's disk/du isolator with
--enforce_container_disk_quota) and, on cgroup hosts, its number of processes (the
agent's --cgroups-pids-max, 4096 unless set). Both seen from the task's side."""

from __future__ import annotations

import sys

import pytest

from mesos_zmq.protocol import FrameworkInfo, Offer, TaskInfo, TaskStatus
from mesos_zmq.scheduler import SchedulerDriver
from tests.cluster import Cluster, wait_until
from tests.integration.recording import Recorder
from tests.integration.test_agent_isolation import cgroups_kind


def run_one(cluster: Cluster, task_id: str, resources: str, command: str,
            until: tuple[str, ...], extra: list[str]) -> tuple[Recorder, list[TaskStatus]]:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024;disk:1024", extra=extra)
    cluster.wait_agents(1)
    rec = Recorder()

    def make(offer: Offer) -> list[TaskInfo]:
        return [TaskInfo(task_id=task_id, agent_id=offer.agent_id, resources=resources,
                         command=command)]

    rec.want(lambda o: True, make)
    driver = SchedulerDriver(rec, FrameworkInfo(name="limits"), cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: set(until) & set(rec.states(task_id)), 30,
                   what=f"{task_id} to end")
    finally:
        driver.stop()
        driver.join()
    return rec, [s for _, s in rec.updates if s.task_id == task_id]


@pytest.mark.integration
def test_a_task_writing_past_its_disk_is_failed(cluster: Cluster) -> None:
    rec, updates = run_one(
        cluster, "filler", "cpus:0.1;mem:32;disk:1",
        "echo started > marker; head -c 3145728 /dev/zero > big; sleep 60",
        ("TASK_FAILED", "TASK_FINISHED"), ["--container-disk-watch-interval", "0.2"])
    assert [s.state for s in updates] == ["TASK_RUNNING", "TASK_FAILED"]
    failed = updates[-1]
    assert failed.reason == "REASON_CONTAINER_LIMITATION_DISK"
    assert failed.message.startswith("disk limit exceeded: the sandbox uses 3")
    assert "task's disk of 1 MB" in failed.message
    assert failed.exit_code == 128 + 9
    sandbox = (cluster.root / "agent0" / "frameworks" / rec.registered_ids[0] / "tasks"
               / "filler")
    assert (sandbox / "marker").read_text() == "started\n"


PIDS_MAX = 16
ATTEMPTS = 60
#: starts sleeps until ATTEMPTS were tried, counts those the kernel let it fork, says
#: how many, and cleans up (the agent kills the cgroup's leftovers too)
FORKER = f"""
import subprocess
children = []
for _ in range({ATTEMPTS}):
    try:
        children.append(subprocess.Popen(["sleep", "30"]))
    except OSError:
        pass
print(len(children), flush=True)
for child in children:
    child.kill()
    child.wait()
"""


@pytest.mark.integration
@pytest.mark.skipif(cgroups_kind() == "posix", reason="no writable cgroups on this host")
def test_a_task_cannot_fork_past_the_pids_limit(cluster: Cluster) -> None:
    command = f"exec {sys.executable} -c '{FORKER}'"
    rec, updates = run_one(cluster, "forker", "cpus:0.5;mem:128", command,
                           ("TASK_FINISHED", "TASK_FAILED"),
                           ["--cgroups-pids-max", str(PIDS_MAX)])
    assert updates[-1].state == "TASK_FINISHED", updates[-1].message
    sandbox = (cluster.root / "agent0" / "frameworks" / rec.registered_ids[0] / "tasks"
               / "forker")
    started = int((sandbox / "stdout").read_text())
    print(f"pids.max {PIDS_MAX}: the task started {started} of {ATTEMPTS} sleeps")
    # The supervisor and the forker itself count too: at most PIDS_MAX - 2 sleeps.
    assert 1 <= started <= PIDS_MAX - 2
