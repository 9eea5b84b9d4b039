"""A re-registration (or subscription) that comes late, on a connection its agent (or
scheduler) has left, must not bind it there (CI, losing ZooKeeper's quorum: the leader
paused, the agent tried connection after connection, and the leader, back, read two
attempts of one old connection around the attempt of the newest; the agent was removed
for silence a second later and the task just launched on it was LOST)."""

from __future__ import annotations

import itertools
from typing import Any

from mesos_zmq.agent.core import AgentCore
from mesos_zmq.protocol import (
    Accept,
    AgentRegistered,
    Error,
    FrameworkInfo,
    Heartbeat,
    RegisterAgent,
    ReregisterAgent,
    RunTasks,
    StatusUpdate,
    Subscribe,
    Subscribed,
    TaskReport,
)
from mesos_zmq.resources import Resources
from mesos_zmq.scheduler.core import DriverCore, Send
from tests.unit.test_master_core import FW, Harness, launch, task


def _attempt(agent_id: str, fid: str, attempt: int, instance: str = "proc-1"
             ) -> ReregisterAgent:
    running = TaskReport(task=task("t1", agent_id), framework_id=fid, state="TASK_RUNNING")
    return ReregisterAgent(agent_id=agent_id, hostname="h1", resources="cpus:4;mem:4096",
                           tasks=[running], instance=instance, attempt=attempt)


def test_an_attempt_that_comes_after_a_later_one_on_another_connection_is_ignored() -> None:
    h = Harness(missed_heartbeats=3)
    agent_id, fid, _ = launch(h)
    # the master reads one message of each connection in turn: p2's first, p3's, p2's second
    (first,) = h.send(b"p2", _attempt(agent_id, fid, 1), 5.0)
    (newest,) = h.send(b"p3", _attempt(agent_id, fid, 3), 5.0)
    (late,) = h.send(b"p2", _attempt(agent_id, fid, 2), 5.0)
    assert isinstance(first, AgentRegistered) and isinstance(newest, AgentRegistered)
    assert isinstance(late, Error) and late.code == "stale", late
    assert h.core.agent_runtimes[agent_id].peer == b"p3"
    # the agent speaks on p3 only: it stays, and so does its task
    h.sent.clear()
    for now in (6.0, 7.0, 8.0, 9.0, 10.0):
        h.send(b"p3", Heartbeat(), now)
        h.send(FW, Heartbeat(), now)
        h.tick(now)
    rec = h.core.state.task(fid, "t1")
    assert rec is not None and not rec.terminal, rec
    assert not [m for _, m, _ in h.sent if isinstance(m, StatusUpdate)]
    assert agent_id in h.core.state.agents


def test_a_restarted_agent_and_an_old_agent_are_taken_as_before() -> None:
    h = Harness()
    agent_id, fid, _ = launch(h)
    (reply,) = h.send(b"p2", _attempt(agent_id, fid, 7), 1.0)
    assert isinstance(reply, AgentRegistered)
    # another process (a restart) numbers its attempts from 1 again
    (reply,) = h.send(b"p3", _attempt(agent_id, fid, 1, instance="proc-2"), 2.0)
    assert isinstance(reply, AgentRegistered)
    assert h.core.agent_runtimes[agent_id].peer == b"p3"
    # an agent that does not number its attempts (an older version) is always taken
    (reply,) = h.send(b"p4", _attempt(agent_id, fid, 0, instance=""), 3.0)
    assert isinstance(reply, AgentRegistered)
    assert h.core.agent_runtimes[agent_id].peer == b"p4"


def test_an_agent_numbers_its_attempts_and_each_process_has_its_own_name() -> None:
    ids = itertools.count()

    def core() -> AgentCore:
        return AgentCore("h", Resources.parse("cpus:1;mem:64"), "", "A1",
                         lambda: f"id{next(ids)}", registration_backoff_factor=0.0)

    agent = core()
    attempts = []
    now = 0.0
    for _ in range(3):
        fx = agent.connected(now)
        fx.extend(agent.tick(now + 0.01))
        attempts += [m for m, _ in fx.messages if isinstance(m, ReregisterAgent)]
        now += 100.0  # unanswered: the next attempt goes on a fresh connection
    # (a retry may also come due within the tick: numbered on, as every attempt)
    assert len(attempts) >= 3
    assert [m.attempt for m in attempts] == list(range(1, len(attempts) + 1))
    assert {m.instance for m in attempts} == {agent.instance} and agent.instance
    assert core().instance != agent.instance


