"""Tasks run as their user on a real agent (Mesos's --switch_user, on by default):
what the task itself sees, and a user the agent's host does not know."""

from __future__ import annotations

import os
import pwd
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesos_zmq.protocol import FrameworkInfo, HealthCheck, Offer, TaskInfo, TaskStatus
from mesos_zmq.scheduler import SchedulerDriver
from tests.cluster import Cluster, wait_until
from tests.integration.recording import Recorder

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a root agent"),
]

ROOT_ONLY = Path(f"/tmp/mesos-zmq-root-only-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def root_file() -> Iterator[Path]:
    """A file only root may write, in a directory anyone can reach."""
    ROOT_ONLY.write_text("root's\n")
    os.chmod(ROOT_ONLY, 0o644)
    try:
        yield ROOT_ONLY
    finally:
        ROOT_ONLY.unlink()


def nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this host")


def run_one(cluster: Cluster, task: TaskInfo, until: str, *,
            extra: list[str] | None = None) -> tuple[Recorder, list[TaskStatus]]:
    """Start a master and an agent, run ``task`` until it reaches ``until``; its
    updates, and the framework's id in ``rec.registered_ids``."""
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024;disk:1024", extra=extra)
    cluster.wait_agents(1)
    rec = Recorder()

    def make(offer: Offer) -> list[TaskInfo]:
        return [TaskInfo(**{**{f: getattr(task, f) for f in task.__dataclass_fields__},
                            "agent_id": offer.agent_id})]

    rec.want(lambda o: True, make)
    driver = SchedulerDriver(rec, FrameworkInfo(name="users"), cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: until in rec.states(task.task_id), 20,
                   what=f"{task.task_id} {until}")
    finally:
        driver.stop()
        driver.join()
    return rec, [s for _, s in rec.updates if s.task_id == task.task_id]


def sandbox_of(cluster: Cluster, rec: Recorder, task_id: str) -> Path:
    return cluster.root / "agent0" / "frameworks" / rec.registered_ids[0] / "tasks" / task_id


def test_a_task_runs_as_its_user_and_cannot_write_roots_files(cluster: Cluster,
                                                              root_file: Path) -> None:
    entry = nobody()
    command = (
        "id -u; id -g; echo \"$HOME $USER $LOGNAME\"; "
        "touch mine && echo wrote-own-sandbox; "
        "touch /root/mesos-zmq-x 2>/dev/null && echo WROTE-ROOT || echo denied-root; "
        f"echo x 2>/dev/null >> {root_file} && echo WROTE-FILE || echo denied-file; "
        # the agent's work dir is open to the task (its sandbox is in it), not meta/,
        # where the task log holds every task's environment
        "ls ../../../.. >/dev/null && echo reached-work-dir; "
        "cat ../../../../meta/tasks.log 2>/dev/null && echo READ-TASK-LOG "
        "|| echo denied-task-log; "
        "ls ../../../../meta >/dev/null 2>&1 && echo LISTED-META || echo denied-meta; "
        "echo 'to stderr' >&2"
    )
    check = HealthCheck(kind="COMMAND", command=f'test "$(id -u)" = {entry.pw_uid}',
                        delay=0.0, interval=1.0, timeout=5.0, grace_period=0.0,
                        consecutive_failures=1)
    task = TaskInfo(task_id="as-nobody", agent_id="", resources="cpus:0.1;mem:32",
                    command=command + "; sleep 1", user="nobody", health_check=check)
    # meta/ as an older version left it (0755): the agent closes it at start
    meta = cluster.root / "agent0" / "meta"
    meta.mkdir(parents=True)
    meta.chmod(0o755)
    rec, updates = run_one(cluster, task, "TASK_FINISHED")
    assert any(s.healthy is True for s in updates), "the check, as nobody, never passed"
    assert stat.S_IMODE(meta.stat().st_mode) == 0o700
    sandbox = sandbox_of(cluster, rec, "as-nobody")
    lines = (sandbox / "stdout").read_text().splitlines()
    assert lines == [str(entry.pw_uid), str(entry.pw_gid),
                     f"{entry.pw_dir} nobody nobody", "wrote-own-sandbox", "denied-root",
                     "denied-file", "reached-work-dir", "denied-task-log", "denied-meta"]
    assert (sandbox / "stderr").read_text() == "to stderr\n"
    for path in (sandbox, sandbox / "stdout", sandbox / "stderr", sandbox / "mine"):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (entry.pw_uid, entry.pw_gid), path
    assert not Path("/root/mesos-zmq-x").exists()
    assert root_file.read_text() == "root's\n"


def test_a_user_the_agent_does_not_know_fails_the_task(cluster: Cluster) -> None:
    task = TaskInfo(task_id="ghost", agent_id="", resources="cpus:0.1;mem:32",
                    command="echo ran", user="no-such-user-7f3a")
    rec, updates = run_one(cluster, task, "TASK_FAILED")
    (failed,) = [s for s in updates if s.state == "TASK_FAILED"]
    assert "user 'no-such-user-7f3a' does not exist on this agent" in failed.message
    assert "TASK_RUNNING" not in [s.state for s in updates]
    assert not (sandbox_of(cluster, rec, "ghost") / "stdout").exists()
    assert cluster.agents[0].alive()


def test_without_switch_user_tasks_run_as_the_agent(cluster: Cluster) -> None:
    task = TaskInfo(task_id="as-agent", agent_id="", resources="cpus:0.1;mem:32",
                    command="id -u", user="nobody")
    rec, _ = run_one(cluster, task, "TASK_FINISHED", extra=["--no-switch-user"])
    sandbox = sandbox_of(cluster, rec, "as-agent")
    assert (sandbox / "stdout").read_text() == f"{os.geteuid()}\n"
    assert sandbox.stat().st_uid == os.geteuid()


def test_tiny_tasks_of_the_agents_own_user_all_finish(cluster: Cluster) -> None:
    """Found by tools/bench_launch.py: tasks of mem:1 run as the agent's own user went
    through a full fork (a pointless switch) whose copied pages were charged to the
    task's 1 MB cgroup, and about 6% ended TASK_FAILED (supervisor or task OOM-killed)."""
    cluster.start_master()
    cluster.start_agent(resources="cpus:4;mem:1024")
    cluster.wait_agents(1)
    out = cluster.cli("run", "--master", cluster.master_url, "--cpus", "0.01", "--mem", "1",
                      "--instances", "300", "--user", pwd.getpwuid(os.geteuid()).pw_name,
                      "--quiet", "--", "true")
    assert out.returncode == 0, out.stderr
