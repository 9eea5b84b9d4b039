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


# ----------------------------------------------------------------------------- issue 10


def all_commands(group: click.Group = cli_main.cli, path: tuple[str, ...] = ()
                 ) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in group.commands.items():
        found.append(((*path, name), command))
        if isinstance(command, click.Group):
            found += all_commands(command, (*path, name))
    return found


def test_every_env_var_is_mesos_zmq_and_the_long_name() -> None:
    # `--fsync/--no-fsync` used to read MESOS_ZMQ_FSYNC/__NO_FSYNC: the README's
    # "every flag reads MESOS_ZMQ_<FLAG>" was false for it.
    for path, command in all_commands():
        for param in command.params:
            if not isinstance(param, click.Option) or not param.envvar:
                continue
            long_name = next(o for o in param.opts if o.startswith("--"))
            expected = "MESOS_ZMQ_" + long_name[2:].replace("-", "_").upper()
            assert param.envvar == expected, (path, param.opts, param.envvar)


@pytest.mark.parametrize("value,expected", [("false", False), ("0", False), ("no", False),
                                            ("off", False), ("true", True), ("1", True)])
def test_fsync_reads_its_env_var(monkeypatch: pytest.MonkeyPatch, value: str,
                                 expected: bool) -> None:
    configs: list[Any] = []
    monkeypatch.setattr("mesos_zmq.master.server.run_master",
                        lambda config: configs.append(config) or 0)
    monkeypatch.setattr(cli_main, "configure_logging", lambda *a, **k: None)
    result = CliRunner().invoke(cli_main.cli, ["master"], env={"MESOS_ZMQ_FSYNC": value})
    assert result.exit_code == 0, result.output
    assert configs[-1].fsync is expected
    # The flag still wins over the environment.
    result = CliRunner().invoke(cli_main.cli, ["master", "--fsync"],
                                env={"MESOS_ZMQ_FSYNC": "false"})
    assert result.exit_code == 0 and configs[-1].fsync is True


