"""The simulated agents' failover (tools/simulate_agents.py, issue 13's bench): told of
a new leader, every agent leaves the old one at once and re-registers with the new one
within its back-off, its running task reported; a task whose end came due meanwhile
still ends (its update queued for the new leader)."""

from __future__ import annotations

import threading
import time
from typing import Any

import zmq

from mesos_zmq.protocol import (
    Acknowledge,
    AgentRegistered,
    RegisterAgent,
    ReregisterAgent,
    RunTasks,
    StatusUpdate,
    TaskInfo,
    decode,
    encode,
)
from tools.simulate_agents import Config, _Worker


class _Detector:
    """Names the new leader once, when told to."""

    def __init__(self) -> None:
        self.next: str | None = None

    def changed(self) -> str | None:
        out, self.next = self.next, None
        return out


class _Reports:
    def __init__(self) -> None:
        self.latest: dict[str, int] = {}

    def put(self, item: Any) -> None:
        self.latest = item[1]


def _serve(router: zmq.Socket[bytes], seconds: float, answer: Any) -> list[Any]:
    """Read what the agents send for ``seconds``, answering through ``answer``."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not router.poll(20):
            continue
        peer, frame = router.recv_multipart()
        envelope = decode(frame)
        got.append((peer, envelope.message))
        for reply in answer(envelope.message):
            router.send_multipart([peer, encode(reply, envelope.request_id, 1)])
    return got


def test_agents_leave_the_old_leader_and_reregister_with_the_new_one() -> None:
    context = zmq.Context()
    old, new = context.socket(zmq.ROUTER), context.socket(zmq.ROUTER)
    old_port = old.bind_to_random_port("tcp://127.0.0.1")
    new_port = new.bind_to_random_port("tcp://127.0.0.1")
    count = 6
    worker = _Worker(Config(master="", agents=count, processes=1, backoff_factor=0.2,
                            task_seconds=0.5),
                     0, 0, count, f"tcp://127.0.0.1:{old_port}")
    detector, reports, stop = _Detector(), _Reports(), threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop, reports, detector))
    thread.start()
    try:
        ids = iter(range(100))

        def first_leader(msg: Any) -> list[Any]:
            if isinstance(msg, RegisterAgent):
                agent_id = f"agent-{next(ids)}"
                return [AgentRegistered(agent_id=agent_id, heartbeat_interval=30.0,
                                        missed_heartbeats=5),
                        RunTasks(framework_id="f", tasks=[TaskInfo(
                            task_id=f"t-{agent_id}", agent_id=agent_id,
                            resources="cpus:1")])]
            return []

        got = _serve(old, 0.4, first_leader)
        assert sum(isinstance(m, RegisterAgent) for _, m in got) == count
        changed_at = time.monotonic()
        detector.next = f"tcp://127.0.0.1:{new_port}"
        # each task's end (0.5 s after it started) was due from before the leader
        # changed: it comes after the agent's reconnection, and must not be lost with it
        def second_leader(msg: Any) -> list[Any]:
            if isinstance(msg, ReregisterAgent):
                return [AgentRegistered(agent_id=msg.agent_id, heartbeat_interval=30.0,
                                        missed_heartbeats=5, reregistered=True)]
            if isinstance(msg, StatusUpdate):
                status = msg.status
                return [Acknowledge(framework_id=status.framework_id,
                                    agent_id=status.agent_id, task_id=status.task_id,
                                    uuid=status.uuid)]
            return []

        got = _serve(new, 1.5, second_leader)
        firsts: dict[str, ReregisterAgent] = {}
        for _, msg in got:
            if isinstance(msg, ReregisterAgent):
                firsts.setdefault(msg.agent_id, msg)
        assert sorted(firsts) == sorted(f"agent-{i}" for i in range(count))
        for agent_id, msg in firsts.items():
            assert [r.task.task_id for r in msg.tasks] == [f"t-{agent_id}"]
        finished = {m.status.task_id for _, m in got if isinstance(m, StatusUpdate)
                    and m.status.state == "TASK_FINISHED"}
        assert finished == {f"t-agent-{i}" for i in range(count)}
        # nothing more reached the old leader: its connections were closed
        assert old.poll(100) == 0
        time.sleep(0.6)  # a report
        assert reports.latest["reregistered_acks"] == count
        # the moment the last agent heard it was back, on the clock the bench reads
        assert changed_at <= reports.latest["last_reregistered_ms"] / 1000 <= time.monotonic()
    finally:
        stop.set()
        thread.join(10)
        old.close(0)
        new.close(0)
        context.term()