def test_a_first_registration_asked_again_on_a_fresh_connection_is_the_same_agent() -> None:
    """A new agent's first answer went to a connection it had left: asked again on a
    fresh one, it was made a second agent, and the first, offered to frameworks,
    was removed for silence with whatever had been launched on it."""
    h = Harness()
    fid = h.subscribe()
    (first,) = h.send(b"p1", RegisterAgent(hostname="h1", resources="cpus:4;mem:4096",
                                           instance="proc-1", attempt=1), 0.0)
    assert isinstance(first, AgentRegistered)
    agent_id = first.agent_id
    (offer,) = h.offers_to(FW, 0.5)
    h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                      tasks=[task("t1", agent_id)], refuse_seconds=0), 0.5)
    # (the answer and the launch went to p1, which the agent had left)
    *_, again = h.send(b"p2", RegisterAgent(hostname="h1", resources="cpus:4;mem:4096",
                                            instance="proc-1", attempt=2), 1.0)
    assert isinstance(again, AgentRegistered) and again.agent_id == agent_id
    assert list(h.core.state.agents) == [agent_id]
    assert h.core.agent_runtimes[agent_id].peer == b"p2"
    # the launch it never heard of goes again, on p2
    launches = [m for p, m, _ in h.sent if p == b"p2" and isinstance(m, RunTasks)]
    assert [t.task_id for m in launches for t in m.tasks] == ["t1"]
    # a late attempt from the connection left behind changes nothing
    (late,) = h.send(b"p1", RegisterAgent(hostname="h1", resources="cpus:4;mem:4096",
                                          instance="proc-1", attempt=1), 1.5)
    assert isinstance(late, Error) and late.code == "stale"
    assert h.core.agent_runtimes[agent_id].peer == b"p2"
    # another process (no agent id yet, another instance) is another agent
    (other,) = h.send(b"p3", RegisterAgent(hostname="h2", resources="cpus:4;mem:4096",
                                           instance="proc-9", attempt=1), 2.0)
    assert isinstance(other, AgentRegistered) and other.agent_id != agent_id


# ----------------------------------------------------------------- frameworks
def _subscribe(h: Harness, peer: bytes, attempt: int, framework_id: str = "",
               instance: str = "sched-1", now: float = 1.0) -> list[Any]:
    info = FrameworkInfo(name="fw", framework_id=framework_id, failover_timeout=60)
    return h.send(peer, Subscribe(framework=info, instance=instance, attempt=attempt), now)


def test_a_late_subscription_on_a_connection_left_behind_is_ignored() -> None:
    h = Harness()
    h.register_agent()
    (first, *_) = _subscribe(h, b"s1", 1)
    fid = first.framework_id
    (newest, *_) = _subscribe(h, b"s2", 3, framework_id=fid)
    assert isinstance(newest, Subscribed) and newest.reregistered
    (offer,) = h.offers_to(b"s2", 1.5)
    (late,) = _subscribe(h, b"s1", 2, framework_id=fid, now=2.0)
    assert isinstance(late, Error) and late.code == "stale", late
    assert h.core.framework_runtimes[fid].peer == b"s2"
    assert offer.offer_id in h.core.offers  # the live connection's offer stands


def test_a_first_subscription_asked_again_on_a_fresh_connection_is_the_same_framework(
) -> None:
    h = Harness()
    (first, *_) = _subscribe(h, b"s1", 1)
    (again, *_) = _subscribe(h, b"s2", 2)
    assert isinstance(again, Subscribed) and again.framework_id == first.framework_id
    assert list(h.core.state.frameworks) == [first.framework_id]
    assert h.core.framework_runtimes[first.framework_id].peer == b"s2"
    # another scheduler process is another framework
    (other, *_) = _subscribe(h, b"s3", 1, instance="sched-2")
    assert isinstance(other, Subscribed) and other.framework_id != first.framework_id


def test_a_driver_numbers_its_subscriptions() -> None:
    ids = itertools.count()
    driver = DriverCore(FrameworkInfo(name="fw"), lambda: f"r{next(ids)}")
    sent = [a.message for now in (0.0, 100.0, 200.0) for a in driver.connected(now)
            if isinstance(a, Send) and isinstance(a.message, Subscribe)]
    assert [m.attempt for m in sent] == [1, 2, 3]
    assert {m.instance for m in sent} == {driver.instance} and driver.instance
    assert DriverCore(FrameworkInfo(name="fw"), lambda: "x").instance != driver.instance


# ----------------------------------------------------------------- framework failover
def _told(h: Harness, peer: bytes) -> list[Error]:
    return [m for p, m, _ in h.sent if p == peer and isinstance(m, Error)
            and m.code == "framework_failed_over"]


