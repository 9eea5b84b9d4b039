"""Hostile orders to an agent: each is refused, nothing bad is recorded, the core never
raises, and a fresh agent recovers from whatever was checkpointed (no processes).

The checkpoints are written as the shell writes them: a launch record for each task the
core asked to launch (the containerizer's, before the supervisor is asked to start it),
then the core's records of launched tasks (:func:`checkpoint.batch_records`), through a
real :class:`TaskLog`, read back as the next agent would.
"""

from __future__ import annotations

import json
import math
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from mesos_zmq.agent import checkpoint
from mesos_zmq.agent.core import (
    SIGKILL,
    SIGTERM,
    AgentCore,
    Effects,
    RecoveredTask,
)
from mesos_zmq.agent.isolation import Limits
from mesos_zmq.agent.launcher import (
    INLINE_REQUEST_BYTES,
    _decode_request,
    _launch,
    encode_request,
    spec_file_request,
    write_spec_file,
)
from mesos_zmq.agent.supervisor import SupervisorSpec, load_events
from mesos_zmq.heartbeat import MAX_MISSED_HEARTBEATS
from mesos_zmq.master.validation import MAX_ENV_BYTES
from mesos_zmq.protocol import (
    AgentRegistered,
    HealthCheck,
    KillTask,
    ReregisterAgent,
    RunTasks,
    StatusUpdate,
    TaskInfo,
)
from tests.unit.test_agent_rules import make, registered

Key = tuple[str, str]


def task(task_id: str = "bad", **fields: Any) -> TaskInfo:
    base: dict[str, Any] = {"task_id": task_id, "agent_id": "A1", "resources": "cpus:0.1",
                            "command": "true"}
    base.update(fields)
    return TaskInfo(**base)


GOOD = task("good", resources="cpus:0.1;mem:32;ports:[31000-31000]", env={"A": "1"})

HOSTILE: list[tuple[str, TaskInfo, str]] = [
    ("garbage", task(resources="garbage"), "garbage"),
    ("negative cpus", task(resources="cpus:-1"), "negative"),
    ("nan cpus", task(resources="cpus:nan"), "not finite"),
    ("cpus 1e306", task(resources="cpus:1e306"), "too large"),
    ("mem 1e305", task(resources="mem:1e305"), "too large"),
    ("sum beyond the bound", task(resources="mem(a):9007199254740;mem(b):9007199254740"),
     "adds up to"),
    ("ports as an amount", task(resources="cpus:1;ports:5"), "ports must be ranges"),
    ("cpus as ranges", task(resources="cpus:[1-2]"), "cpus must be an amount"),
    ("ports beyond 65535", task(resources="ports:[1-70000]"), "at most 65535"),
    ("half a gpu", task(resources="gpus:0.5"), "whole number"),
    ("1100 roles", task(resources=";".join(f"cpus(r{i}):1" for i in range(1100))),
     "1100 entries"),
    ("env of 400 KB", task(env={f"V{i}": "x" * 4000 for i in range(100)}), "environment is"),
    ("env over the cap", task(env={"BIG": "x" * MAX_ENV_BYTES}), "environment is"),
    ("env name with '='", task(env={"A=B": "1"}), "holds '='"),
    ("NUL in env", task(env={"A": "\0"}), "NUL"),
    ("command of 1 MB", task(command="x" * (1 << 20)), "command is"),
    ("argv of 2000", task(shell=False, argv=["x"] * 2000), "arguments"),
    ("no argv", task(shell=False, argv=[]), "no argv"),
    ("kill grace nan", task(kill_grace_period=math.nan), "kill_grace_period"),
    ("kill grace inf", task(kill_grace_period=math.inf), "kill_grace_period"),
    ("kill grace 1e9", task(kill_grace_period=1e9), "kill_grace_period"),
    ("kill grace negative", task(kill_grace_period=-3.0), "kill_grace_period"),
    ("health check nan", task(health_check=HealthCheck(kind="TCP", port=80,
                                                       interval=math.nan)), "interval"),
    ("health check kind", task(health_check=HealthCheck(kind="PING")), "unknown"),
    ("bad role", task(role="../x"), "invalid role"),
    ("bad agent id", task(agent_id="a/b"), "invalid agent id"),
    ("unsafe id", task(task_id="../../etc"), "not a safe name"),
    ("id of 300 chars", task(task_id="t" * 300), "not a safe name"),
]
IDS = [name for name, _, _ in HOSTILE]


def shell_writes(log: checkpoint.TaskLog, fx: Effects, launched: set[Key]) -> None:
    """What the agent's shell writes for ``fx``: launch records first (the containerizer
    writes one per launch before asking for the supervisor), then the core's records
    of tasks launched here (others are dropped, as ``Containerizer.record`` does)."""
    for framework_id, info in fx.launch:
        log.append([checkpoint.launch_record(framework_id, info, f"c-{info.task_id}", [])])
        launched.add((framework_id, info.task_id))
    log.append(checkpoint.batch_records(fx.checkpoint, None, launched.__contains__))


