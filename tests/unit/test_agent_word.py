"""What an agent says is believed only as far as it can be true (issue 13's review of
hostile peers): resources of one name in two kinds, reports of other agents' tasks,
adoptions beyond what the agent has, the master's own task states, unbounded texts,
and a reconcile that asks for a quarter of a million updates. Each of these once
crashed, stalled or misled the master, or left a log it could not restart on."""

from __future__ import annotations

import pytest

from mesos_zmq.master.log import MemoryLog
from mesos_zmq.master.records import AgentAdded, TaskAdded, record_to_plain
from mesos_zmq.master.validation import MAX_RECONCILE, MAX_STATUS_MESSAGE
from mesos_zmq.protocol import (
    Accept,
    AgentRegistered,
    Error,
    FrameworkInfo,
    KillTask,
    Reconcile,
    ReconcileTask,
    RegisterAgent,
    ReregisterAgent,
    Rescind,
    SetQuota,
    StatusUpdate,
    Subscribe,
    TaskInfo,
    TaskReport,
    TaskStatus,
)
from mesos_zmq.resources import Resources
from tests.unit.test_master_core import (
    AGENT,
    FW,
    Harness,
    _partition,
    launch,
    of_type,
    task,
)


def _register(h: Harness, peer: bytes, resources: str) -> list[object]:
    return h.send(peer, RegisterAgent(hostname=peer.decode(), resources=resources), 0.0)


def _status(fid: str, agent_id: str, state: str, **fields: object) -> StatusUpdate:
    return StatusUpdate(status=TaskStatus(task_id="t1", framework_id=fid, agent_id=agent_id,
                                          state=state, uuid="u-" + state, timestamp=1.0,
                                          **fields))  # type: ignore[arg-type]


# ----------------------------------------------------------------- kinds
@pytest.mark.parametrize("resources", ["cpus:[1-2];mem:64", "cpus:1;mem:64;ports:5",
                                       "cpus:1;mem:64;gpus:0.5"])
def test_an_agent_with_a_known_name_of_another_kind_is_refused(resources: str) -> None:
    h = Harness()
    (reply,) = _register(h, b"a1", resources)
    assert isinstance(reply, Error) and reply.code == "invalid", reply
    assert not h.core.state.agents and not h.log.recover().records


def test_agents_that_disagree_on_a_custom_name_s_kind_survive_a_restart() -> None:
    h = Harness()
    for peer, resources in ((b"a1", "cpus:1;mem:64;foo:5"), (b"a2", "cpus:1;mem:64;foo:[1-5]")):
        (reply,) = _register(h, peer, resources)
        assert isinstance(reply, AgentRegistered)
    h2 = Harness(log=h.log, now=10.0)  # raised "cannot add foo of different kinds"
    assert len(h2.core.state.agents) == 2
    fid = h2.subscribe(now=10.0)
    for peer, resources in ((b"a1", "cpus:1;mem:64;foo:5"), (b"a2", "cpus:1;mem:64;foo:[1-5]")):
        agent_id = next(a.agent_id for a in h2.core.state.agents.values()
                        if a.hostname == peer.decode())
        replies = h2.send(peer, ReregisterAgent(agent_id=agent_id, hostname=peer.decode(),
                                                resources=resources), 10.0)
        assert isinstance(replies[-1], AgentRegistered)
    offered = sorted(o.resources for o in h2.offers_to(FW, 10.0))
    assert offered == ["cpus:1;foo:5;mem:64", "cpus:1;foo:[1-5];mem:64"]
    assert fid


#: tasks holding foo in the two kinds on an agent whose foo is ranges (accepted, once,
#: by adoption, before the kind rule)
TWO_KINDS = {"t1": "cpus:1;foo:3", "t2": "cpus:0.5;foo:[2-3]"}


def _restarted_on_two_kinds(order: tuple[str, ...] = ("t1", "t2")) -> tuple[Harness, str]:
    """A master restarted on a log written before the kind rule: agent A1 with
    ``foo:[1-5]`` (and A2 with ``foo:2``) runs the ``TWO_KINDS`` tasks, logged in
    ``order``; the framework has subscribed again."""
    log = MemoryLog()
    log.append([record_to_plain(r) for r in (
        AgentAdded(agent_id="A1", hostname="h1", resources="cpus:2;foo:[1-5];mem:64"),
        AgentAdded(agent_id="A2", hostname="h2", resources="cpus:2;foo:2;mem:64"),
    )])
    h = Harness(log=log)
    fid = h.subscribe()
    log.append([record_to_plain(TaskAdded(framework_id=fid, task=TaskInfo(
        task_id=t, agent_id="A1", resources=TWO_KINDS[t], command="true"),
        state="TASK_RUNNING")) for t in order])
    restarted = Harness(log=log, now=5.0)
    restarted.send(FW, Subscribe(framework=FrameworkInfo(name="test", roles=["*"],
                                                         framework_id=fid)), 5.0)
    return restarted, fid


