"""Acceptance 2: `mesos-zmq run` against a master and two agents (separate processes)."""

from __future__ import annotations

import json

import pytest

from tests.cluster import Cluster, wait_until


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
    assert too_much.returncode == 2 and "not free" in too_much.stderr
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
