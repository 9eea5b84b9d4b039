"""A task's user cannot keep a restarted agent from starting, nor from hearing its
supervisors.

Before: the agent's notification socket, also its single-instance lock, was an abstract
Unix socket named after its work dir. A task running as another user (``nobody``,
``--switch-user``) outlives an agent restart, and could bind that name while the agent
was down: the agent then refused to start ("another agent is already running") for as
long as the task ran. Now the lock is an ``flock`` in the agent's 0700 ``meta/`` and the
socket a file there, which no other user can take.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mesos_zmq.protocol import FrameworkInfo, Offer, TaskInfo
from mesos_zmq.scheduler import SchedulerDriver
from tests.cluster import Cluster, wait_until
from tests.integration.recording import Recorder

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a root agent"),
]

#: a Python that ``nobody`` can run (this venv's may live under root's 0700 home)
SYSTEM_PYTHON = "/usr/bin/python3"
#: the task: as nobody, bind the name the agent used to bind, then wait for ``go``
SQUAT = r"""
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
while True:  # taken while the agent runs (before the fix): until the agent stops
    try:
        s.bind(bytes.fromhex(sys.argv[1]))
        break
    except OSError:
        time.sleep(0.01)
open("bound", "w").close()
while not os.path.exists("go"):
    time.sleep(0.02)
sys.exit(3)
"""


def old_notify_address(work_dir: Path) -> bytes:
    digest = hashlib.sha1(os.path.abspath(work_dir).encode()).hexdigest()[:20]
    return b"\0mesos-zmq-agent-" + digest.encode()


@pytest.mark.integration
def test_a_squatting_task_survives_a_restart_and_the_agent_starts_anyway(
        cluster: Cluster) -> None:
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this host")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"no {SYSTEM_PYTHON} (the task, as nobody, may not reach this venv's)")
    # The master tolerates 10 s of agent silence: a restart is not a partition.
    cluster.master_args = ["--heartbeat-interval", "0.5", "--missed-heartbeats", "20"]
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    work = cluster.root / "agent0"
    rec = Recorder()

    def make(offer: Offer) -> list[TaskInfo]:
        return [TaskInfo(task_id="squat", agent_id=offer.agent_id,
                         resources="cpus:0.1;mem:64", user="nobody",
                         argv=[SYSTEM_PYTHON, "-c", SQUAT,
                               old_notify_address(work).hex()], shell=False)]

    rec.want(lambda o: True, make)
    driver = SchedulerDriver(rec, FrameworkInfo(name="squat", failover_timeout=60),
                             cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: "TASK_RUNNING" in rec.states("squat"), 20, what="squat running")
        agent = cluster.agents[0]
        agent.stop(signal.SIGTERM)  # a restart (the task and its supervisor run on)
        sandbox = work / "frameworks" / rec.registered_ids[0] / "tasks" / "squat"
        # The task binds the name while no agent runs (the old agent held it before).
        wait_until(lambda: (sandbox / "bound").exists(), 10, what="the name squatted")
        cluster.start_agent(resources="cpus:2;mem:1024", index=0)
        time.sleep(1.0)
        assert cluster.procs[-1].alive(), "the restarted agent refused to start"
        cluster.wait_agents(1)
        # A second agent on the same work dir is still refused, saying why.
        second = subprocess.run(
            [sys.executable, "-m", "mesos_zmq", "agent", "--master", cluster.master_url,
             "--work-dir", str(work), "--resources", "cpus:1;mem:128"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert second.returncode != 0
        assert f"another agent is already running with --work-dir {work}" in (
            second.stderr + second.stdout)
        # The supervisor the old agent started reports the task's end to the new one.
        (sandbox / "go").touch()
        wait_until(lambda: rec.states("squat")[-1:] == ["TASK_FAILED"], 15,
                   what="the end reported")
        (final,) = [s for _, s in rec.updates
                    if s.task_id == "squat" and s.state == "TASK_FAILED"]
        assert final.exit_code == 3
    finally:
        # The task ends itself whatever happened (an agent that never came back would
        # leave it running as nobody, holding the name).
        for sandbox in work.glob("frameworks/*/tasks/squat"):
            (sandbox / "go").touch()
        driver.stop()
        driver.join()