def test_a_log_written_before_the_kind_rule_still_replays() -> None:
    """A task holding foo:3 on an agent whose foo is ranges: accepted once (adopted),
    it must not keep the master from starting (it did: 'cannot add foo of different
    kinds' on every restart)."""
    h2, fid = _restarted_on_two_kinds()
    assert h2.core.state.task(fid, "t1") is not None
    replies = h2.send(b"a1", ReregisterAgent(agent_id="A1", hostname="h1",
                                             resources="cpus:2;mem:64;foo:[1-5]",
                                             tasks=[]), 5.0)
    assert isinstance(replies[-1], AgentRegistered)
    h2.tick(6.0)  # an allocation runs over the agent's odd account without raising


def test_an_agent_back_with_another_kind_under_a_running_task_is_refused() -> None:
    """foo:2 held by a task, then the agent comes back with foo as ranges: it crashed
    the live master at its next allocation."""
    h = Harness()
    agent_id = h.register_agent(resources="cpus:4;mem:4096;foo:5")
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0.0)
    h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                      tasks=[task("t1", agent_id, "cpus:1;mem:128;foo:2")],
                      refuse_seconds=0), 0.0)
    before = len(h.log.recover().records)
    replies = h.send(b"agent-again", ReregisterAgent(
        agent_id=agent_id, hostname="h1", resources="cpus:4;mem:4096;foo:[1-5]"), 1.0)
    assert isinstance(replies[-1], Error) and "foo" in replies[-1].message, replies
    assert "new work dir" in replies[-1].message
    assert len(h.log.recover().records) == before
    assert h.core.state.agents[agent_id].resources == "cpus:4;foo:5;mem:4096"
    h.tick(2.0)  # no allocation raises
    # back as it was, it is welcome
    replies = h.send(b"agent-again", ReregisterAgent(
        agent_id=agent_id, hostname="h1", resources="cpus:4;mem:4096;foo:5"), 3.0)
    assert isinstance(replies[-1], AgentRegistered)


# ----------------------------------------------------------------- reports
def _two_agents() -> tuple[Harness, str, str, str]:
    """Agent A runs t1; agent B is registered on its own connection."""
    h = Harness()
    a, fid, _ = launch(h)
    (reply,) = _register(h, b"agent-b", "cpus:4;mem:4096")
    return h, a, reply.agent_id, fid


def test_an_agent_cannot_speak_for_another_agent_s_task() -> None:
    """A's task is UNREACHABLE (A went silent); B reports it RUNNING: the master
    once committed it RUNNING on A, which was gone, and told its framework so."""
    h, a, fid, _ = _partition(["PARTITION_AWARE"])
    (reply,) = _register(h, b"agent-b", "cpus:4;mem:4096")
    b = reply.agent_id
    rec = h.core.state.task(fid, "t1")
    assert rec is not None and rec.state == "TASK_UNREACHABLE"
    forged = TaskReport(task=rec.task, framework_id=fid, state="TASK_RUNNING")
    h.sent.clear()
    replies = h.send(b"agent-b2", ReregisterAgent(agent_id=b, hostname="agent-b",
                                                  resources="cpus:4;mem:4096",
                                                  tasks=[forged]), 5.0)
    assert isinstance(replies[-1], AgentRegistered)
    rec = h.core.state.task(fid, "t1")
    assert rec is not None and rec.agent_id == a and rec.state == "TASK_UNREACHABLE"
    assert not of_type(h.sent, StatusUpdate)


def test_an_agent_adopts_only_what_fits_in_what_it_has_left_in_its_framework_s_roles() -> None:
    h, a, b, fid = _two_agents()
    reports = [TaskReport(task=TaskInfo(task_id=tid, agent_id=b, resources=res, command="true",
                                        role=role),
                          framework_id=fid, state="TASK_RUNNING")
               for tid, res, role in (("huge", "cpus:1000000", ""),
                                      ("fits", "cpus:3;mem:1024", ""),
                                      ("other-role", "cpus:0.5", "eng"),
                                      ("too-late", "cpus:2", ""),
                                      ("last", "cpus:1", ""))]
    replies = h.send(b"agent-b2", ReregisterAgent(agent_id=b, hostname="agent-b",
                                                 resources="cpus:4;mem:4096",
                                                 tasks=reports), 1.0)
    assert isinstance(replies[-1], AgentRegistered)
    adopted = sorted(rec.task_id for rec in h.core.state.active_tasks_on(b))
    assert adopted == ["fits", "last"]
    # the framework is offered what is left on b (nothing) and on a (3 cpus)
    h.send(FW, Subscribe(framework=FrameworkInfo(name="test", roles=["*"],
                                                 framework_id=fid)), 2.0)
    offered = {o.agent_id: Resources.parse(o.resources) for o in h.offers_to(FW, 2.0)}
    assert offered.get(a) == Resources.parse("cpus:3;mem:3968")
    assert b not in offered or offered[b].scalar("cpus") == 0