def test_a_scheduler_failed_over_by_another_process_is_told_and_stays_told() -> None:
    """Found by a review (two scheduler processes with one framework id): the old one
    was told nothing, got ``not_registered`` at its next heartbeat, subscribed again and
    took the framework back; the two took turns forever (60 switches each in 30 s),
    each switch voiding the other's offers. Mesos tells the old scheduler "Framework
    failed over", and its driver aborts."""
    h = Harness()
    h.register_agent()
    (first, *_) = _subscribe(h, b"s1", 1)
    fid = first.framework_id
    (taken, *_) = _subscribe(h, b"s2", 1, framework_id=fid, instance="sched-2", now=2.0)
    assert isinstance(taken, Subscribed) and taken.reregistered
    assert len(_told(h, b"s1")) == 1
    assert h.core.framework_runtimes[fid].peer == b"s2"
    # whatever the old connection sends next is answered the same, not not_registered
    (beat,) = h.send(b"s1", Heartbeat(), 3.0)
    assert isinstance(beat, Error) and beat.code == "framework_failed_over"
    (accept,) = h.send(b"s1", Accept(framework_id=fid, offer_ids=["o"], tasks=[]), 3.1, "r1")
    assert isinstance(accept, Error) and accept.code == "framework_failed_over"
    assert h.core.framework_runtimes[fid].peer == b"s2"
    # the new scheduler is not told anything, and keeps its offers
    assert _told(h, b"s2") == [] and h.offers_to(b"s2", 4.0)


def test_a_schedulers_own_reconnection_is_not_a_failover() -> None:
    h = Harness()
    (first, *_) = _subscribe(h, b"s1", 1)
    (again, *_) = _subscribe(h, b"s2", 2, framework_id=first.framework_id)
    assert isinstance(again, Subscribed)
    assert _told(h, b"s1") == []
    # a peer that sends no instance cannot be told apart: a failover, as in Mesos
    (other, *_) = _subscribe(h, b"s3", 0, framework_id=first.framework_id, instance="")
    assert isinstance(other, Subscribed) and len(_told(h, b"s2")) == 1
    # a displaced connection of a peer that sends no instance, subscribing again, is
    # its own choice (it cannot be told apart from a new one): bound again
    (fourth, *_) = _subscribe(h, b"s4", 1, framework_id=first.framework_id,
                              instance="sched-9")
    assert isinstance(fourth, Subscribed) and len(_told(h, b"s3")) == 1
    (back, *_) = _subscribe(h, b"s3", 0, framework_id=first.framework_id, instance="")
    assert isinstance(back, Subscribed) and b"s3" not in h.core.displaced
    assert h.send(b"s3", Heartbeat(), 5.0) == []


def test_the_sdk_aborts_when_its_framework_failed_over() -> None:
    ids = itertools.count()
    driver = DriverCore(FrameworkInfo(name="fw"), lambda: f"r{next(ids)}")
    driver.connected(0.0)
    driver.handle(Subscribed(framework_id="F1", heartbeat_interval=1.0,
                             missed_heartbeats=5), "", 0.1)
    actions = driver.handle(Error(code="framework_failed_over", message="failed over"),
                            "", 1.0)
    assert driver.stopped and not driver.subscribed
    assert [type(a).__name__ for a in actions][-1] == "Abort"
    assert not [a for a in actions if isinstance(a, Send)]  # no subscribe to take it back


def test_the_process_failed_over_from_cannot_take_the_framework_back() -> None:
    """Found with real processes: the old scheduler, woken from a pause, judged the
    master silent and left its connection before reading the word, then subscribed
    again on a fresh one and took the framework back from the new scheduler."""
    h = Harness()
    (first, *_) = _subscribe(h, b"s1", 1)
    fid = first.framework_id
    _subscribe(h, b"s2", 1, framework_id=fid, instance="sched-2", now=2.0)
    (back, *_) = _subscribe(h, b"s3", 2, framework_id=fid, now=3.0)  # sched-1, fresh
    assert isinstance(back, Error) and back.code == "framework_failed_over"
    assert h.core.framework_runtimes[fid].peer == b"s2" and _told(h, b"s2") == []
    # the same when it was already disconnected for its silence as the other came
    h.tick(100.0)  # s2 silent: unbound, the framework awaits its failover
    assert h.core.framework_runtimes[fid].peer is None
    (fifth, *_) = _subscribe(h, b"s5", 1, framework_id=fid, instance="sched-4", now=100.5)
    assert isinstance(fifth, Subscribed)
    (woken, *_) = _subscribe(h, b"s6", 5, framework_id=fid, instance="sched-2", now=101.0)
    assert isinstance(woken, Error) and woken.code == "framework_failed_over"
    assert h.core.framework_runtimes[fid].peer == b"s5"
    # a new leader (the same log) refuses it too, in either order of arrival
    for order in (("sched-4", "sched-2"), ("sched-2", "sched-4")):
        leader = Harness(log=h.log)
        answers = {inst: _subscribe(leader, inst.encode(), 9, framework_id=fid,
                                    instance=inst, now=200.0)[0] for inst in order}
        assert isinstance(answers["sched-4"], Subscribed), order
        assert isinstance(answers["sched-2"], Error), order
        assert answers["sched-2"].code == "framework_failed_over"
        assert leader.core.framework_runtimes[fid].peer == b"sched-4"
        assert _told(leader, b"sched-4") == []
    # a new process (a restart of the old scheduler) may fail over as ever
    (restart, *_) = _subscribe(h, b"s7", 1, framework_id=fid, instance="sched-3", now=102.0)
    assert isinstance(restart, Subscribed) and len(_told(h, b"s5")) == 1
