"""Hostile orders to real processes: a task's size is bounded by the validation limits
only, never by a socket buffer, and an agent handed orders no master should send
refuses them, keeps running, and restarts on its work dir.

``test_a_60_kb_environment_runs_and_70_kb_is_refused`` drives a real master and agent
with the SDK. The other tests put a real agent behind a fake master (a plain ROUTER
socket on loopback, no credentials, as the audit's was), so that orders reach the agent
that a real master would have refused first.
"""

from __future__ import annotations

import json
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from mesos_zmq.agent import checkpoint
from mesos_zmq.protocol import (
    Acknowledge,
    AgentRegistered,
    Envelope,
    FrameworkInfo,
    Message,
    Offer,
    RegisterAgent,
    ReregisterAgent,
    RunTasks,
    StatusUpdate,
    TaskInfo,
    TaskStatus,
    decode_frame,
    encode,
)
from mesos_zmq.scheduler import SchedulerDriver
from mesos_zmq.scheduler import validation as sdk_validation
from mesos_zmq.scheduler.validation import InvalidRequestError, check_task
from tests.cluster import Cluster, Proc, free_port, wait_until
from tests.integration.recording import Recorder

MARK = "marker-7f3a"


def sandbox(root: Path, agent: str, framework_id: str, task_id: str) -> Path:
    return root / agent / "frameworks" / framework_id / "tasks" / task_id


# ----------------------------------------------------------------------------- real cluster