def _report(tid: str, agent_id: str, fid: str, resources: str, role: str = "",
            state: str = "TASK_RUNNING") -> TaskReport:
    return TaskReport(task=TaskInfo(task_id=tid, agent_id=agent_id, resources=resources,
                                    command="true", role=role),
                      framework_id=fid, state=state)


def _back(h: Harness, agent_id: str, reports: list[TaskReport], now: float = 1.0,
          peer: bytes = b"agent-back") -> None:
    replies = h.send(peer, ReregisterAgent(agent_id=agent_id, hostname="h1",
                                           resources="cpus:4;mem:4096", tasks=reports), now)
    assert isinstance(replies[-1], AgentRegistered), replies


def _kills(h: Harness) -> list[str]:
    return sorted(m.task_id for m in of_type(h.sent, KillTask))


def test_a_refused_running_task_is_killed_and_ended_ones_do_not_crowd_out_running_ones(
) -> None:
    """What a refused task holds is offered again: left running, it would be used
    twice. An ended task reported first took the room of a running one."""
    h = Harness()
    fid = h.subscribe(roles=("eng",))
    agent_id = h.register_agent(peer=b"agent-b")
    h.sent.clear()
    _back(h, agent_id, [
        _report("done", agent_id, fid, "cpus:4;mem:4096", "eng", "TASK_FINISHED"),
        _report("runs", agent_id, fid, "cpus:4;mem:4096", "eng"),
        _report("no-role", agent_id, fid, "cpus:0.1", ""),  # "" is "*": not eng's
        _report("ended-no-role", agent_id, fid, "cpus:0.1", "", "TASK_FAILED"),
    ])
    assert [r.task_id for r in h.core.state.active_tasks_on(agent_id)] == ["runs"]
    assert _kills(h) == ["no-role"]  # (nothing to kill of one that ended)


def test_a_task_reported_twice_is_adopted_once() -> None:
    h = Harness()
    fid = h.subscribe()
    agent_id = h.register_agent(peer=b"agent-b")
    report = _report("x", agent_id, fid, "cpus:1", "*")
    _back(h, agent_id, [report, report, report])
    held = h.core.allocator.held(agent_id)
    assert held.scalar("cpus") == 1
    h.send(b"agent-back", StatusUpdate(status=TaskStatus(
        task_id="x", framework_id=fid, agent_id=agent_id, state="TASK_FINISHED", uuid="u1",
        timestamp=1.0)), 2.0)
    assert h.core.allocator.held(agent_id).scalar("cpus") == 0


def test_adopting_rescinds_the_agent_s_offers_first() -> None:
    """An offer of the whole agent was out when it came back running a task the
    master did not know: both accepted, the agent was booked twice."""
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0.0)
    h.sent.clear()
    _back(h, agent_id, [_report("ghost", agent_id, fid, "cpus:4;mem:4096", "*")])
    assert [m.offer_id for m in of_type(h.sent, Rescind)] == [offer.offer_id]
    replies = h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                                tasks=[task("t9", agent_id, "cpus:4;mem:4096")],
                                refuse_seconds=0), 2.0)
    assert h.core.state.task(fid, "t9") is None or h.core.state.task(fid, "t9").terminal, \
        replies
    assert [r.task_id for r in h.core.state.active_tasks_on(agent_id)] == ["ghost"]
    assert h.core.allocator.held(agent_id).scalar("cpus") == 4


def test_a_task_told_lost_that_still_runs_counts_against_what_may_be_adopted() -> None:
    """t1 was LOST (its agent went silent) but runs until the kill lands: a task the
    agent adopts must not take its room meanwhile."""
    h, agent_id, fid, _ = _partition([])
    h.sent.clear()
    running = TaskReport(task=task("t1", agent_id), framework_id=fid, state="TASK_RUNNING")
    _back(h, agent_id, [running, _report("u1", agent_id, fid, "cpus:4;mem:4096", "*")], 5.0)
    assert _kills(h) == ["t1", "u1"]
    assert not h.core.state.active_tasks_on(agent_id)