def recovered_agent(log_dir: Path) -> tuple[AgentCore, ReregisterAgent]:
    """A fresh agent on the same work dir: replay the log, recover, re-register."""
    found = checkpoint.TaskLog(log_dir).load()
    fresh = make("A1")
    fresh.recover([RecoveredTask(framework_id=cp.framework_id, info=cp.info, state=cp.state,
                                 exit_code=cp.exit_code, healthy=cp.healthy,
                                 pending=cp.pending, kill_reason=cp.kill_reason)
                   for cp in found.values()], 10.0)
    (msg, _), = fresh.connected(10.0).messages
    assert isinstance(msg, ReregisterAgent)
    return fresh, msg


@pytest.mark.parametrize("name,bad,words", HOSTILE, ids=IDS)
def test_a_hostile_task_is_refused_and_the_others_of_its_order_run(
        name: str, bad: TaskInfo, words: str, tmp_path: Path) -> None:
    core = make("A1")
    registered(core)
    with capture_logs() as logs:
        fx = core.handle(RunTasks(framework_id="F1", tasks=[bad, GOOD]), "", 1.0)
    # the good task is launched, the bad one never
    assert [(f, t.task_id) for f, t in fx.launch] == [("F1", "good")]
    (status,) = [m.status for m, _ in fx.messages if isinstance(m, StatusUpdate)]
    assert (status.task_id, status.state, status.reason) == (
        bad.task_id, "TASK_ERROR", "REASON_TASK_INVALID")
    assert words in status.message and len(status.message) < 1000
    assert any(e["event"] == "task refused" and e["log_level"] == "error" for e in logs)
    # what the agent keeps of it is its id, not what was wrong with it
    kept = core.tasks[("F1", bad.task_id)].info
    assert (kept.resources, kept.command, kept.env, kept.argv) == ("", "", {}, [])

    # Written as the shell would, and read back by a fresh agent on the same work dir.
    log = checkpoint.TaskLog(tmp_path)
    launched: set[Key] = set()
    shell_writes(log, fx, launched)
    shell_writes(log, core.task_spawned(("F1", "good"), 1.1), launched)
    log.close()
    text = (tmp_path / "meta" / checkpoint.LOG).read_text()
    assert "good" in text and json.dumps(bad.task_id) not in text  # never recorded
    fresh, msg = recovered_agent(tmp_path)
    assert [(r.task.task_id, r.state) for r in msg.tasks] == [("good", "TASK_RUNNING")]
    assert fresh.tasks[("F1", "good")].info == GOOD
    # and the refused task, retried by the master, is refused again, never launched
    fx = fresh.handle(RunTasks(framework_id="F1", tasks=[bad]), "", 11.0)
    assert not fx.launch and fresh.tasks[("F1", bad.task_id)].state == "TASK_ERROR"


def test_a_whole_order_of_hostile_tasks_leaves_a_log_a_new_agent_starts_from(
        tmp_path: Path) -> None:
    core = make("A1")
    registered(core)
    tasks = [TaskInfo(**{**_fields(bad), "task_id": f"bad{i}"})
             for i, (_, bad, _) in enumerate(HOSTILE[:-2])]
    fx = core.handle(RunTasks(framework_id="F1", tasks=[*tasks, GOOD]), "", 1.0)
    states = {m.status.task_id: m.status.state for m, _ in fx.messages
              if isinstance(m, StatusUpdate)}
    assert states == {t.task_id: "TASK_ERROR" for t in tasks}
    log = checkpoint.TaskLog(tmp_path)
    shell_writes(log, fx, set())
    log.close()
    _, msg = recovered_agent(tmp_path)
    assert [r.task.task_id for r in msg.tasks] == ["good"]


def _fields(info: TaskInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in info.__dataclass_fields__}


def test_an_order_from_an_unsafe_framework_is_refused_whole() -> None:
    core = make("A1")
    registered(core)
    fx = core.handle(RunTasks(framework_id="../F", tasks=[GOOD]), "", 1.0)
    assert not fx.launch
    (status,) = [m.status for m, _ in fx.messages if isinstance(m, StatusUpdate)]
    assert status.state == "TASK_ERROR" and "not a safe name" in status.message


