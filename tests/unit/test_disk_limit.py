"""Disk enforcement (Mesos's disk/du isolator) and the default pids limit: the rules,
the sandbox walk, and the supervisor that kills a task over its disk."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from mesos_zmq.agent import flags as agent_flags
from mesos_zmq.agent.containerizer import limits_for
from mesos_zmq.agent.core import AgentCore
from mesos_zmq.agent.du import (
    MAX_OPEN_DIRS,
    SandboxUsage,
    measure_sandbox,
)
from mesos_zmq.agent.events import (
    Exited,
    UpdateRecorded,
    decode_event,
    encode_event,
    event_json,
)
from mesos_zmq.agent.gc import MB, disk_limit_bytes, disk_limitation
from mesos_zmq.agent.server import AgentConfig
from mesos_zmq.agent.supervisor import (
    SupervisorSpec,
    load_events,
    supervise,
)
from mesos_zmq.errors import ConfigError
from mesos_zmq.protocol import AgentRegistered, KillTask, RunTasks, TaskInfo
from mesos_zmq.resources import Resources

# ----------------------------------------------------------------------------- the rules


def test_a_task_may_fill_its_disk_but_not_more() -> None:
    assert disk_limitation(MB, 0) is None
    assert disk_limitation(MB, MB) is None
    message = disk_limitation(MB, 3 * MB + 4096)
    assert message == ("disk limit exceeded: the sandbox uses 3 MB, more than the task's "
                       "disk of 1 MB")
    assert "1.5 MB" in (disk_limitation(MB, 3 * MB // 2 + 1) or "")


def test_tasks_without_disk_are_not_limited() -> None:
    assert disk_limit_bytes(0.0) is None
    assert disk_limit_bytes(1.0) == MB
    assert disk_limit_bytes(0.5) == MB // 2


def test_flags_enforce_disk_every_15_s_by_default() -> None:
    config = AgentConfig()
    assert config.enforce_container_disk_quota is True
    assert config.container_disk_watch_interval == 15.0
    with pytest.raises(ConfigError, match="--container-disk-watch-interval"):
        AgentConfig(container_disk_watch_interval=0.0).validate()


def test_a_task_has_a_pids_limit_unless_it_is_turned_off() -> None:
    assert agent_flags.default("cgroups_pids_max") == 4096
    assert AgentConfig().cgroups_pids_max == 4096
    resources = Resources.parse("cpus:1;mem:64")
    assert limits_for(resources, False, 4096).pids_max == 4096
    assert limits_for(resources, False, 0).pids_max is None  # 0: no limit
    assert limits_for(resources, False, None).pids_max is None
    AgentConfig(cgroups_pids_max=0).validate()
    AgentConfig(cgroups_pids_max=None).validate()
    with pytest.raises(ConfigError, match="--cgroups-pids-max must be at least 0"):
        AgentConfig(cgroups_pids_max=-1).validate()


def test_the_exited_event_carries_the_disk_verdict_only_when_set() -> None:
    plain = Exited(exit_code=0, signal=None, seq=1)
    assert "disk" not in event_json(plain)  # older agents read it exactly as before
    over = Exited(exit_code=None, signal=9, disk="disk limit exceeded", seq=2)
    assert decode_event(json.loads(encode_event(over))) == over


def core_with_a_task() -> AgentCore:
    core = AgentCore("h", Resources.parse("cpus:4;mem:1024;disk:100"), "", None,
                     new_id=iter(f"u{i}" for i in range(100)).__next__)
    core.handle(AgentRegistered(agent_id="A1", heartbeat_interval=1.0,
                                missed_heartbeats=10), "", 0.0)
    core.handle(RunTasks(framework_id="F1", tasks=[TaskInfo(
        task_id="t", agent_id="A1", resources="cpus:1;disk:1", command="x")]), "", 0.0)
    core.task_spawned(("F1", "t"), 0.1)
    return core


def test_the_core_fails_a_task_killed_for_its_disk() -> None:
    core = core_with_a_task()
    event = Exited(exit_code=None, signal=signal.SIGKILL, disk="disk limit exceeded: x",
                   oom=False, seq=3)
    fx = core.supervisor_event(("F1", "t"), event, 1.0, oom=True)  # the disk tells why
    (status,) = [r.status for _, r in fx.checkpoint if isinstance(r, UpdateRecorded)]
    assert (status.state, status.reason) == ("TASK_FAILED",
                                             "REASON_CONTAINER_LIMITATION_DISK")
    assert status.message == "disk limit exceeded: x"
    assert status.exit_code == 128 + signal.SIGKILL


def test_a_disk_limit_is_what_failed_a_task_being_killed() -> None:
    core = core_with_a_task()
    core.handle(KillTask(framework_id="F1", task_id="t"), "", 0.5)
    fx = core.task_exited(("F1", "t"), None, signal.SIGKILL, 1.0, disk="over")
    (status,) = [r.status for _, r in fx.checkpoint if isinstance(r, UpdateRecorded)]
    assert (status.state, status.reason) == ("TASK_FAILED",
                                             "REASON_CONTAINER_LIMITATION_DISK")


# ----------------------------------------------------------------------------- the walk


def write(path: Path, size: int) -> None:
    path.write_bytes(b"x" * size)


def test_the_walk_counts_allocated_blocks(tmp_path: Path) -> None:
    empty = measure_sandbox(str(tmp_path))
    write(tmp_path / "a", 3 * MB)
    (tmp_path / "d" / "e").mkdir(parents=True)
    write(tmp_path / "d" / "e" / "b", MB)
    with open(tmp_path / "sparse", "wb") as handle:
        handle.truncate(1 << 30)  # a 1 GiB hole holds no blocks
    used = measure_sandbox(str(tmp_path))
    assert 4 * MB <= used - empty < 4 * MB + 256 * 1024
    assert measure_sandbox(str(tmp_path / "missing")) == 0


def test_links_lead_nowhere_and_hard_links_count_once(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "big", 4 * MB)
    (sandbox / "to-dir").symlink_to(outside)
    (sandbox / "to-file").symlink_to(outside / "big")
    assert measure_sandbox(str(sandbox)) < MB
    write(sandbox / "f", 2 * MB)
    os.link(sandbox / "f", sandbox / "g")
    assert 2 * MB <= measure_sandbox(str(sandbox)) < 3 * MB


def test_a_deep_tree_is_walked_to_the_bottom(tmp_path: Path) -> None:
    deep = tmp_path
    for i in range(MAX_OPEN_DIRS * 2 + 5):
        deep = deep / f"d{i % 10}"
    deep.mkdir(parents=True)
    write(deep / "bottom", 2 * MB)
    assert measure_sandbox(str(tmp_path)) >= 2 * MB
    walk = SandboxUsage(str(tmp_path))
    while not walk.step(7):
        pass
    assert walk.total >= 2 * MB
    assert walk._open == [] and walk._root is None  # every descriptor released


def test_the_walk_takes_a_bounded_step_at_a_time(tmp_path: Path) -> None:
    for i in range(50):
        write(tmp_path / f"f{i}", 4096)
    walk = SandboxUsage(str(tmp_path))
    steps = 1
    while not walk.step(10):
        steps += 1
    assert steps >= 5
    assert walk.total >= 50 * 4096


def test_a_directory_swapped_for_a_link_mid_walk_is_not_entered(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    (sandbox / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "big", 8 * MB)
    walk = SandboxUsage(str(sandbox))
    assert not walk.step(1)  # "sub" seen as a directory, not yet entered
    (sandbox / "sub").rmdir()
    (sandbox / "sub").symlink_to(outside)
    while not walk.step(1):
        pass
    assert walk.total < MB


# ----------------------------------------------------------------------------- the supervisor


def test_the_supervisor_kills_a_task_over_its_disk(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    spec = SupervisorSpec(
        events=str(tmp_path / "events" / "t"), sandbox=str(sandbox),
        argv=["/bin/sh", "-c", "echo started > marker; head -c 3145728 /dev/zero > big; "
                               "exec sleep 30"],
        env={"PATH": "/usr/bin:/bin"}, disk_limit=MB, disk_interval=0.05)
    assert supervise(spec) == 0
    *_, exited = load_events(Path(spec.events))
    assert isinstance(exited, Exited)
    assert exited.signal == signal.SIGKILL
    assert exited.disk.startswith("disk limit exceeded: the sandbox uses 3")
    assert (sandbox / "marker").read_text() == "started\n"


def test_a_task_within_its_disk_runs_to_its_end(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    spec = SupervisorSpec(
        events=str(tmp_path / "events" / "t"), sandbox=str(sandbox),
        argv=["/bin/sh", "-c", "head -c 100000 /dev/zero > small; sleep 0.3"],
        env={"PATH": "/usr/bin:/bin"}, disk_limit=MB, disk_interval=0.05)
    assert supervise(spec) == 0
    *_, exited = load_events(Path(spec.events))
    assert exited == Exited(exit_code=0, signal=None, seq=exited.seq, time=exited.time)
