"""The systemd units verify cleanly, stay as hardened as deploy/README.md says, and keep
the settings operators rely on.

The exposure scores are read from the table in deploy/README.md (one source of truth):
a change that makes a unit less confined fails here until the README says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ["mesos-zmq-master.service", "mesos-zmq-agent.service"]
EXEC_START = re.compile(r"^ExecStart=\S+ (master|agent)$", re.MULTILINE)
OVERALL = re.compile(r"Overall exposure level for (\S+): ([0-9]+(?:\.[0-9]+)?)")
# A row of the README's score table: | `mesos-zmq-master.service` | 1.2 OK | ...
README_ROW = re.compile(r"^\|\s*`(mesos-zmq-[a-z]+\.service)`\s*\|\s*([0-9]+\.[0-9]+)\b",
                        re.MULTILINE)


def analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        # A skip here would silently drop the hardening guard: fail unless asked not to.
        if os.environ.get("MESOS_ZMQ_TEST_NO_SYSTEMD"):
            pytest.skip("systemd-analyze is not installed (MESOS_ZMQ_TEST_NO_SYSTEMD set)")
        pytest.fail("systemd-analyze is not installed: install Debian's systemd package "
                    "(tools/test.sh does), or set MESOS_ZMQ_TEST_NO_SYSTEMD=1 to skip")
    return path


def systemd_version(tool: str) -> str:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def runnable_copy(unit: str, directory: Path) -> Path:
    """The unit with ExecStart= pointing at this environment's mesos-zmq: ``verify``
    checks that the command exists, and /usr/local/bin/mesos-zmq does not here."""
    text = (DEPLOY / unit).read_text()
    script = Path(sys.executable).parent / "mesos-zmq"
    command = str(script) if script.exists() else f"{sys.executable} -m mesos_zmq"
    text, count = EXEC_START.subn(lambda m: f"ExecStart={command} {m.group(1)}", text)
    assert count == 1, f"{unit}: expected one 'ExecStart=... master|agent' line"
    path = directory / unit
    path.write_text(text)
    return path


def verify_complaints(tool: str, path: Path) -> tuple[int, list[str], str]:
    """verify's exit code and the lines it printed about this unit (it exits 0 on
    unknown keys and unparsable values, naming the file and line instead)."""
    result = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True,
                            timeout=120)
    output = result.stdout + result.stderr
    return result.returncode, [line for line in output.splitlines() if path.name in line], output


def exposure(tool: str, path: Path) -> float:
    result = subprocess.run([tool, "security", "--offline=yes", str(path)],
                            capture_output=True, text=True, timeout=120)
    found = OVERALL.search(result.stdout + result.stderr)
    assert found, f"no overall exposure level in:\n{result.stdout}{result.stderr}"
    return float(found.group(2))


def recorded_scores() -> dict[str, float]:
    return {unit: float(score)
            for unit, score in README_ROW.findall((DEPLOY / "README.md").read_text())}


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies(unit: str, tmp_path: Path) -> None:
    tool = analyze()
    code, ours, output = verify_complaints(tool, runnable_copy(unit, tmp_path))
    assert code == 0 and not ours, output


def test_verify_would_catch_a_broken_setting(tmp_path: Path) -> None:
    """The check above is not vacuous: a bad value in a copy of the unit is reported."""
    tool = analyze()
    path = runnable_copy(UNITS[0], tmp_path)
    path.write_text(path.read_text().replace("ProtectSystem=strict", "ProtectSystem=bogus"))
    _, ours, output = verify_complaints(tool, path)
    assert any("bogus" in line for line in ours), output


@pytest.mark.parametrize("unit", UNITS)
def test_exposure_does_not_rise_above_the_readme(unit: str) -> None:
    tool = analyze()
    recorded = recorded_scores()
    assert unit in recorded, f"deploy/README.md has no score row for {unit}"
    measured = exposure(tool, DEPLOY / unit)
    assert measured <= recorded[unit], (
        f"{unit}: systemd-analyze security --offline=yes says {measured}, deploy/README.md "
        f"records {recorded[unit]} ({systemd_version(tool)}): harden the unit again or "
        "update the table and say why")


def test_units_keep_restart_and_environment_settings() -> None:
    for unit in UNITS:
        text = (DEPLOY / unit).read_text()
        assert "EnvironmentFile=-/etc/mesos-zmq/" in text
        assert "Restart=always" in text
    master = (DEPLOY / "mesos-zmq-master.service").read_text()
    assert "User=mesos-zmq" in master  # not DynamicUser=: the state dir keeps its owner
    assert "StateDirectory=mesos-zmq/master" in master
    assert "MESOS_ZMQ_WORK_DIR=/var/lib/mesos-zmq/master" in master
    agent = (DEPLOY / "mesos-zmq-agent.service").read_text()
    assert "KillMode=process" in agent  # tasks outlive an agent restart
    assert "Delegate=yes" in agent  # the agent makes its tasks' cgroups
    assert "User=root" in agent


def test_agent_unit_leaves_tasks_the_hosts_view() -> None:
    """Tasks are processes of the agent's unit: a namespace or filter set there changes
    what every task can do (and differs between tasks started before and after an agent
    restart), so the agent's unit must not have these (see deploy/README.md)."""
    settings = {line.split("=", 1)[0] for line in
                (DEPLOY / "mesos-zmq-agent.service").read_text().splitlines()
                if "=" in line and not line.startswith("#")}
    changes_tasks = {"PrivateTmp", "ProtectSystem", "ProtectHome", "PrivateDevices",
                     "ProtectClock", "ProtectHostname", "ProtectKernelTunables",
                     "ProtectControlGroups", "NoNewPrivileges", "MemoryDenyWriteExecute",
                     "RestrictNamespaces", "RestrictAddressFamilies", "PrivateNetwork",
                     "SystemCallArchitectures", "DynamicUser", "UMask"}
    assert not settings & changes_tasks


def test_readme_drains_with_the_main_process_only() -> None:
    """Signalling the whole unit would reach every task too (SIGUSR1 kills by default)."""
    text = (DEPLOY / "README.md").read_text()
    assert "systemctl kill --kill-whom=main -s SIGUSR1 mesos-zmq-agent" in text
    assert "systemctl kill -s SIGUSR1" not in text
