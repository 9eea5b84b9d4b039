"""tools/zk.py removes the temporary data directory it made, however it stops.

ZooKeeper itself is faked here (the real one needs Java and Debian's package); the
tool's own start-up, signal handling and clean-up are the real code.
"""

from __future__ import annotations

import importlib.util
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mesos_zmq.testing.zookeeper import ZooKeeperUnavailable

TOOL = Path(__file__).resolve().parents[2] / "tools" / "zk.py"


@pytest.fixture
def zk_tool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("zk_tool", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield module
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


class FakeServer:
    def __init__(self, on_alive: Any) -> None:
        self.on_alive = on_alive

    def alive(self) -> bool:
        return bool(self.on_alive())


def fake_ensemble(on_alive: Any, fail_start: bool = False) -> type:
    class FakeEnsemble:
        instances: list[Any] = []

        def __init__(self, root: Path, size: int, tick_ms: int,
                     first_port: int | None = None) -> None:
            (root / "zk1").mkdir(parents=True)
            (root / "zk1" / "myid").write_text("1")
            self.servers = [FakeServer(on_alive)]
            self.stopped = False
            FakeEnsemble.instances.append(self)

        @property
        def hosts(self) -> str:
            return "127.0.0.1:2181"

        def start(self) -> Any:
            if fail_start:
                raise ZooKeeperUnavailable("ZooKeeper needs Java")
            return self

        def stop(self) -> None:
            self.stopped = True

    return FakeEnsemble


def leftovers(tmp_path: Path) -> list[Path]:
    return list(tmp_path.glob("mesos-zmq-zk-*"))


def test_sigterm_stops_the_servers_and_removes_the_temp_dir(
        zk_tool: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def terminate() -> bool:
        assert leftovers(tmp_path), "the data directory exists while serving"
        os.kill(os.getpid(), signal.SIGTERM)
        return True

    ensemble = fake_ensemble(terminate)
    monkeypatch.setattr(zk_tool, "Ensemble", ensemble)
    assert zk_tool.main([]) == 0
    assert ensemble.instances[0].stopped
    assert leftovers(tmp_path) == []
    assert "zk://127.0.0.1:2181/mesos-zmq" in capsys.readouterr().out


def test_a_failed_start_or_a_dead_server_cleans_up_too(
        zk_tool: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zk_tool, "Ensemble", fake_ensemble(lambda: True, fail_start=True))
    assert zk_tool.main([]) == 2
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(zk_tool, "Ensemble", fake_ensemble(lambda: False))
    assert zk_tool.main([]) == 1
    assert leftovers(tmp_path) == []


def test_a_given_dir_is_kept(zk_tool: ModuleType, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zk_tool, "Ensemble", fake_ensemble(lambda: False))
    assert zk_tool.main(["--dir", str(tmp_path / "mine")]) == 1
    assert (tmp_path / "mine" / "zk1" / "myid").exists()


def test_a_taken_port_is_refused_before_anything_starts(
        zk_tool: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert zk_tool.main(["--port", str(port)]) == 2
    assert f"port {port} is in use" in capsys.readouterr().err
