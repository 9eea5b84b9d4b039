"""CLI argument plumbing: flags, env vars, one-line errors (no daemons started)."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from mesos_zmq.cli import main as cli_main
from mesos_zmq.cli.tables import render_table


def test_weights_parse_and_reject() -> None:
    assert cli_main.parse_weights("a=1, b=3") == {"a": 1.0, "b": 3.0}
    assert cli_main.parse_weights("") == {}
    for bad in ("a", "a=x", "a=0", "a=-1", "a=inf"):
        with pytest.raises(click.BadParameter):
            cli_main.parse_weights(bad)


def test_master_flags_and_env_reach_config(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run_master(config: Any) -> int:
        seen["config"] = config
        return 0

    monkeypatch.setattr("mesos_zmq.master.server.run_master", fake_run_master)
    monkeypatch.setattr(cli_main, "configure_logging", lambda *a, **k: None)
    runner = CliRunner()
    result = runner.invoke(
        cli_main.cli, ["master", "--port", "6060", "--weights", "eng=2", "--roles", "eng,ops",
                       "--offer-timeout", "30", "--fair-sharing-excluded-resource-names", "gpus",
                       "--role-min-allocatable-resources", "ml=cpus:1;mem:1024|gpus:1"],
        env={"MESOS_ZMQ_WORK_DIR": "/tmp/from-env", "MESOS_ZMQ_HEARTBEAT_INTERVAL": "0.5"},
    )
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.port == 6060 and config.work_dir == "/tmp/from-env"
    assert config.heartbeat_interval == 0.5
    assert config.weights == {"eng": 2.0} and config.roles == ("eng", "ops")
    assert config.offer_timeout == 30.0 and config.fair_sharing_excluded == ("gpus",)
    assert config.role_min_allocatable == {"ml": "cpus:1;mem:1024|gpus:1"}


def test_bad_flag_is_one_clear_line() -> None:
    result = CliRunner().invoke(cli_main.cli, ["master", "--port", "99999"])
    assert result.exit_code == 2
    assert "--port" in result.output and "Traceback" not in result.output


def test_help_lists_env_vars() -> None:
    result = CliRunner().invoke(cli_main.cli, ["agent", "--help"])
    assert result.exit_code == 0
    assert "MESOS_ZMQ_RESOURCES" in result.output and "MESOS_ZMQ_WORK_DIR" in result.output


def test_table_rendering() -> None:
    text = render_table([("id", "ID"), ("ok", "OK")], [{"id": "t1", "ok": True},
                                                       {"id": "longer", "ok": None}])
    assert text.splitlines() == ["ID      OK", "t1      yes", "longer"]
