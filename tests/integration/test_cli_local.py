"""``mesos-zmq local`` runs its own cluster, and leaves nothing behind when stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.cluster import Cluster, free_port, wait_until


@pytest.mark.integration
def test_local_refuses_a_port_another_master_holds(cluster: Cluster) -> None:
    # It used to pass its readiness check against the other master, start its agents
    # there and run the task in someone else's cluster.
    cluster.start_master()
    started = time.monotonic()
    result = cluster.cli("local", "--port", str(cluster.port), "--agents", "1", "--",
                         "echo", "hi", timeout=30)
    assert cluster.state()["agents"] == [], "local's agents joined the other cluster"
    assert result.returncode == 2, result
    assert f"port {cluster.port} is in use (another master?): use --port" in result.stderr
    assert result.stdout == "" and time.monotonic() - started < 10


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def command_line(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.integration
def test_sigterm_tears_local_down_like_ctrl_c(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    err_path = tmp_path / "local.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mesos_zmq", "local", "--port", str(free_port()),
             "--agents", "1", "--", "sleep", "60"],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
            env=dict(os.environ, TMPDIR=str(temp)), start_new_session=True)
    tree: list[psutil.Process] = []
    try:
        # Every process of the cluster, the task's included (agent -> launcher -> sleep).
        tree += wait_until(lambda: (lambda t: t if any("sleep" in command_line(p) for p in t)
                                    else None)(descendants(proc.pid)),
                           20, what="the task's process")
        assert len(tree) >= 3 and list(temp.glob("mesos-zmq-local-*"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 128 + signal.SIGTERM, err_path.read_text()
        wait_until(lambda: all(gone(p) for p in tree), 5, what="the cluster's processes gone")
        assert list(temp.glob("mesos-zmq-local-*")) == [], "temporary directory left behind"
    finally:  # when the test failed: stop what it started, by pid
        tree += descendants(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for child in tree:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