def test_a_task_just_within_every_cap_is_launched_and_replays(tmp_path: Path) -> None:
    core = make("A1")
    registered(core)
    big = task("big", env={"BIG": "é" * ((MAX_ENV_BYTES - 5) // 2)},
               command="x" * (64 * 1024), kill_grace_period=3600.0, name="n" * 1024,
               resources="cpus:9007199254740.991;gpus:1;ports:[0-65535]",
               health_check=HealthCheck(kind="COMMAND", command="true", interval=1e9))
    fx = core.handle(RunTasks(framework_id="F1", tasks=[big]), "", 1.0)
    assert [t.task_id for _, t in fx.launch] == ["big"]
    log = checkpoint.TaskLog(tmp_path)
    launched: set[Key] = set()
    shell_writes(log, fx, launched)
    shell_writes(log, core.task_spawned(("F1", "big"), 1.1), launched)
    shell_writes(log, core.handle(KillTask(framework_id="F1", task_id="big"), "", 2.0),
                 launched)
    log.close()
    fresh, msg = recovered_agent(tmp_path)
    assert fresh.tasks[("F1", "big")].info == big  # read back whole
    assert [(r.task.task_id, r.state) for r in msg.tasks] == [("big", "TASK_RUNNING")]


# ----------------------------------------------------------------------------- registration


@pytest.mark.parametrize("interval,missed,agent_id", [
    (0.0, 5, "A1"), (-1.0, 5, "A1"), (math.nan, 5, "A1"), (math.inf, 5, "A1"),
    (1e300, 5, "A1"), (1.0, 0, "A1"), (1.0, -5, "A1"), (1.0, 10**18, "A1"),
    (1.0, MAX_MISSED_HEARTBEATS + 1, "A1"), (1.0, 5, "../A1"), (1.0, 5, ""),
])
def test_an_unusable_registration_answer_is_ignored_and_logged(
        interval: float, missed: int, agent_id: str) -> None:
    core = make()
    core.connected(0.0)
    old = core.monitor
    with capture_logs() as logs:
        fx = core.handle(AgentRegistered(agent_id=agent_id, heartbeat_interval=interval,
                                         missed_heartbeats=missed), "", 0.5)
    assert not fx and not core.registered and core.agent_id is None
    assert core.monitor is old
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "registration answer ignored"]
    # the agent keeps registering, and a usable answer is taken
    assert any(m for m, _ in core.tick(2.0).messages)
    fx = core.handle(AgentRegistered(agent_id="A1", heartbeat_interval=2.0,
                                     missed_heartbeats=3), "", 2.1)
    assert fx.checkpoint_agent_id == "A1"
    assert core.monitor is not old and core.monitor.timeout == 6.0


def test_a_kill_with_a_nan_grace_still_escalates() -> None:
    core = make("A1")
    registered(core)
    core.handle(RunTasks(framework_id="F1", tasks=[task("t1")]), "", 0.0)
    core.task_spawned(("F1", "t1"), 0.1)
    fx = core.handle(KillTask(framework_id="F1", task_id="t1", grace=math.nan), "", 1.0)
    assert fx.signal == [(("F1", "t1"), SIGTERM)]
    assert core.tick(3.9).signal == []
    assert core.tick(4.0).signal == [(("F1", "t1"), SIGKILL)]  # the agent's 3 s grace
    core2 = make("A1")
    registered(core2)
    core2.handle(RunTasks(framework_id="F1", tasks=[task("t1")]), "", 0.0)
    core2.task_spawned(("F1", "t1"), 0.1)
    core2.handle(KillTask(framework_id="F1", task_id="t1", grace=-5.0), "", 1.0)
    assert core2.tick(1.0).signal == [(("F1", "t1"), SIGKILL)]  # a negative cap is 0


def test_the_core_never_raises_on_a_message() -> None:
    core = make("A1")
    registered(core)
    broken = RunTasks(framework_id="F1", tasks=None)  # type: ignore[arg-type]
    with capture_logs() as logs:
        fx = core.handle(broken, "", 1.0)
    assert not fx and "bug: a master message could not be handled" in [
        e["event"] for e in logs]
    fx = core.handle(RunTasks(framework_id="F1", tasks=[GOOD]), "", 1.1)
    assert [t.task_id for _, t in fx.launch] == ["good"]


# ----------------------------------------------------------------------------- launch specs


def spec(env: dict[str, str], events: Path) -> SupervisorSpec:
    return SupervisorSpec(events=str(events), sandbox=str(events.parent / "sandbox"),
                          argv=["/bin/sh", "-c", "true"], env=env, notify_name=b"\0x")


def test_a_large_launch_spec_travels_by_a_private_file_read_once(tmp_path: Path) -> None:
    events = tmp_path / "events"
    request = encode_request(str(events), spec({"BIG": "y" * 200_000}, events), "c1",
                             Limits(mem_bytes=1 << 20))
    assert len(request) > INLINE_REQUEST_BYTES
    path = write_spec_file(tmp_path, "c1", request)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_spec_file(tmp_path, "c1", request)  # never over another launch's file
    packet = spec_file_request(str(events), path)
    assert len(packet) < 1024
    key, decoded, container_id, limits = _decode_request(packet)
    assert key == str(events) and container_id == "c1" and limits.mem_bytes == 1 << 20
    assert decoded.env["BIG"] == "y" * 200_000 and decoded.argv == ["/bin/sh", "-c", "true"]
    assert not path.exists()  # read and removed


def test_a_launch_spec_that_cannot_be_read_fails_its_task(tmp_path: Path) -> None:
    events = tmp_path / "events" / "F1" / "t1"
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        packet = spec_file_request(str(events), tmp_path / "gone")
        _launch(theirs, None, packet, {})  # type: ignore[arg-type]  # never forks here
        replies = [json.loads(ours.recv(65536)) for _ in range(2)]
    finally:
        ours.close()
        theirs.close()
    assert "bad launch request" in replies[0]["error"]
    assert replies[1] == {"reaped": [str(events)], "pid": 0}
    (failed,) = load_events(events)
    assert "bad launch request" in getattr(failed, "error", "")
