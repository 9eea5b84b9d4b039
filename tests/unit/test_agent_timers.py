"""The agent's tick looks only at tasks whose retry or kill is due (issue 13: it walked
every task twice per turn of the loop, hundreds of turns a second in a burst).

The differential test holds the tick to what the walk did: before each tick, the tasks
whose head was due again and whose kill was due to escalate are computed by walking
every task (the old rule), and the tick must send and signal exactly those."""

from __future__ import annotations

import itertools
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.agent.core import SIGKILL, AgentCore, Effects
from mesos_zmq.protocol import (
    Acknowledge,
    AgentRegistered,
    KillTask,
    RunTasks,
    StatusUpdate,
    TaskInfo,
)
from mesos_zmq.resources import Resources


def agent(seed: int = 0) -> AgentCore:
    counter = itertools.count()
    return AgentCore("host", Resources.parse("cpus:8;mem:4096"), "", "A1",
                     lambda: f"u{next(counter)}", rng=random.Random(seed),
                     retry_interval=1.0, retry_max=8.0, registration_backoff_factor=0.0)


def register(core: AgentCore, now: float) -> Effects:
    core.connected(now)
    return core.handle(AgentRegistered(agent_id="A1", heartbeat_interval=1000.0,
                                       missed_heartbeats=5), "", now)


def run(core: AgentCore, task_ids: list[str], now: float) -> None:
    tasks = [TaskInfo(task_id=t, agent_id="A1", resources="cpus:0.01", command="true",
                      kill_grace_period=2.0) for t in task_ids]
    core.handle(RunTasks(framework_id="F1", tasks=tasks), "", now)


def ack_heads(core: AgentCore, now: float) -> None:
    for (framework_id, task_id), task in list(core.tasks.items()):
        if task.updates:
            core.handle(Acknowledge(framework_id=framework_id, task_id=task_id,
                                    uuid=task.updates[0].uuid, agent_id="A1"), "", now)


class NoWalk(dict[Any, Any]):
    """A task table that fails the test if anything walks it."""

    def _walked(self, *args: Any) -> Any:
        raise AssertionError("the tick walked every task")

    __iter__ = values = items = keys = _walked


def test_a_tick_with_nothing_due_looks_at_no_task() -> None:
    core = agent()
    register(core, 0.0)
    ids = [f"t{i}" for i in range(3000)]
    run(core, ids, 0.0)
    for task_id in ids:
        core.task_spawned(("F1", task_id), 0.0)
    ack_heads(core, 0.0)  # every RUNNING acknowledged: nothing in flight
    core.handle(KillTask(framework_id="F1", task_id="t7"), "", 0.5)  # SIGKILL due at 2.5
    live = core.tasks
    core.tasks = NoWalk(live)
    for now in (0.6, 1.0, 2.0):
        fx = core.tick(now)
        assert not fx.messages and not fx.signal
    fx = core.tick(2.5)
    assert fx.signal == [(("F1", "t7"), SIGKILL)]


def test_the_timers_left_behind_by_acknowledged_heads_are_trimmed() -> None:
    core = agent()
    register(core, 0.0)
    ids = [f"t{i}" for i in range(400)]
    run(core, ids, 0.0)
    now = 0.0
    for task_id in ids:  # RUNNING then FINISHED, each acknowledged at once
        now += 0.001
        core.task_spawned(("F1", task_id), now)
        ack_heads(core, now)
        core.task_exited(("F1", task_id), 0, None, now)
        ack_heads(core, now)
        core.tick(now)
    assert not core.tasks
    assert len(core.retry_timers) <= 1024  # not the 800 + 400 sends left behind
    assert core.tick(now + 100.0).messages == []


Op = tuple[str, int]
OPS = st.lists(st.tuples(st.sampled_from(["run", "run", "spawn", "spawn", "exit", "ack",
                                          "kill", "reregister", "lose", "wait", "wait",
                                          "wait", "wait"]),
                         st.integers(0, 3)), max_size=60)


def expected(core: AgentCore, now: float) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """What the old tick did: walk every task."""
    sends: set[tuple[str, str]] = set()
    kills: set[tuple[str, str]] = set()
    for key, task in core.tasks.items():
        if core.registered and task.updates:
            # while registered, every head in flight has a retry time
            assert task.retry_at is not None, key
            if now >= task.retry_at:
                sends.add(key)
        if task.kill_deadline is not None and now >= task.kill_deadline:
            kills.add(key)
    return sends, kills


def walk(ops: list[Op], seed: int) -> tuple[int, int]:
    """Apply ``ops``, ticking after each one against :func:`expected`; how many ticks
    sent a retry and how many signalled a SIGKILL."""
    core = agent(seed)
    now = 0.0
    register(core, now)
    retried = killed = 0
    for op, n in ops:
        key = ("F1", f"t{n}")
        if op == "run":
            run(core, [key[1]], now)
        elif op == "spawn":
            core.task_spawned(key, now)
        elif op == "exit":
            core.task_exited(key, n % 2, None, now)
        elif op == "ack":
            task = core.tasks.get(key)
            if task is not None and task.updates:
                core.handle(Acknowledge(framework_id="F1", task_id=key[1],
                                        uuid=task.updates[0].uuid, agent_id="A1"), "", now)
        elif op == "kill":
            core.handle(KillTask(framework_id="F1", task_id=key[1]), "", now)
        elif op == "reregister":
            register(core, now)
        elif op == "lose":
            core.connected(now)  # the master went away: registering again
        else:
            now += [0.3, 1.0, 2.5, 9.0][n % 4]
        sends, kills = expected(core, now)
        fx = core.tick(now)
        sent = {(m.status.framework_id, m.status.task_id)
                for m, _ in fx.messages if isinstance(m, StatusUpdate)}
        assert sent == sends
        assert {key for key, sig in fx.signal if sig == SIGKILL} == kills
        retried += bool(sends)
        killed += bool(kills)
    return retried, killed


@settings(max_examples=300, deadline=None)
@given(ops=OPS, seed=st.integers(0, 1000))
def test_the_tick_sends_and_signals_what_walking_every_task_would(ops: list[Op],
                                                                   seed: int) -> None:
    walk(ops, seed)


def test_long_walks_send_and_signal_what_walking_every_task_would() -> None:
    """Long random walks, for depth (hypothesis's examples are short)."""
    names = ["run", "spawn", "spawn", "exit", "ack", "ack", "kill", "reregister", "lose",
             "wait", "wait", "wait"]
    retried = killed = 0
    for seed in range(60):
        rng = random.Random(seed)
        ops = [(rng.choice(names), rng.randrange(6)) for _ in range(400)]
        r, k = walk(ops, seed)
        retried += r
        killed += k
    assert retried > 300 and killed > 80  # the walks reach both timers (696 and 181)