@pytest.mark.parametrize("order", [("t1", "t2"), ("t2", "t1")])
def test_tasks_of_two_kinds_in_an_old_log_are_released_as_they_were_held(
        order: tuple[str, str]) -> None:
    """Held, foo:3 on an agent whose foo is ranges is left out of its account. Given
    back, the task's cpus were kept held for good; then, released, they took out of
    the shares more than a restarted master had counted (shares below zero)."""
    h2, fid = _restarted_on_two_kinds(order)
    reports = [TaskReport(task=h2.core.state.task(fid, t).task,  # type: ignore[union-attr]
                          framework_id=fid, state="TASK_RUNNING") for t in order]
    h2.send(b"a1", ReregisterAgent(agent_id="A1", hostname="h1",
                                   resources="cpus:2;foo:[1-5];mem:64", tasks=reports), 5.0)
    assert h2.core.allocator.held("A1").scalar("cpus") == 1.5
    assert h2.core.allocator.role_allocation("*").get("cpus") == pytest.approx(1.5)
    for n, t in enumerate(order):
        h2.send(b"a1", StatusUpdate(status=TaskStatus(
            task_id=t, framework_id=fid, agent_id="A1", state="TASK_FINISHED",
            uuid=f"u{n}", timestamp=1.0)), 6.0)
    held = h2.core.allocator.held("A1")
    assert held.scalar("cpus") == 0 and not held.filter_names(["foo"]), held
    # (the allocator's sum of what all roles hold: its shares follow the same counts)
    left = h2.core.allocator._allocated_total
    assert all(abs(amount) < 1e-9 for amount in left.values()), left


def test_a_quota_is_checked_against_agents_of_one_name_in_two_kinds() -> None:
    """Summed as Resources, the agents' foo:5 and foo:[1-5] could not be added: one
    agent was left out of the cluster's capacity, and a quota it covers refused."""
    h = Harness()
    _register(h, b"a1", "cpus:4;mem:64;foo:5")
    _register(h, b"a2", "cpus:4;mem:64;foo:[1-5]")
    (reply,) = h.send(b"operator", SetQuota(role="eng", guarantee="cpus:6"), 1.0)
    assert not isinstance(reply, Error), reply
    assert "eng" in h.core.state.quotas


# ----------------------------------------------------------------- status updates
@pytest.mark.parametrize("state", ["TASK_UNREACHABLE", "TASK_GONE", "TASK_UNKNOWN"])
def test_an_agent_may_not_give_the_master_s_own_verdicts(state: str) -> None:
    h = Harness()
    agent_id, fid, _ = launch(h)
    before = len(h.log.recover().records)
    (reply,) = h.send(AGENT, _status(fid, agent_id, state), 1.0)
    assert isinstance(reply, Error) and reply.code == "bad_field" and state in reply.message
    rec = h.core.state.task(fid, "t1")
    assert rec is not None and rec.state == "TASK_STAGING"
    assert len(h.log.recover().records) == before


def test_a_long_reason_is_refused_and_a_long_message_is_cut() -> None:
    h = Harness()
    agent_id, fid, _ = launch(h)
    (reply,) = h.send(AGENT, _status(fid, agent_id, "TASK_RUNNING", reason="R" * 129), 1.0)
    assert isinstance(reply, Error) and reply.code == "bad_field"
    h.sent.clear()
    h.send(AGENT, _status(fid, agent_id, "TASK_FAILED", message="x" * 3_000_000), 2.0)
    rec = h.core.state.task(fid, "t1")
    assert rec is not None and rec.state == "TASK_FAILED"
    assert rec.message == "x" * MAX_STATUS_MESSAGE
    (forwarded,) = of_type(h.sent, StatusUpdate)
    assert forwarded.status.message == rec.message
    assert max(len(str(r)) for r in h.log.recover().records) < 4 * MAX_STATUS_MESSAGE


# ----------------------------------------------------------------- reconcile
def test_a_reconcile_names_at_most_max_reconcile_tasks() -> None:
    h = Harness()
    _, fid, _ = launch(h)
    h.sent.clear()
    many = [ReconcileTask(task_id=f"x{i}") for i in range(MAX_RECONCILE + 1)]
    (reply,) = h.send(FW, Reconcile(framework_id=fid, tasks=many), 1.0)
    assert isinstance(reply, Error) and str(MAX_RECONCILE) in reply.message
    assert not of_type(h.sent, StatusUpdate)
    out = h.send(FW, Reconcile(framework_id=fid, tasks=many[:MAX_RECONCILE]), 1.0)
    assert len(out) == MAX_RECONCILE
