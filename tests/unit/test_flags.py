"""Each default, range and help of the master's and the agent's flags is written once (issue 11)."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from mesos_zmq.cli.main import cli
from mesos_zmq.errors import ConfigError
from mesos_zmq.master import flags
from mesos_zmq.master.core import MasterCoreConfig
from mesos_zmq.master.log import SnapshotPolicy
from mesos_zmq.master.server import MasterConfig


def test_every_flag_sets_a_config_field_and_the_defaults_agree() -> None:
    fields = {f.name: f for f in dataclasses.fields(MasterConfig)}
    parsed = {"roles", "weights", "excluded", "role_min_allocatable"}  # text -> value
    for spec in flags.FLAGS:
        assert spec.config_field in fields, spec.option
        if spec.name not in parsed:
            assert getattr(MasterConfig(), spec.config_field) == spec.default
    core = MasterCoreConfig()
    config = MasterConfig()
    for name in ("heartbeat_interval", "missed_heartbeats", "allocation_interval",
                 "reregister_timeout", "offer_timeout"):
        assert getattr(core, name) == getattr(config, name) == flags.default(name), name
    assert config.snapshot_policy == SnapshotPolicy()


def test_the_cli_offers_every_flag_with_its_default() -> None:
    result = CliRunner().invoke(cli, ["master", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for spec in flags.FLAGS:
        assert spec.option.split("/")[0] in result.output, spec.option


@pytest.mark.parametrize("change,needle", [
    ({"port": 70000}, "--port must be within 0..65535"),
    ({"heartbeat_interval": 0.0}, "--heartbeat-interval must be within 0.01..86400"),
    ({"heartbeat_interval": 1e6}, "--heartbeat-interval must be within 0.01..86400"),
    ({"missed_heartbeats": 0}, "--missed-heartbeats must be within 1..1000000"),
    ({"registry": "sqlite"}, "--registry must be one of replicated_log, in_memory"),
    ({"offer_timeout": 0.0}, "--offer-timeout"),
    ({"snapshot_interval": float("nan")}, "--snapshot-interval"),
    ({"allocator_sorter": "fifo"}, "--allocator-sorter must be one of drf, random"),
])
def test_a_config_built_in_code_is_range_checked_like_the_cli(change: dict[str, object],
                                                               needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        MasterConfig(**change).validate()  # type: ignore[arg-type]
    MasterConfig(offer_timeout=None).validate()


def test_agent_defaults_are_written_once() -> None:
    from mesos_zmq.agent import flags as agent_flags
    from mesos_zmq.agent.containerizer import Containerizer
    from mesos_zmq.agent.core import AgentCore
    from mesos_zmq.agent.server import AgentConfig
    from mesos_zmq.agent.supervisor import SupervisorSpec

    config = AgentConfig()
    for spec in agent_flags.FLAGS:
        if spec.name not in ("hostname", "gpu_devices"):  # the CLI fills these in
            assert getattr(config, spec.config_field) == spec.default, spec.option
    grace = agent_flags.KILL_GRACE_PERIOD
    assert config.kill_grace_period == grace
    import inspect

    assert inspect.signature(AgentCore).parameters["kill_grace"].default == grace
    assert inspect.signature(Containerizer).parameters["kill_grace"].default == grace
    assert SupervisorSpec.__dataclass_fields__["kill_grace"].default == grace
    result = CliRunner().invoke(cli, ["agent", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for spec in agent_flags.FLAGS:
        assert spec.option.split("/")[0] in result.output, spec.option
    with pytest.raises(ConfigError, match=r"--gc-disk-headroom must be within 0\.\.1"):
        AgentConfig(gc_disk_headroom=2.0).validate()
