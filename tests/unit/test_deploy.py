"""The systemd units verify cleanly and keep the settings operators rely on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ["mesos-zmq-master.service", "mesos-zmq-agent.service"]


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is required (Debian package systemd)"
    text = (DEPLOY / unit).read_text()
    # verify checks that ExecStart's binary exists: point it at this interpreter.
    role = "master" if "master" in unit else "agent"
    text = text.replace(f"ExecStart=/usr/local/bin/mesos-zmq {role}",
                        f"ExecStart={sys.executable} -m mesos_zmq {role}")
    path = tmp_path / unit
    path.write_text(text)
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                            timeout=60)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if unit in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def test_units_keep_restart_and_environment_settings() -> None:
    for unit in UNITS:
        text = (DEPLOY / unit).read_text()
        assert "EnvironmentFile=-/etc/mesos-zmq/" in text
        assert "Restart=always" in text
    agent = (DEPLOY / "mesos-zmq-agent.service").read_text()
    assert "KillMode=process" in agent  # tasks outlive an agent restart
