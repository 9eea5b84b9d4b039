"""Acceptance 2: `mesos-zmq run` against a master and two agents (separate processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.cluster import Cluster, free_port, wait_until


@pytest.mark.integration
def test_run_prints_output_and_exits_with_task_code(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_agent()
    cluster.start_agent()
    cluster.wait_agents(2)
    result = cluster.cli("run", "--master", cluster.master_url, "--",
                         "sh", "-c", "echo hi; exit 3")
    assert result.stdout == "hi\n", result
    assert result.returncode == 3, result

    table = cluster.cli("tasks", "--master", cluster.master_url)
    assert table.returncode == 0, table
    lines = [line for line in table.stdout.splitlines() if line.strip()]
    assert lines[0].split()[:3] == ["ID", "STATE", "EXIT"]
    row = lines[1].split()
    assert row[1:3] == ["FAILED", "3"], table.stdout

    as_json = json.loads(cluster.cli("tasks", "--json", "--master", cluster.master_url).stdout)
    assert as_json[0]["state"] == "TASK_FAILED" and as_json[0]["exit_code"] == 3
    # The framework behind `run` tore itself down when it finished.
    wait_until(lambda: not cluster.state()["frameworks"], 5, what="run framework removed")

    # A task id the user chose can be named in logs and kill without looking it up.
    named = cluster.cli("run", "--master", cluster.master_url, "--task-id", "hello",
                        "--", "echo", "named")
    assert named.returncode == 0 and named.stdout == "named\n", named
    logs = cluster.cli("logs", "--master", cluster.master_url, "hello")
    assert logs.returncode == 0 and logs.stdout == "named\n", logs
    bad = cluster.cli("run", "--master", cluster.master_url, "--task-id", "a/b", "--", "true")
    assert bad.returncode == 2 and "--task-id" in bad.stderr
    spaced = cluster.cli("run", "--master", cluster.master_url, "--name", "my job", "--",
                         "true", timeout=30)
    assert spaced.returncode == 2 and "--name" in spaced.stderr, spaced


@pytest.mark.integration
def test_operator_commands_and_errors(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_agent(attributes="rack:r1")
    cluster.wait_agents(1)
    agents = cluster.cli("agents", "--master", cluster.master_url)
    assert agents.returncode == 0 and "agent0" in agents.stdout
    state = json.loads(cluster.cli("state", "--json", "--master", cluster.master_url).stdout)
    assert state["agents"][0]["attributes"] == "rack:r1"
    frameworks = cluster.cli("frameworks", "--master", cluster.master_url)
    assert frameworks.returncode == 0 and frameworks.stdout.startswith("ID")
    agent_id = state["agents"][0]["id"]
    reserved = cluster.cli("reserve", "--master", cluster.master_url, agent_id,
                           "cpus(eng):1;mem(eng):128")
    assert reserved.returncode == 0, reserved.stderr
    listed = json.loads(cluster.cli("agents", "--json", "--master", cluster.master_url).stdout)
    assert listed[0]["reserved"] == "cpus(eng):1;mem(eng):128"
    too_much = cluster.cli("reserve", "--master", cluster.master_url, agent_id, "cpus(eng):99")
    assert too_much.returncode == 2 and "cpus:99" in too_much.stderr, too_much.stderr
    back = cluster.cli("unreserve", "--master", cluster.master_url, agent_id,
                       "cpus(eng):1;mem(eng):128")
    assert back.returncode == 0, back.stderr
    quota = cluster.cli("quota", "set", "--master", cluster.master_url, "--guarantee",
                        "cpus:lots", "eng")
    assert quota.returncode == 2 and "cpus:lots" in quota.stderr
    missing = cluster.cli("kill", "--master", cluster.master_url, "no-such-task")
    assert missing.returncode != 0
    assert "no-such-task" in missing.stderr and "Traceback" not in missing.stderr
    unreachable = cluster.cli("tasks", "--master", "tcp://127.0.0.1:1", timeout=30)
    assert unreachable.returncode != 0 and "Traceback" not in unreachable.stderr
    bad_flag = cluster.cli("master", "--port", "notaport")
    assert bad_flag.returncode != 0 and "Traceback" not in bad_flag.stderr
    port_taken = cluster.cli("master", "--port", str(cluster.port),
                             "--work-dir", str(cluster.root / "second-master"))
    assert port_taken.returncode == 2 and "Traceback" not in port_taken.stderr
    assert "Address already in use" in port_taken.stderr
    bad_resources = cluster.cli("agent", "--master", cluster.master_url, "--resources",
                                "cpus:many", "--work-dir", str(cluster.root / "bad-agent"))
    assert bad_resources.returncode == 2 and "cpus:many" in bad_resources.stderr


# ----------------------------------------------------------------------------- issue 10


@pytest.mark.integration
def test_run_says_what_it_does_on_stderr(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_agent()  # cpus:4
    cluster.wait_agents(1)
    url = cluster.master_url
    # Too big for every agent: said once, instead of a silent wait.
    too_big = cluster.cli("run", "--master", url, "--cpus", "8", "--timeout", "5", "--",
                          "true")
    assert too_big.returncode == 124, too_big
    assert too_big.stderr.count("no agent has cpus:8; largest is cpus:4 (agent0)") == 1, \
        too_big.stderr
    assert "timed out after 5s" in too_big.stderr

    one = cluster.cli("run", "--master", url, "--", "echo", "hi")
    assert one.returncode == 0 and one.stdout == "hi\n", one
    said = one.stderr.splitlines()
    assert said[0].startswith("run: waiting for an offer of cpus:0.1;mem:32"), said
    assert said[1].startswith("run: launched mesos-zmq-run-") and " on agent0 (agent " in said[1]
    assert said[2].endswith("TASK_FINISHED: command exited with status 0"), said

    two = cluster.cli("run", "--master", url, "--instances", "2", "--", "sh", "-c",
                      'echo "out ${MESOS_TASK_ID##*-}"; printf "no newline"; '
                      '[ "${MESOS_TASK_ID##*-}" = 1 ] && exit 5; exit 0')
    assert two.returncode == 5, two
    assert sorted(two.stdout.splitlines()) == ["task-0 | no newline", "task-0 | out 0",
                                                "task-1 | no newline", "task-1 | out 1"]
    assert "run: task-1 TASK_FAILED: command exited with status 5" in two.stderr
    assert two.stderr.splitlines()[-1] == "run: 2 tasks: 1 finished, 1 failed", two.stderr


def start_sleeping_run(cluster: Cluster) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """A cluster of one agent and `run -- sleep 30` in the background, its task running."""
    cluster.start_master()
    cluster.start_agent()
    cluster.wait_agents(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesos_zmq", "run", "--master", cluster.master_url, "--",
         "sleep", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL)
    try:
        running = wait_until(lambda: [t for t in cluster.state()["tasks"]
                                      if t["state"] == "TASK_RUNNING"], 15, what="task running")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, running[0]


@pytest.mark.integration
def test_run_reports_an_operator_kill(cluster: Cluster) -> None:
    proc, task = start_sleeping_run(cluster)
    try:
        killed = cluster.cli("kill", "--master", cluster.master_url, task["id"])
        assert killed.returncode == 0, killed
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert f"run: {task['id']} TASK_KILLED: killed by operator" in err, err
    assert proc.returncode == 143, err


@pytest.mark.integration
def test_a_refused_subscription_is_said_once(cluster: Cluster) -> None:
    cluster.master_args = ["--roles", "eng"]
    cluster.start_master()
    result = cluster.cli("run", "--master", cluster.master_url, "--role", "ops", "--", "true")
    assert result.returncode == 1, result
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "error from the master" in result.stderr and "ops" in result.stderr
    assert "driver aborted" not in result.stderr


@pytest.mark.integration
def test_run_without_a_master_gives_up_after_the_connect_timeout(cluster: Cluster) -> None:
    started = time.monotonic()
    result = cluster.cli("run", "--master", f"tcp://127.0.0.1:{free_port()}",
                         "--connect-timeout", "1", "--", "true", timeout=20)
    assert result.returncode == 2, result
    assert time.monotonic() - started < 10
    assert "within 1s" in result.stderr and "--connect-timeout" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_sigterm_to_run_kills_its_tasks(cluster: Cluster) -> None:
    proc, _task = start_sleeping_run(cluster)
    try:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    # Torn down at once (not after a failover timeout): the task is killed.
    wait_until(lambda: all(t["state"] == "TASK_KILLED" for t in cluster.state()["tasks"]),
               10, what="task killed")
