"""Issue 5, acceptance 5: a framework process SIGKILLed and restarted with its id."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import Cluster, Proc, wait_until

SCRIPT = Path(__file__).with_name("failover_framework.py")


class FrameworkProc(Proc):
    """The failover framework as its own OS process (python, not the mesos-zmq CLI)."""

    def start(self) -> FrameworkProc:
        import os
        import subprocess

        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.popen = subprocess.Popen(
            [sys.executable, str(SCRIPT), *self.args], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        log.close()
        return self


def events(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def states(out: Path, task_id: str) -> list[str]:
    return [e["state"] for e in events(out) if e["event"] == "update" and e["task_id"] == task_id]


def start_framework(cluster: Cluster, tmp_path: Path, name: str, timeout: float,
                    framework_id: str = "") -> tuple[FrameworkProc, Path]:
    out = tmp_path / f"{name}.jsonl"
    args = ["--master", cluster.master_url, "--out", str(out),
            "--trigger", str(tmp_path / "trigger"), "--failover-timeout", str(timeout)]
    if framework_id:
        args += ["--framework-id", framework_id]
    proc = FrameworkProc(name, args, tmp_path / f"{name}.log").start()
    cluster.procs.append(proc)
    return proc, out


def keep_ids(n: int = 3) -> list[str]:
    return [f"keep-{i}" for i in range(n)]


@pytest.mark.integration
def test_framework_back_within_failover_timeout_keeps_its_tasks(cluster: Cluster,
                                                                tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    first, out1 = start_framework(cluster, tmp_path, "fw-first", timeout=30)
    wait_until(lambda: all(states(out1, t) == ["TASK_RUNNING"] for t in [*keep_ids(), "ender"]),
               20, what="tasks running")
    (fid,) = [e["framework_id"] for e in events(out1) if e["event"] == "registered"]
    first.stop(signal.SIGKILL)
    (tmp_path / "trigger").touch()  # 'ender' ends while its framework is away
    time.sleep(2.0)
    tasks = {t["id"]: t["state"] for t in cluster.state()["tasks"]}
    assert all(tasks[t] == "TASK_RUNNING" for t in keep_ids())
    second, out2 = start_framework(cluster, tmp_path, "fw-second", timeout=30,
                                   framework_id=fid)
    # A new scheduler process hears `registered` (as in Mesos), with the old id.
    wait_until(lambda: [e["framework_id"] for e in events(out2)
                        if e["event"] == "registered"] == [fid], 15, what="failed over")
    # The update the first process never saw is delivered to the second, once.
    wait_until(lambda: states(out2, "ender") == ["TASK_FAILED"], 15, what="pending update")
    (ender,) = [e for e in events(out2) if e["event"] == "update"]
    assert ender["exit_code"] == 5
    state = cluster.state()
    assert [f["id"] for f in state["frameworks"]] == [fid]
    tasks = {t["id"]: t["state"] for t in state["tasks"]}
    assert all(tasks[t] == "TASK_RUNNING" for t in keep_ids())
    second.stop(signal.SIGKILL)


@pytest.mark.integration
def test_framework_away_past_its_failover_timeout_loses_its_tasks(cluster: Cluster,
                                                                  tmp_path: Path) -> None:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    first, out1 = start_framework(cluster, tmp_path, "fw-first", timeout=2)
    wait_until(lambda: all(states(out1, t) == ["TASK_RUNNING"] for t in keep_ids()), 20,
               what="tasks running")
    (fid,) = [e["framework_id"] for e in events(out1) if e["event"] == "registered"]
    killed_at = time.monotonic()
    first.stop(signal.SIGKILL)

    def killed() -> bool:
        tasks = {t["id"]: t for t in cluster.state()["tasks"]}
        return all(tasks[t]["state"] == "TASK_KILLED" for t in keep_ids())

    wait_until(killed, 15, what="tasks killed after the failover timeout")
    print(f"tasks killed {time.monotonic() - killed_at:.2f}s after the framework died "
          "(failover_timeout 2 s, heartbeat limit 1 s)")
    assert time.monotonic() - killed_at >= 2.0
    state = cluster.state()
    assert state["frameworks"] == []
    assert not list((tmp_path / "agent0" / "meta" / "tasks").glob("*/keep-*/events")) or \
        wait_until(lambda: not list((tmp_path / "agent0" / "meta" / "tasks")
                                    .glob("*/keep-*/events")), 10, what="checkpoints gone")
    # Coming back too late is refused: the framework must subscribe afresh.
    late, out2 = start_framework(cluster, tmp_path, "fw-late", timeout=2, framework_id=fid)
    wait_until(lambda: any(e["event"] == "error" for e in events(out2)), 15, what="refusal")
    late.stop(signal.SIGKILL)