@pytest.mark.integration
def test_a_60_kb_environment_runs_and_70_kb_is_refused(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    # A launch request used to travel in one packet to the launcher; a larger one (a
    # 400 KB environment) did not fit, and the agent started launchers again and again.
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    rec = Recorder()
    # Within the caps (60,000 bytes of environment, 60,000 of command), but as JSON
    # ('é' is written \u00e9) about 350 KB: more than one packet to the launcher holds.
    big = {"BIG": "é" * 30_000, "MARK": MARK}
    command = 'echo "$MARK $(printf %s "$BIG" | wc -c)" # ' + "é" * 30_000
    huge = {"BIG": "h" * 70_000}

    def tasks(offer: Offer) -> list[TaskInfo]:
        return [TaskInfo(task_id="big-env", agent_id=offer.agent_id,
                         resources="cpus:0.1;mem:16", env=big, command=command),
                TaskInfo(task_id="huge-env", agent_id=offer.agent_id,
                         resources="cpus:0.1;mem:16", env=huge, command="echo ran")]

    # The SDK refuses the huge one in the caller; a framework that skips its checks
    # (hostile, or another client) meets the master's.
    with pytest.raises(InvalidRequestError, match="environment is 70005 bytes"):
        check_task(TaskInfo(task_id="huge-env", agent_id="a", resources="cpus:0.1",
                            env=huge, command="echo ran"), "launch_tasks")
    monkeypatch.setattr(sdk_validation, "task_problem", lambda task: None)
    rec.want(lambda o: True, tasks)
    driver = SchedulerDriver(rec, FrameworkInfo(name="hostile-env"), cluster.master_url)
    driver.start()
    try:
        wait_until(lambda: "TASK_FINISHED" in rec.states("big-env"), 20, what="big-env")
        wait_until(lambda: rec.states("huge-env"), 10, what="huge-env refused")
        framework_id = rec.registered_ids[0]
        out = sandbox(cluster.root, "agent0", framework_id, "big-env") / "stdout"
        assert out.read_text().split() == [MARK, "60000"]
        (refusal,) = [s for _, s in rec.updates if s.task_id == "huge-env"]
        assert (refusal.state, refusal.reason) == ("TASK_ERROR", "REASON_TASK_INVALID")
        assert "environment is" in refusal.message and "65536" in refusal.message
        assert not sandbox(cluster.root, "agent0", framework_id, "huge-env").exists()
        # the spec file was read and removed by the launcher
        assert list((cluster.root / "agent0" / "meta" / "launch").iterdir()) == []
        assert cluster.agents[0].alive() and cluster.master is not None
        assert cluster.master.alive()
    finally:
        driver.stop()
        driver.join()


# ----------------------------------------------------------------------------- fake master


class FakeMaster:
    """A ROUTER on loopback that speaks the master's side of the agent protocol."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.url)
        self.peer = b""
        self.updates: list[TaskStatus] = []
        self.pending: deque[Message] = deque()

    def send(self, msg: Message, rid: str = "") -> None:
        self.sock.send_multipart([self.peer, encode(msg, rid)])

    def expect(self, want: Callable[[Message], bool], timeout: float, what: str) -> Message:
        """The first message ``want`` takes; status updates are recorded and acked.
        (The agent batches what one turn of its loop says: a frame's messages are taken
        one by one, and what follows the wanted one waits for the next call.)"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.pending:
                if not self.sock.poll(100):
                    continue
                identity, frame = self.sock.recv_multipart()
                self.peer = identity
                for item in decode_frame(frame):
                    assert isinstance(item, Envelope), item
                    self.pending.append(item.message)
                continue
            msg = self.pending.popleft()
            if isinstance(msg, StatusUpdate):
                self.updates.append(msg.status)
                s = msg.status
                self.send(Acknowledge(framework_id=s.framework_id, agent_id=s.agent_id,
                                      task_id=s.task_id, uuid=s.uuid))
            if want(msg):
                return msg
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def states(self, task_id: str) -> list[str]:
        return [s.state for s in self.updates if s.task_id == task_id]

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


@pytest.fixture
def fake_master() -> Iterator[FakeMaster]:
    master = FakeMaster()
    try:
        yield master
    finally:
        master.close()


def start_agent(root: Path, master: FakeMaster) -> Proc:
    args = ["agent", "--master", master.url, "--work-dir", str(root / "agent"),
            "--resources", "cpus:2;mem:1024;ports:[31000-31009]", "--hostname", "hostile",
            "--isolation", "posix", "--log-format", "json", "--log-level", "info",
            # its registrations are counted by the tests: retried within seconds
            "--registration-backoff-factor", "0.1"]
    return Proc("agent", args, root / "agent.log").start()


def task(task_id: str, **fields: Any) -> TaskInfo:
    base: dict[str, Any] = {"task_id": task_id, "agent_id": "A1", "resources": "cpus:0.1",
                            "command": f"echo {task_id}"}
    base.update(fields)
    return TaskInfo(**base)


HOSTILE = [
    task("garbage", resources="garbage"),
    task("negative", resources="cpus:-1"),
    task("huge-cpus", resources="cpus:1e306"),
    task("huge-mem", resources="mem:1e305"),
    task("ports-amount", resources="ports:5"),
    task("cpus-ranges", resources="cpus:[1-2]"),
    task("env-400k", env={f"V{i}": "x" * 4000 for i in range(100)}),
    task("grace-absurd", kill_grace_period=1e9),
    task("argv-none", shell=False, argv=[]),
]


@pytest.mark.integration
def test_an_agent_refuses_hostile_orders_and_restarts_on_its_work_dir(
        tmp_path: Path, fake_master: FakeMaster) -> None:
    master = fake_master
    agent = start_agent(tmp_path, master)
    try:
        master.expect(lambda m: isinstance(m, RegisterAgent), 20, "registration")
        # Heartbeat settings no monitor can use: ignored, and the agent asks again.
        for interval, missed in ((0.0, 5), (-1.0, 5), (1.0, 10**18)):
            master.send(AgentRegistered(agent_id="A1", heartbeat_interval=interval,
                                        missed_heartbeats=missed))
            master.expect(lambda m: isinstance(m, RegisterAgent), 5, "registration again")
        assert agent.alive()
        master.send(AgentRegistered(agent_id="A1", heartbeat_interval=1.0,
                                    missed_heartbeats=1000))
        good = task("good", command='echo "$MARK"', env={"MARK": MARK})
        master.send(RunTasks(framework_id="F1", tasks=[*HOSTILE, good]))
        master.expect(lambda m: "TASK_FINISHED" in master.states("good"), 20, "good task")
        wait = time.monotonic() + 10
        while time.monotonic() < wait and any(not master.states(t.task_id) for t in HOSTILE):
            master.expect(lambda m: True, 1, "updates")
        for bad in HOSTILE:
            ((state, reason),) = [(s.state, s.reason) for s in master.updates
                                  if s.task_id == bad.task_id]
            assert (state, reason) == ("TASK_ERROR", "REASON_TASK_INVALID"), bad.task_id
            assert not sandbox(tmp_path, "agent", "F1", bad.task_id).exists()
        assert (sandbox(tmp_path, "agent", "F1", "good") / "stdout").read_text() == MARK + "\n"
        assert agent.alive()
        logged = (tmp_path / "agent" / "meta" / checkpoint.LOG).read_text()
        assert all(f'"F1/{bad.task_id}"' not in logged for bad in HOSTILE)
    finally:
        code = agent.stop(signal.SIGTERM)
    assert code == 0
    # The next agent on this work dir starts, and knows only what ran.
    again = start_agent(tmp_path, master)
    try:
        msg = master.expect(lambda m: isinstance(m, ReregisterAgent), 20, "re-registration")
        assert isinstance(msg, ReregisterAgent) and msg.agent_id == "A1"
        assert {r.task.task_id for r in msg.tasks} <= {"good"}
        assert again.alive()
    finally:
        again.stop(signal.SIGTERM)


@pytest.mark.integration
def test_an_agent_restarts_on_a_work_dir_holding_a_task_it_cannot_read(
        tmp_path: Path, fake_master: FakeMaster) -> None:
    # A work dir written before tasks were checked: its launch record has resources no
    # parser takes. The agent used to fail at start, on every start.
    meta = tmp_path / "agent" / "meta"
    meta.mkdir(parents=True)
    (meta / "agent_id").write_text("A1")
    old = TaskInfo(task_id="old", agent_id="A1", resources="mem:1e305", command="true")
    log = checkpoint.TaskLog(tmp_path / "agent")
    log.append([checkpoint.launch_record("F1", old, "c-old", [])])
    log.close()
    agent = start_agent(tmp_path, fake_master)
    try:
        msg = fake_master.expect(lambda m: isinstance(m, ReregisterAgent), 20,
                                 "re-registration")
        assert isinstance(msg, ReregisterAgent)
        assert [r.task.task_id for r in msg.tasks] == ["old"]
        fake_master.send(AgentRegistered(agent_id="A1", heartbeat_interval=1.0,
                                         missed_heartbeats=1000, reregistered=True))
        fake_master.expect(lambda m: bool(fake_master.states("old")), 10, "its end")
        assert fake_master.states("old") == ["TASK_FAILED"]
        assert agent.alive()
        records = [json.loads(line) for line in (meta / checkpoint.LOG).read_text().splitlines()]
        assert any("update" in r for r in records)
    finally:
        agent.stop(signal.SIGTERM)
