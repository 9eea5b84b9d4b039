"""``mesos-zmq local`` must run its own cluster and stop on SIGTERM (no daemons here;
the real-process checks are in tests/integration/test_cli_local.py)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from mesos_zmq.cli import local as local_mod
from mesos_zmq.cli.local import (
    Interrupted,
    LocalCluster,
    PortInUse,
    StopSignals,
    exit_code_of,
    port_is_free,
)
from mesos_zmq.protocol import State


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_is_free(port)
        cluster = LocalCluster(tmp_path, 1, port, "cpus:1;mem:64")
        with pytest.raises(PortInUse, match=f"port {port} is in use .another master.*--port"):
            cluster.start()
        assert cluster.children == []  # no master, no agent joined anyone
    assert port_is_free(port)


class FakeProc:
    pid = 4242
    returncode = None

    def poll(self) -> None:
        return None


@pytest.mark.parametrize("master_facts", [{"pid": 999, "id": "theirs"}, {"id": "no-pid"}])
def test_a_master_that_is_not_ours_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              master_facts: dict[str, Any]) -> None:
    # Someone took the port between the check and our master's bind: our master fails,
    # theirs answers. Before, any answer passed the readiness check.
    state = {"master": master_facts, "agents": [], "frameworks": [], "tasks": [], "roles": []}
    monkeypatch.setattr(local_mod, "request", lambda *a, **k: State(state=state))
    cluster = LocalCluster(tmp_path, 1, 1, "cpus:1")
    proc: Any = FakeProc()
    cluster.master_proc = proc
    cluster.children.append(("master", proc))
    with pytest.raises(PortInUse, match="port 1 is in use"):
        cluster._wait_for(lambda s: True, deadline=float("inf"))
    state["master"] = {"pid": FakeProc.pid, "id": "ours"}
    cluster._wait_for(lambda s: True, deadline=float("inf"))  # ours: ready


def test_sigterm_and_sighup_interrupt_like_ctrl_c_except_during_teardown() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as signals:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            with pytest.raises(Interrupted) as info:
                os.kill(os.getpid(), sig)
                time.sleep(5)  # the handler interrupts it at once
            assert exit_code_of(info.value) == 128 + sig
        with signals.shield():
            os.kill(os.getpid(), signal.SIGTERM)  # ignored: the teardown goes on
    assert signal.getsignal(signal.SIGTERM) == before
    assert exit_code_of(KeyboardInterrupt()) == 130


def test_port_zero_means_any_free_port(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, 1, 0, "cpus:1")
    assert cluster.port > 0 and cluster.master == f"tcp://127.0.0.1:{cluster.port}"
