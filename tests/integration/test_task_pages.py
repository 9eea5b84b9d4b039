"""`mesos-zmq tasks --limit/--offset/--all` and a capped `state` against a real master
(issue 13, "reads": no answer ever needs to be larger than a page)."""

from __future__ import annotations

import json

import pytest

from tests.cluster import Cluster, wait_until


@pytest.mark.integration
def test_the_cli_pages_through_the_tasks_of_a_real_master(cluster: Cluster) -> None:
    cluster.start_master()
    cluster.start_agent()
    cluster.wait_agents(1)
    url = cluster.master_url
    ran = cluster.cli("run", "--master", url, "--instances", "7", "--cpus", "0.1",
                      "--mem", "16", "--quiet", "--", "true")
    assert ran.returncode == 0, ran
    wait_until(lambda: sum(t["state"] == "TASK_FINISHED" for t in cluster.state()["tasks"])
               == 7, what="7 finished tasks")

    first = cluster.cli("tasks", "--master", url, "--limit", "3", "--json")
    assert first.returncode == 0, first
    first_ids = [t["id"] for t in json.loads(first.stdout)]
    assert len(first_ids) == 3
    assert "tasks 1-3 of 7 shown (newest first)" in first.stderr
    assert "--offset 3" in first.stderr
    second = cluster.cli("tasks", "--master", url, "--limit", "3", "--offset", "3", "--json")
    second_ids = [t["id"] for t in json.loads(second.stdout)]
    last = cluster.cli("tasks", "--master", url, "--limit", "3", "--offset", "6", "--json")
    last_ids = [t["id"] for t in json.loads(last.stdout)]
    assert len(second_ids) == 3 and len(last_ids) == 1 and last.stderr == ""
    every = cluster.cli("tasks", "--master", url, "--all", "--json")
    assert every.returncode == 0 and every.stderr == "", every
    every_ids = [t["id"] for t in json.loads(every.stdout)]
    assert every_ids == first_ids + second_ids + last_ids and len(set(every_ids)) == 7
    oldest = cluster.cli("tasks", "--master", url, "--order", "asc", "--all", "--json")
    assert [t["id"] for t in json.loads(oldest.stdout)] == every_ids[::-1]
    assert json.loads(cluster.cli("tasks", "--master", url, "--active", "--json").stdout) == []

    table = cluster.cli("tasks", "--master", url, "--limit", "2")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATE", "EXIT"] and len(lines) == 3, table
    assert [line.split()[0] for line in lines[1:]] == first_ids[:2]
    refused = cluster.cli("tasks", "--master", url, "--limit", "5000")
    assert refused.returncode == 2 and "--limit" in refused.stderr

    summary = cluster.cli("state", "--master", url)
    assert summary.returncode == 0 and "tasks      0 active, 7 completed" in summary.stdout
    capped = json.loads(cluster.cli("state", "--master", url, "--json", "--tasks-limit",
                                    "2").stdout)
    assert [t["id"] for t in capped["tasks"]] == first_ids[:2]
    assert capped["task_counts"] == {"active": 0, "completed": 7}
    whole = json.loads(cluster.cli("state", "--master", url, "--json", "--all-tasks").stdout)
    assert len(whole["tasks"]) == 7