class Recorder:
    """Stands in for run_command / operate: records what the CLI would have done."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def run_command(self, master: str, text: str, **kwargs: Any) -> int:
        self.calls.append((master, text, kwargs))
        return 0

    def operate(self, master: str, msg: Any) -> None:
        self.calls.append((master, msg))


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr("mesos_zmq.frameworks.execute.run_command", rec.run_command)
    monkeypatch.setattr(cli_main, "operate", rec.operate)
    monkeypatch.setattr(cli_main, "framework_logging", lambda: None, raising=False)
    monkeypatch.setattr(cli_main, "configure_logging", lambda *a, **k: None)
    return rec


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli_main.cli, list(args))


def test_unknown_option_before_the_command_is_an_error_not_the_command(
        recorder: Recorder) -> None:
    # Used to run `/bin/sh -c "--cpu 1 echo hi"`: click's ignore_unknown_options
    # carried --cpu 1 into the nargs=-1 argument and the parser dropped the `--`.
    result = invoke("run", "--cpu", "1", "--", "echo", "hi")
    assert result.exit_code == 2 and not recorder.calls
    assert "no such option --cpu; did you mean --cpus?" in result.output
    result = invoke("local", "--agent", "3", "--", "echo", "hi")
    assert result.exit_code == 2
    assert "no such option --agent; did you mean --agents?" in result.output


def test_the_command_keeps_its_own_options(recorder: Recorder) -> None:
    assert invoke("run", "--cpus", "1", "--", "ls", "-la").exit_code == 0
    assert invoke("run", "sh", "-c", "echo hi; exit 3").exit_code == 0
    # Options after the command's first word are the command's, not run's.
    assert invoke("run", "echo", "--cpus", "2").exit_code == 0
    assert invoke("run", "--", "--weird-program", "-x").exit_code == 0
    texts = [(text, kwargs["cpus"]) for _, text, kwargs in recorder.calls]
    assert texts == [("ls -la", 1.0), ("sh -c 'echo hi; exit 3'", 0.1),
                     ("echo --cpus 2", 0.1), ("--weird-program -x", 0.1)]


def test_run_role_is_checked_before_anything_starts(recorder: Recorder) -> None:
    result = invoke("run", "--role", "", "--", "true")
    assert result.exit_code == 2 and not recorder.calls
    assert result.output.count("role is empty") == 1


def test_run_has_a_documented_connect_timeout(recorder: Recorder) -> None:
    assert invoke("run", "--connect-timeout", "5", "--", "true").exit_code == 0
    assert recorder.calls[-1][2]["connect_timeout"] == 5.0
    assert invoke("run", "--", "true").exit_code == 0
    assert recorder.calls[-1][2]["connect_timeout"] == 30.0
    help_text = " ".join(invoke("run", "--help").output.split())
    assert "--connect-timeout" in help_text and "default: 30.0" in help_text


def test_weights_error_names_the_positional_argument(recorder: Recorder) -> None:
    result = invoke("weights", "eng")
    assert result.exit_code == 2 and not recorder.calls
    assert "ASSIGNMENTS" in result.output and "--weights" not in result.output
    assert "'eng' is not ROLE=WEIGHT" in result.output


def test_quota_set_force_reaches_the_request(recorder: Recorder) -> None:
    assert invoke("quota", "set", "eng", "--guarantee", "cpus:8", "--force").exit_code == 0
    assert invoke("quota", "set", "eng", "--guarantee", "cpus:8").exit_code == 0
    (_, forced), (_, plain) = recorder.calls
    assert forced.force is True and plain.force is False
    assert forced.guarantee == "cpus:8" and forced.role == "eng"


def test_typed_resources_warn_about_typos_everywhere(recorder: Recorder) -> None:
    result = invoke("quota", "set", "eng", "--guarantee", "cpu:8")
    assert result.exit_code == 0
    assert "unknown resource 'cpu'" in result.output and "did you mean 'cpus'?" in result.output
    result = invoke("reserve", "A1", "mems(eng):64")
    assert result.exit_code == 0 and "did you mean 'mem'?" in result.output
    result = invoke("reserve", "A1", "cpus(eng):4,mem(eng):100")
    assert result.exit_code == 2 and not recorder.calls[2:]
    assert "use ';' between resources: cpus(eng):4;mem(eng):100" in result.output
    result = invoke("quota", "set", "eng", "--limit", "disk:1e99")
    assert result.exit_code == 2 and "too large" in result.output


def test_agent_resources_are_checked_and_a_zero_is_said_aloud(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr("mesos_zmq.agent.server.run_agent",
                        lambda config: seen.update(config=config) or 0)
    monkeypatch.setattr(cli_main, "configure_logging", lambda *a, **k: None)
    result = invoke("agent", "--resources", "cpus:0;cpu:4;mem:512")
    assert result.exit_code == 0, result.output
    assert "cpus:0 is honoured" in result.output and "did you mean 'cpus'?" in result.output
    assert seen["config"].resources == "cpus:0;cpu:4;mem:512"
    result = invoke("agent", "--resources", "cpus:4,mem:100")
    assert result.exit_code == 2 and "use ';' between resources: cpus:4;mem:100" in result.output
    result = invoke("local", "--resources", "cpus:nan", "--", "true")
    assert result.exit_code == 2 and "not finite" in result.output


def test_agents_table_shows_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main, "fetch_state", lambda master: {"agents": [
        {"id": "A1", "hostname": "h1", "connected": True, "drain": "", "active_tasks": 0,
         "resources": "cpus:4", "used_resources": "", "reserved": "",
         "attributes": "rack:r1;zone:a"}]})
    header, row = invoke("agents").output.splitlines()
    assert header.split()[-1] == "ATTRIBUTES" and row.split()[-1] == "rack:r1;zone:a"


def test_roles_amounts_print_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main, "fetch_state", lambda master: {"roles": [
        {"role": "eng", "weight": 1.0, "dominant_share": 0.5,
         "allocated": {"disk": 1234567.0, "cpus": 0.1 + 0.2}, "guarantee": {}, "limit": {}}]})
    output = invoke("roles").output
    assert "cpus:0.3;disk:1234567" in output and "e+06" not in output


def test_an_ambiguous_task_id_shows_the_masters_error_once(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    message = ("task id 't1' is used by 2 frameworks (F1, F2): name one with --framework")

    def refuse(master: str, msg: Any, timeout: float = 5.0) -> Any:
        assert msg.framework_id == ""
        raise cli_main.RequestRefused("invalid", message)

    monkeypatch.setattr(cli_main, "request", refuse)
    for command in (["kill", "t1"], ["logs", "t1"]):
        monkeypatch.setattr("sys.argv", ["mesos-zmq", *command])
        with pytest.raises(SystemExit) as info:
            cli_main.main()
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err == f"error: {message}\n"


def test_state_names_the_leader_its_term_and_the_standbys() -> None:
    from mesos_zmq.cli.main import master_lines

    lines = master_lines({"id": "m1-abc", "address": "tcp://10.0.0.1:5050", "epoch": 7,
                          "started_at": 1.8e9, "replicated": True,
                          "standbys": [{"id": "m2-def", "address": "tcp://10.0.0.2:5050"}]})
    assert lines[0] == "master     m1-abc leading at tcp://10.0.0.1:5050 (epoch 7)"
    assert lines[1].startswith("since      2027-")
    assert lines[2] == "standbys   m2-def at tcp://10.0.0.2:5050"
    single = master_lines({"id": "m1", "replicated": False, "standbys": []})
    assert single[-1] == "standbys   none (a single master, without ZooKeeper)"
