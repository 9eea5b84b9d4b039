"""Master core rules, driven with messages and times only (no sockets, no clock)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from mesos_zmq.master.core import MasterCore, MasterCoreConfig, Ready
from mesos_zmq.master.log import MemoryLog
from mesos_zmq.master.records import record_to_plain
from mesos_zmq.master.state import MasterState, replay
from mesos_zmq.protocol import (
    Accept,
    Acknowledge,
    AgentRegistered,
    Decline,
    DrainAgent,
    Error,
    FrameworkInfo,
    GetState,
    Heartbeat,
    Kill,
    KillTask,
    Message,
    Offers,
    OperatorKill,
    OperatorReply,
    ReactivateAgent,
    ReadFile,
    Reconcile,
    ReconcileTask,
    RegisterAgent,
    ReregisterAgent,
    Rescind,
    RunTasks,
    ShutdownFramework,
    State,
    StatusUpdate,
    Subscribe,
    Subscribed,
    Suppress,
    TaskInfo,
    TaskReport,
    TaskStatus,
    Teardown,
)
from mesos_zmq.resources import Resources

AGENT = b"agent-conn"
FW = b"fw-conn"


class Harness:
    """A master core plus a memory log, applying the write-ahead rule like the shell."""

    def __init__(self, log: MemoryLog | None = None, now: float = 0.0, **config: Any) -> None:
        self.log = log or MemoryLog()
        recovered = self.log.recover()
        state = MasterState.restore(recovered.snapshot) if recovered.snapshot else MasterState()
        replay(state, recovered.records)
        counter = itertools.count()
        defaults: dict[str, Any] = {
            "heartbeat_interval": 1.0, "missed_heartbeats": 30, "reregister_timeout": 30.0
        }
        defaults.update(config)
        self.core = MasterCore(
            MasterCoreConfig(**defaults), lambda: f"id{next(counter):06d}", state, now=now
        )
        self.sent: list[tuple[bytes, Message, str]] = []

    def _apply(self, ready: Ready) -> list[tuple[bytes, Message, str]]:
        if ready.records:
            self.log.append([record_to_plain(r) for r in ready.records])  # as the shell
        self.sent.extend(ready.messages)
        return ready.messages

    def send(self, peer: bytes, msg: Message, now: float, rid: str = "") -> list[Any]:
        """Messages sent back to ``peer`` (others are in ``self.sent``)."""
        out = self._apply(self.core.handle(peer, msg, rid, now))
        return [m for p, m, _ in out if p == peer]

    def tick(self, now: float) -> list[tuple[bytes, Message, str]]:
        return self._apply(self.core.tick(now))

    def register_agent(self, peer: bytes = AGENT, resources: str = "cpus:4;mem:4096",
                       now: float = 0.0) -> str:
        (reply,) = self.send(peer, RegisterAgent(hostname="h1", resources=resources), now)
        assert isinstance(reply, AgentRegistered)
        return reply.agent_id

    def subscribe(self, peer: bytes = FW, roles: tuple[str, ...] = ("*",), now: float = 0.0,
                  framework_id: str = "", failover_timeout: float = 0.0) -> str:
        info = FrameworkInfo(name="test", roles=list(roles), framework_id=framework_id,
                             failover_timeout=failover_timeout)
        replies = self.send(peer, Subscribe(framework=info), now)
        assert isinstance(replies[0], Subscribed), replies
        return replies[0].framework_id

    def offers_to(self, peer: bytes, now: float) -> list[Any]:
        out = []
        for p, m, _ in self.tick(now):
            if p == peer and isinstance(m, Offers):
                out.extend(m.offers)
        return out


def of_type(messages: list[tuple[bytes, Message, str]], kind: type) -> list[Any]:
    return [m for _, m, _ in messages if isinstance(m, kind)]


def task(task_id: str, agent_id: str, resources: str = "cpus:1;mem:128") -> TaskInfo:
    return TaskInfo(task_id=task_id, agent_id=agent_id, resources=resources, command="true")


def launch(h: Harness, now: float = 0.0, resources: str = "cpus:1;mem:128",
           task_id: str = "t1") -> tuple[str, str, str]:
    agent_id = h.register_agent(now=now)
    fid = h.subscribe(now=now)
    (offer,) = h.offers_to(FW, now)
    out = h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                            tasks=[task(task_id, agent_id, resources)], refuse_seconds=0), now)
    assert out == []  # RunTasks goes to the agent, nothing back to the framework
    return agent_id, fid, offer.offer_id


def test_register_agent_assigns_id_and_persists_before_reply() -> None:
    h = Harness()
    ready = h.core.handle(AGENT, RegisterAgent(hostname="h", resources="cpus:2;mem:512"), "r", 0)
    assert ready.records and ready.records[0].OP == "agent_added"
    (peer, reply, rid) = ready.messages[0]
    assert isinstance(reply, AgentRegistered) and rid == "r" and peer == AGENT


def test_register_retry_on_same_connection_is_idempotent() -> None:
    h = Harness()
    first = h.register_agent()
    second = h.register_agent()
    assert first == second
    assert len(h.core.state.agents) == 1


def test_invalid_agent_resources_are_refused_without_state_change() -> None:
    h = Harness()
    (reply,) = h.send(AGENT, RegisterAgent(hostname="h", resources="cpus:lots"), 0)
    assert isinstance(reply, Error) and reply.code == "invalid" and "cpus:lots" in reply.message
    assert not h.core.state.agents and not h.log.records


def test_unregistered_connection_is_told_to_register() -> None:
    h = Harness()
    (reply,) = h.send(b"x", Heartbeat(), 0)
    assert isinstance(reply, Error) and reply.code == "not_registered"
    (reply,) = h.send(b"x", Accept(framework_id="f", offer_ids=["o"]), 0, rid="r9")
    assert isinstance(reply, Error) and reply.code == "not_registered"
    assert reply.in_reply_to == "r9"


def test_offer_goes_to_subscribed_framework_and_accept_launches() -> None:
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0.0)
    assert offer.agent_id == agent_id and "cpus:4" in offer.resources
    h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                      tasks=[task("t1", agent_id)]), 0.1)
    run = of_type(h.sent, RunTasks)
    assert run and run[0].tasks[0].task_id == "t1" and run[0].tasks[0].role == "*"
    assert h.core.state.task(fid, "t1") is not None
    assert "task_added" in [r["op"] for r in h.log.records]


def test_stale_offer_is_refused_and_changes_nothing() -> None:
    h = Harness()
    agent_id, fid, offer_id = launch(h)
    before = h.core.state.snapshot()
    replies = h.send(FW, Accept(framework_id=fid, offer_ids=[offer_id],
                                tasks=[task("t2", agent_id)]), 1, rid="again")
    errors = [m for m in replies if isinstance(m, Error)]
    assert errors and errors[0].code == "invalid" and offer_id in errors[0].message
    dropped = [m.status for m in replies if isinstance(m, StatusUpdate)]
    assert dropped and dropped[0].state == "TASK_DROPPED"
    assert h.core.state.snapshot() == before


def test_duplicate_task_id_gets_task_error_and_other_tasks_launch() -> None:
    h = Harness()
    agent_id, fid, _ = launch(h, resources="cpus:1;mem:64")
    (offer,) = h.offers_to(FW, 0.5)  # the leftover
    replies = h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                                tasks=[task("t1", agent_id), task("t3", agent_id)]), 0.6)
    errors = [m.status for m in replies if isinstance(m, StatusUpdate)]
    assert [s.state for s in errors] == ["TASK_ERROR"] and "already in use" in errors[0].message
    assert h.core.state.task(fid, "t3") is not None


def test_task_larger_than_offer_is_refused() -> None:
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0)
    replies = h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                                tasks=[task("big", agent_id, "cpus:5")]), 0)
    (status,) = [m.status for m in replies if isinstance(m, StatusUpdate)]
    assert status.state == "TASK_ERROR" and "do not fit" in status.message
    assert h.core.state.task(fid, "big") is None


def test_status_update_is_recorded_forwarded_and_ack_goes_to_agent() -> None:
    h = Harness()
    agent_id, fid, _ = launch(h)
    status = TaskStatus(task_id="t1", framework_id=fid, agent_id=agent_id,
                        state="TASK_FAILED", uuid="u1", timestamp=1.0, exit_code=3,
                        message="Command exited with status 3")
    ready = h.core.handle(AGENT, StatusUpdate(status=status), "", 1.0)
    assert ready.records[0].OP == "task_updated"
    assert [(p, type(m)) for p, m, _ in ready.messages] == [(FW, StatusUpdate)]
    rec = h.core.state.task(fid, "t1")
    assert rec is not None and rec.state == "TASK_FAILED" and rec.exit_code == 3
    out = h.send(FW, Acknowledge(framework_id=fid, agent_id=agent_id, task_id="t1",
                                 uuid="u1"), 1.1)
    assert out == [] and of_type(h.sent, Acknowledge)[-1].uuid == "u1"
    # A retried terminal update is forwarded again (no new record).
    ready = h.core.handle(AGENT, StatusUpdate(status=status), "", 1.2)
    assert not ready.records and len(ready.messages) == 1


def test_terminal_update_frees_resources_for_new_offers() -> None:
    h = Harness()
    agent_id, fid, _ = launch(h, resources="cpus:4;mem:4096")
    assert h.offers_to(FW, 0.2) == []
    status = TaskStatus(task_id="t1", framework_id=fid, agent_id=agent_id,
                        state="TASK_FINISHED", uuid="u", timestamp=1.0, exit_code=0)
    h.send(AGENT, StatusUpdate(status=status), 1.0)
    (offer,) = h.offers_to(FW, 1.0)
    assert "cpus:4" in offer.resources


def test_agent_loss_makes_tasks_lost_and_rescinds_offers() -> None:
    h = Harness(missed_heartbeats=3)
    agent_id, fid, _ = launch(h, resources="cpus:1;mem:128")
    (offer,) = h.offers_to(FW, 0.1)  # the leftover
    # The framework keeps beating, the agent does not.
    for t in (1.0, 2.0, 3.0, 4.0):
        h.send(FW, Heartbeat(), t)
    out = h.tick(4.5)
    lost = [m.status for m in of_type(out, StatusUpdate)]
    assert [s.state for s in lost] == ["TASK_LOST"] and lost[0].source == "master"
    assert [m.offer_id for m in of_type(out, Rescind)] == [offer.offer_id]
    assert agent_id not in h.core.state.agents
    # The LOST update is retried until acknowledged.
    assert of_type(h.tick(7.0), StatusUpdate)
    h.send(FW, Acknowledge(framework_id=fid, agent_id=agent_id, task_id="t1",
                           uuid=lost[0].uuid), 7.1)
    h.send(FW, Heartbeat(), 9.0)
    assert not of_type(h.tick(9.5), StatusUpdate)


def test_master_heartbeats_peers() -> None:
    h = Harness()
    h.register_agent()
    out = h.tick(1.0)
    assert of_type(out, Heartbeat)


def test_kill_goes_to_agent_and_unknown_task_is_lost() -> None:
    h = Harness()
    _, fid, _ = launch(h)
    h.send(FW, Kill(framework_id=fid, task_id="t1"), 1)
    assert of_type(h.sent, KillTask)[-1].task_id == "t1"
    (reply,) = h.send(FW, Kill(framework_id=fid, task_id="nope"), 1)
    assert isinstance(reply, StatusUpdate) and reply.status.state == "TASK_LOST"


def test_framework_cannot_act_for_another() -> None:
    h = Harness()
    _, fid, _ = launch(h)
    other = h.subscribe(peer=b"other")
    (reply,) = h.send(b"other", Kill(framework_id=fid, task_id="t1"), 1)
    assert isinstance(reply, Error) and reply.code == "invalid"
    assert other != fid


def test_reconciliation_explicit_and_implicit() -> None:
    h = Harness()
    _, fid, _ = launch(h)
    replies = h.send(FW, Reconcile(framework_id=fid), 1)
    assert [r.status.state for r in replies] == ["TASK_STAGING"]
    assert replies[0].status.uuid == ""
    replies = h.send(FW, Reconcile(framework_id=fid, tasks=[ReconcileTask("t1"),
                                                            ReconcileTask("ghost")]), 1)
    assert [r.status.state for r in replies] == ["TASK_STAGING", "TASK_LOST"]


def test_teardown_kills_tasks_and_forgets_framework() -> None:
    h = Harness()
    agent_id, fid, _ = launch(h)
    h.send(FW, Teardown(framework_id=fid), 1)
    assert of_type(h.sent, ShutdownFramework)[-1].framework_id == fid
    assert fid not in h.core.state.frameworks
    rec = h.core.state.task(fid, "t1")
    assert rec is not None and rec.state == "TASK_KILLED"
    info = FrameworkInfo(name="again", framework_id=fid)
    (reply,) = h.send(b"new", Subscribe(framework=info), 2)
    assert isinstance(reply, Error) and reply.code == "framework_removed"
    assert agent_id


def test_framework_failover_timeout_removes_it() -> None:
    h = Harness(missed_heartbeats=3)
    launch(h)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        h.send(AGENT, Heartbeat(), t)
        h.tick(t)
    assert not h.core.state.frameworks  # failover_timeout 0: removed once it went silent


def test_suppress_stops_offers() -> None:
    h = Harness()
    h.register_agent()
    fid = h.subscribe()
    h.send(FW, Suppress(framework_id=fid), 0)
    assert h.offers_to(FW, 0) == []


def test_weighted_drf_splits_agents_by_weight() -> None:
    h = Harness(weights=(("a", 1.0), ("b", 3.0)))
    for i in range(8):
        h.register_agent(peer=f"agent{i}".encode(), resources="cpus:1;mem:1024")
    fa = h.subscribe(peer=b"fa", roles=("a",))
    fb = h.subscribe(peer=b"fb", roles=("b",))
    out = h.tick(0)
    counts = {fa: 0, fb: 0}
    for _, m, _ in out:
        if isinstance(m, Offers):
            for o in m.offers:
                counts[o.framework_id] += 1
    assert counts == {fa: 2, fb: 6}


def test_restart_recovers_state_and_agents_reregister() -> None:
    h = Harness()
    agent_id, fid, _ = launch(h)
    h2 = Harness(log=h.log, now=100.0)
    assert fid in h2.core.state.frameworks and agent_id in h2.core.state.agents
    rec = h2.core.state.task(fid, "t1")
    assert rec is not None and rec.state == "TASK_STAGING"
    # A new connection from the old agent is not known yet.
    (reply,) = h2.send(b"agent2", Heartbeat(), 100)
    assert isinstance(reply, Error) and reply.code == "not_registered"
    report = TaskReport(task=rec.task, framework_id=fid, state="TASK_RUNNING")
    replies = h2.send(b"agent2", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                                  resources="cpus:4;mem:4096",
                                                  tasks=[report]), 100)
    assert isinstance(replies[-1], AgentRegistered) and replies[-1].reregistered
    fid2 = h2.subscribe(peer=b"fw2", framework_id=fid, now=100)
    assert fid2 == fid
    # The task's resources are still held: only the remainder is offered.
    offers = h2.offers_to(b"fw2", 100)
    assert offers and "cpus:3" in offers[0].resources


def test_reregistration_without_a_running_task_marks_it_lost() -> None:
    h = Harness()
    agent_id, fid, _ = launch(h)
    running = TaskStatus(task_id="t1", framework_id=fid, agent_id=agent_id,
                         state="TASK_RUNNING", uuid="u1", timestamp=0.5)
    h.send(AGENT, StatusUpdate(status=running), 0.5)
    replies = h.send(b"agent-new", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                                   resources="cpus:4;mem:4096"), 1)
    lost = [m for _, m, _ in h.sent if isinstance(m, StatusUpdate)]
    assert lost and lost[-1].status.state == "TASK_LOST"
    assert isinstance(replies[-1], AgentRegistered)


def test_reregistration_without_a_staging_task_delivers_it_again() -> None:
    h = Harness()
    agent_id, _fid, _ = launch(h)  # committed as STAGING; say RunTasks never arrived
    before = len(of_type(h.sent, RunTasks))
    h.send(b"agent-new", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                         resources="cpus:4;mem:4096"), 1)
    run = of_type(h.sent, RunTasks)
    assert len(run) == before + 1 and run[-1].tasks[0].task_id == "t1"
    assert not [m for _, m, _ in h.sent if isinstance(m, StatusUpdate)]


def test_unreregistered_agent_is_removed_after_timeout() -> None:
    h = Harness()
    agent_id, fid, _ = launch(h)
    h2 = Harness(log=h.log, now=0.0, reregister_timeout=5.0)
    h2.subscribe(peer=b"fw2", framework_id=fid)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):
        h2.send(b"fw2", Heartbeat(), t)
        h2.tick(t)
    assert agent_id not in h2.core.state.agents
    rec = h2.core.state.task(fid, "t1")
    assert rec is not None and rec.state == "TASK_LOST"


def test_operator_kill_and_state() -> None:
    h = Harness()
    launch(h)
    (reply,) = h.send(b"cli", GetState(), 1, rid="s")
    assert isinstance(reply, State)
    assert [t["id"] for t in reply.state["tasks"]] == ["t1"]
    (reply,) = h.send(b"cli", OperatorKill(task_id="t1"), 1)
    assert isinstance(reply, OperatorReply)
    (reply,) = h.send(b"cli", OperatorKill(task_id="zzz"), 1)
    assert isinstance(reply, Error)


def test_read_file_is_forwarded_and_routed_back() -> None:
    from mesos_zmq.protocol import FileData

    h = Harness()
    agent_id, _fid, _ = launch(h)
    assert h.send(b"cli", ReadFile(agent_id="", task_id="t1"), 1, rid="q1") == []
    _, fwd, fwd_rid = h.sent[-1]
    assert isinstance(fwd, ReadFile) and fwd.agent_id == agent_id and fwd_rid != "q1"
    data = FileData(task_id="t1", path="stdout", offset=0, data=b"hi\n", size=3)
    ready = h.core.handle(AGENT, data, fwd_rid, 1.1)
    assert ready.messages == [(b"cli", data, "q1")]



def test_file_reads_in_flight_are_capped_per_connection_before_the_agent_sends() -> None:
    """300 reads of 1 MiB asked at once grew the master by 430 MB: the answers all came
    back before the shell's cap on unread replies could act. Now what one connection
    has asked and not been answered is capped where it asks."""
    from mesos_zmq.master.runtime import MAX_READ_BYTES_IN_FLIGHT, MAX_READ_LENGTH
    from mesos_zmq.protocol import FileData

    h = Harness()
    launch(h)
    fits = MAX_READ_BYTES_IN_FLIGHT // MAX_READ_LENGTH
    for i in range(fits):
        # asking more than an agent returns counts as what it returns
        assert h.send(b"cli", ReadFile(agent_id="", task_id="t1", length=1 << 30), 1,
                      rid=f"q{i}") == []
    _, first, first_rid = h.sent[-fits]
    assert isinstance(first, ReadFile) and first.length == MAX_READ_LENGTH
    (reply,) = h.send(b"cli", ReadFile(agent_id="", task_id="t1", length=1), 1, rid="over")
    assert isinstance(reply, Error) and reply.code == "unread_replies"
    assert "wait for their answers" in reply.message
    # another connection is not held back by this one
    assert h.send(b"cli2", ReadFile(agent_id="", task_id="t1", length=1), 1, rid="o") == []
    # an answer frees room for one more; an expired read frees its room as well
    h.core.handle(AGENT, FileData(task_id="t1", path="stdout", offset=0, data=b"x", size=1),
                  first_rid, 1.1)
    assert h.send(b"cli", ReadFile(agent_id="", task_id="t1", length=1 << 20), 1.2,
                  rid="again") == []
    assert h.core.reads.asked(b"cli") == MAX_READ_BYTES_IN_FLIGHT
    h.core.tick(1000.0)
    assert h.core.reads.asked(b"cli") == 0 and len(h.core.reads) == 0
    assert h.core.counters["reads_refused"] == 1

@pytest.mark.parametrize(
    "info,needle",
    [
        (FrameworkInfo(name=""), "name"),
        (FrameworkInfo(name="x", roles=[]), "role"),
        (FrameworkInfo(name="x", roles=["a b"]), "a b"),
        (FrameworkInfo(name="x", framework_id="../etc"), "framework id"),
        (FrameworkInfo(name="x", failover_timeout=-1), "failover_timeout"),
    ],
)
def test_bad_subscriptions_are_refused(info: FrameworkInfo, needle: str) -> None:
    h = Harness()
    (reply,) = h.send(FW, Subscribe(framework=info), 0)
    assert isinstance(reply, Error) and needle in reply.message
    assert not h.core.state.frameworks


def test_weights_and_quota_are_logged_and_survive_a_restart() -> None:
    from mesos_zmq.protocol import RemoveQuota, SetQuota, SetWeights

    h = Harness()
    h.register_agent(resources="cpus:4;mem:4096")
    (reply,) = h.send(b"cli", SetWeights(weights={"eng": 3.0}), 0, rid="w")
    assert isinstance(reply, OperatorReply) and "eng=3" in reply.message
    (reply,) = h.send(b"cli", SetQuota(role="eng", guarantee="cpus:2;mem:512",
                                        limit="cpus:4"), 0)
    assert isinstance(reply, OperatorReply)
    h2 = Harness(log=h.log)
    assert h2.core.allocator.weights() == {"eng": 3.0}
    quota = h2.core.allocator.quotas()["eng"]
    assert quota.guarantee == {"cpus": 2.0, "mem": 512.0} and quota.limit == {"cpus": 4.0}
    (reply,) = h2.send(b"cli", GetState(), 0)
    (eng,) = [r for r in reply.state["roles"] if r["role"] == "eng"]
    assert eng["weight"] == 3.0 and eng["guarantee"] == {"cpus": 2.0, "mem": 512.0}
    (reply,) = h2.send(b"cli", RemoveQuota(role="eng"), 1)
    assert isinstance(reply, OperatorReply)
    assert "eng" not in Harness(log=h.log).core.allocator.quotas()


@pytest.mark.parametrize(
    "msg,needle",
    [
        ("weights:", "no weights"),
        ("weights:a b", "a b"),
        ("weights:neg", "positive"),
        ("quota:*", "unreserved"),
        ("quota:bad-res", "cpus:lots"),
        ("quota:ranges", "scalar"),
        ("quota:reserved", "role"),
        ("quota:over-limit", "within the limit"),
        ("remove:none", "no quota"),
    ],
)
def test_bad_operator_requests_change_nothing(msg: str, needle: str) -> None:
    from mesos_zmq.protocol import RemoveQuota, SetQuota, SetWeights

    requests = {
        "weights:": SetWeights(weights={}),
        "weights:a b": SetWeights(weights={"a b": 1.0}),
        "weights:neg": SetWeights(weights={"a": -1.0}),
        "quota:*": SetQuota(role="*", guarantee="cpus:1"),
        "quota:bad-res": SetQuota(role="a", guarantee="cpus:lots"),
        "quota:ranges": SetQuota(role="a", guarantee="ports:[1-2]"),
        "quota:reserved": SetQuota(role="a", guarantee="cpus(a):1"),
        "quota:over-limit": SetQuota(role="a", guarantee="cpus:4", limit="cpus:2", force=True),
        "remove:none": RemoveQuota(role="a"),
    }
    h = Harness()
    (reply,) = h.send(b"cli", requests[msg], 0)
    assert isinstance(reply, Error) and needle in reply.message, reply
    assert not h.log.records and not h.core.allocator.quotas()


def test_offers_held_past_the_offer_timeout_are_rescinded() -> None:
    h = Harness(offer_timeout=3.0)
    h.register_agent()
    h.subscribe()
    (offer,) = h.offers_to(FW, 0)
    for t in (1.0, 2.0):
        h.send(FW, Heartbeat(), t)
        assert not of_type(h.tick(t), Rescind)
    out = h.tick(3.0)
    assert [m.offer_id for m in of_type(out, Rescind)] == [offer.offer_id]
    assert h.core.counters["offers_timed_out"] == 1
    # The resources come straight back in a new offer.
    (again,) = [o for m in of_type(out, Offers) for o in m.offers]
    assert again.offer_id != offer.offer_id and again.resources == offer.resources


def test_reserve_through_accept_is_logged_offered_only_to_the_role_and_survives() -> None:
    from mesos_zmq.protocol import Operation

    h = Harness()
    agent_id = h.register_agent(resources="cpus:4;mem:4096")
    fid = h.subscribe(roles=("eng",))
    (offer,) = h.offers_to(FW, 0)
    reserve = Operation(kind="RESERVE", resources="cpus(eng):2;mem(eng):1024")
    h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id], operations=[reserve],
                      tasks=[task("t1", agent_id, "cpus(eng):1;mem(eng):512")],
                      refuse_seconds=0), 0.1)
    assert h.core.state.reservations[agent_id] == "cpus(eng):2;mem(eng):1024"
    assert h.core.state.task(fid, "t1") is not None
    # Another role only sees the unreserved part.
    h.subscribe(peer=b"ops", roles=("ops",))
    got = {o.framework_id: o.resources for o in h.offers_to(b"ops", 0.2)}
    assert list(got.values()) == ["cpus:2;mem:3072"]
    # A restarted master keeps the reservation and re-applies it on re-registration.
    h2 = Harness(log=h.log)
    # Outstanding offers survive too (the eng leftover holds the reserved cpus).
    assert set(h2.core.state.offers) == set(h.core.state.offers) and h2.core.state.offers
    held = [Resources.parse(o["resources"]) for o in h2.core.state.offers.values()]
    assert any(r.contains(Resources.parse("cpus(eng):1")) for r in held)
    h2.send(b"a2", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                   resources="cpus:4;mem:4096"), 1)
    assert h2.core.state.reservations[agent_id] == "cpus(eng):2;mem(eng):1024"


@pytest.mark.parametrize(
    "resources,kind,needle",
    [
        ("cpus:1", "RESERVE", "name the role"),
        ("cpus(ops):1", "RESERVE", "offer's role"),
        ("cpus(eng):99", "RESERVE", "not in the offers"),
        ("cpus(eng):1", "UNRESERVE", "not dynamically reserved"),
        ("cpus(eng):x", "RESERVE", "cpus(eng):x"),
        ("cpus(eng):1", "DESTROY", "unknown operation"),
    ],
)
def test_bad_operations_refuse_the_whole_accept(resources: str, kind: str, needle: str) -> None:
    from mesos_zmq.protocol import Operation

    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe(roles=("eng",))
    (offer,) = h.offers_to(FW, 0)
    before = h.core.state.snapshot()
    replies = h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                                operations=[Operation(kind=kind, resources=resources)],
                                tasks=[task("t1", agent_id)]), 0.1)
    errors = [m for m in replies if isinstance(m, Error)]
    assert errors and needle in errors[0].message, replies
    after = h.core.state.snapshot()
    assert after.pop("offers") == {} and before.pop("offers")  # returned to the pool
    assert after == before


def test_operator_reserve_and_unreserve() -> None:
    from mesos_zmq.protocol import ReserveResources, UnreserveResources

    h = Harness()
    agent_id = h.register_agent(resources="cpus:4;mem:4096")
    (reply,) = h.send(b"cli", ReserveResources(agent_id=agent_id,
                                               resources="cpus(eng):1;mem(eng):256"), 0)
    assert isinstance(reply, OperatorReply)
    assert h.core.allocator.free(agent_id) == Resources.parse(
        "cpus:3;cpus(eng):1;mem:3840;mem(eng):256")
    (reply,) = h.send(b"cli", ReserveResources(agent_id=agent_id, resources="cpus(eng):9"), 0)
    assert isinstance(reply, Error) and "more than the agent has" in reply.message
    (reply,) = h.send(b"cli", ReserveResources(agent_id="nope", resources="cpus(eng):1"), 0)
    assert isinstance(reply, Error) and "no agent" in reply.message
    (reply,) = h.send(b"cli", UnreserveResources(agent_id=agent_id,
                                                 resources="cpus(eng):1;mem(eng):256"), 1)
    assert isinstance(reply, OperatorReply)
    assert h.core.allocator.free(agent_id) == Resources.parse("cpus:4;mem:4096")
    assert agent_id not in h.core.state.reservations


def test_a_new_leader_honours_offers_made_by_the_previous_one() -> None:
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0)
    # The master dies; a new one recovers from the log.
    h2 = Harness(log=h.log, now=50.0)
    h2.send(b"agent2", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                       resources="cpus:4;mem:4096"), 50)
    assert h2.subscribe(peer=b"fw2", framework_id=fid, now=50) == fid
    assert h2.offers_to(b"fw2", 50.1) == []  # the old offer still holds everything
    replies = h2.send(b"fw2", Accept(framework_id=fid, offer_ids=[offer.offer_id],
                                     tasks=[task("t1", agent_id)]), 50.2)
    assert not [m for m in replies if isinstance(m, Error)], replies
    assert of_type(h2.sent, RunTasks)[-1].tasks[0].task_id == "t1"
    # A framework failing over to a new scheduler connection on the same master
    # does not inherit the old connection's offers.
    (fresh,) = h2.offers_to(b"fw2", 56.0)
    h2.subscribe(peer=b"fw3", framework_id=fid, now=56.1)
    replies = h2.send(b"fw3", Accept(framework_id=fid, offer_ids=[fresh.offer_id]), 56.2)
    assert [m.code for m in replies if isinstance(m, Error)] == ["invalid"]


def test_a_retried_accept_has_exactly_one_effect_even_across_a_restart() -> None:
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0)
    accept = Accept(framework_id=fid, offer_ids=[offer.offer_id], tasks=[task("t1", agent_id)])
    h.send(FW, accept, 0.1, rid="req-1")
    assert len(of_type(h.sent, RunTasks)) == 1
    assert h.send(FW, accept, 0.2, rid="req-1") == []  # the retry changes nothing
    h2 = Harness(log=h.log)
    h2.subscribe(peer=b"fw2", framework_id=fid)
    assert h2.send(b"fw2", accept, 1, rid="req-1") == []
    assert h2.core.counters["duplicate_requests"] == 1


def test_unacknowledged_master_updates_survive_a_restart() -> None:
    h = Harness(missed_heartbeats=3)
    agent_id, fid, _ = launch(h)
    for t in (1.0, 2.0, 3.0, 4.0):
        h.send(FW, Heartbeat(), t)
    (lost,) = [m.status for m in of_type(h.tick(4.5), StatusUpdate)]
    assert lost.state == "TASK_LOST"
    h2 = Harness(log=h.log, now=10.0)
    replies = h2.send(b"fw2", Subscribe(framework=FrameworkInfo(name="test", framework_id=fid)),
                      10)
    assert [m.status.uuid for m in replies if isinstance(m, StatusUpdate)] == [lost.uuid]
    h2.send(b"fw2", Acknowledge(framework_id=fid, agent_id=agent_id, task_id="t1",
                                uuid=lost.uuid), 10.5)
    assert not Harness(log=h.log).core.state.pending_updates


def test_decline_filters_survive_a_restart_and_revive_clears_them() -> None:
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0)
    h.send(FW, Decline(framework_id=fid, offer_ids=[offer.offer_id], refuse_seconds=30), 0.1)
    assert h.core.state.filters == {(fid, agent_id): 30.0}
    h2 = Harness(log=h.log, now=100.0)
    h2.send(b"a2", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                   resources="cpus:4;mem:4096"), 100)
    h2.subscribe(peer=b"fw2", framework_id=fid, now=100)
    assert h2.offers_to(b"fw2", 101) == []  # still filtered after the take-over
    from mesos_zmq.protocol import Revive

    h2.send(b"fw2", Revive(framework_id=fid), 102)
    assert len(h2.offers_to(b"fw2", 102)) == 1
    assert not Harness(log=h.log).core.state.filters


def _partition(capabilities: list[str]) -> tuple[Harness, str, str, list[TaskStatus]]:
    """A task runs, its agent goes silent past the heartbeat limit."""
    h = Harness(missed_heartbeats=3)
    agent_id = h.register_agent(now=0.0)
    info = FrameworkInfo(name="pa", capabilities=capabilities, failover_timeout=60)
    (sub, *_) = h.send(FW, Subscribe(framework=info), 0.0)
    fid = sub.framework_id
    (offer,) = h.offers_to(FW, 0.0)
    h.send(FW, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                      tasks=[task("t1", agent_id)], refuse_seconds=0), 0.0)
    h.send(AGENT, StatusUpdate(status=TaskStatus(
        task_id="t1", framework_id=fid, agent_id=agent_id, state="TASK_RUNNING", uuid="u1",
        timestamp=0.1)), 0.1)
    for t in (1.0, 2.0, 3.0, 4.0):
        h.send(FW, Heartbeat(), t)
    out = h.tick(4.5)
    return h, agent_id, fid, [m.status for m in of_type(out, StatusUpdate)]


def _come_back(h: Harness, agent_id: str, fid: str, now: float) -> list[Message]:
    running = TaskReport(task=task("t1", agent_id), framework_id=fid, state="TASK_RUNNING")
    h.send(b"agent-2", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                       resources="cpus:4;mem:4096", tasks=[running]), now)
    return [m for _, m, _ in h.sent]


def test_partition_aware_framework_hears_unreachable_then_running() -> None:
    h, agent_id, fid, updates = _partition(["PARTITION_AWARE"])
    assert [(s.state, s.reason) for s in updates] == [
        ("TASK_UNREACHABLE", "REASON_AGENT_UNREACHABLE")]
    rec = h.core.state.task(fid, "t1")
    assert rec is not None and rec.state == "TASK_UNREACHABLE"
    h.sent.clear()
    sent = _come_back(h, agent_id, fid, 5.0)
    back = [m.status for m in sent if isinstance(m, StatusUpdate)]
    assert [(s.state, s.reason) for s in back] == [("TASK_RUNNING", "REASON_AGENT_REREGISTERED")]
    assert not [m for m in sent if isinstance(m, KillTask)]
    rec = h.core.state.task(fid, "t1")
    assert rec is not None and rec.state == "TASK_RUNNING"


def test_plain_framework_hears_lost_and_the_returning_agent_kills_the_task() -> None:
    h, agent_id, fid, updates = _partition([])
    assert [s.state for s in updates] == ["TASK_LOST"]
    h.sent.clear()
    sent = _come_back(h, agent_id, fid, 5.0)
    assert [(m.framework_id, m.task_id) for m in sent if isinstance(m, KillTask)] == [
        (fid, "t1")]
    assert not [m for m in sent if isinstance(m, StatusUpdate) and m.status.state != "TASK_LOST"]


def test_drain_rescinds_offers_kills_tasks_and_reports_drained() -> None:
    h = Harness()
    agent_id, fid, _ = launch(h)
    (left,) = h.offers_to(FW, 0.1)  # the rest of the agent, held by the framework
    h.sent.clear()
    (reply,) = h.send(b"operator", DrainAgent(agent_id=agent_id, grace=2.5), 1.0)
    assert isinstance(reply, OperatorReply) and "1 task" in reply.message
    kills = of_type(h.sent, KillTask)
    assert [(k.task_id, k.grace) for k in kills] == [("t1", 2.5)]
    assert [r.offer_id for r in of_type(h.sent, Rescind)] == [left.offer_id]
    assert h.core.state.draining[agent_id]["drained"] is False
    assert not h.offers_to(FW, 2.0)  # nothing more is offered from it
    h.send(AGENT, StatusUpdate(status=TaskStatus(
        task_id="t1", framework_id=fid, agent_id=agent_id, state="TASK_KILLED", uuid="k1",
        timestamp=3.0, reason="REASON_AGENT_DRAINING")), 3.0)
    assert h.core.state.draining[agent_id]["drained"] is True
    view = {a["id"]: a for a in h.core.describe(3.0)["agents"]}
    assert view[agent_id]["drain"] == "DRAINED"
    (reply,) = h.send(b"operator", ReactivateAgent(agent_id=agent_id), 4.0)
    assert isinstance(reply, OperatorReply)
    assert h.offers_to(FW, 4.5)  # offered again


def test_drain_survives_a_master_restart_and_refuses_nonsense() -> None:
    log = MemoryLog()
    h = Harness(log)
    agent_id, _, _ = launch(h)
    (bad,) = h.send(b"operator", DrainAgent(agent_id="nope"), 1.0)
    assert isinstance(bad, Error) and bad.code == "invalid"
    (bad,) = h.send(b"operator", DrainAgent(agent_id=agent_id, grace=-1), 1.0)
    assert isinstance(bad, Error)
    h.send(b"operator", DrainAgent(agent_id=agent_id), 1.0)
    again = Harness(log, now=10.0)
    assert agent_id in again.core.state.draining
    running = TaskReport(task=task("t1", agent_id), framework_id=again.core.state.task(
        *next(iter(again.core.state.tasks))).framework_id, state="TASK_RUNNING")
    again.send(AGENT, ReregisterAgent(agent_id=agent_id, hostname="h1",
                                      resources="cpus:4;mem:4096", tasks=[running]), 11.0)
    assert [k.task_id for k in of_type(again.sent, KillTask)] == ["t1"]


def test_offers_that_survive_a_failover_are_sent_again_to_the_resubscribed_framework() -> None:
    """Issue 9, violation 4: restored offers were held for good and never re-sent."""
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0)  # logged; say the framework never received it
    h2 = Harness(log=h.log, now=50.0, offer_timeout=5.0)
    h2.send(b"agent2", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                       resources="cpus:4;mem:4096"), 50)
    replies = h2.send(b"fw2", Subscribe(framework=FrameworkInfo(
        name="test", framework_id=fid)), 50)
    assert isinstance(replies[0], Subscribed)
    (again,) = [o for m in replies if isinstance(m, Offers) for o in m.offers]
    assert (again.offer_id, again.resources, again.hostname) == (
        offer.offer_id, offer.resources, "h1")
    # The offer timeout runs again from the re-send, then the offer returns.
    assert of_type(h2.tick(54.9), Rescind) == []
    sent = h2.tick(55.1)
    assert [r.offer_id for r in of_type(sent, Rescind)] == [offer.offer_id]
    (fresh,) = [o for m in of_type(sent, Offers) for o in m.offers]
    assert fresh.offer_id != offer.offer_id
    assert Resources.parse(fresh.resources) == Resources.parse(offer.resources)


def test_a_declined_resent_offer_returns_its_resources() -> None:
    h = Harness()
    agent_id = h.register_agent()
    fid = h.subscribe()
    (offer,) = h.offers_to(FW, 0)
    h2 = Harness(log=h.log, now=10.0)
    h2.send(b"agent2", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                       resources="cpus:4;mem:4096"), 10)
    h2.subscribe(peer=b"fw2", framework_id=fid, now=10)
    h2.send(b"fw2", Decline(framework_id=fid, offer_ids=[offer.offer_id]), 10.1, rid="d1")
    h2.send(b"fw2", Decline(framework_id=fid, offer_ids=[offer.offer_id]), 10.2, rid="d1")
    assert h2.core.state.offers == {}
    assert h2.core.allocator.free(agent_id) == Resources.parse("cpus:4;mem:4096")


def test_an_unanswered_offer_is_sent_again_with_the_same_id() -> None:
    """An Offers message lost on a broken connection must not hold resources for good."""
    h = Harness(offer_resend_interval=10.0)
    h.register_agent()
    h.subscribe()
    (offer,) = h.offers_to(FW, 0)
    assert h.offers_to(FW, 9.9) == []
    (again,) = h.offers_to(FW, 10.1)
    assert again == offer
    assert h.offers_to(FW, 15.0) == []  # next one after another interval
    (third,) = h.offers_to(FW, 20.2)
    assert third.offer_id == offer.offer_id


def test_offers_of_a_framework_that_does_not_come_back_after_a_failover_return() -> None:
    h = Harness()
    agent_id = h.register_agent()
    h.subscribe()
    h.offers_to(FW, 0)
    h2 = Harness(log=h.log, now=50.0, heartbeat_interval=1.0, missed_heartbeats=5)
    h2.send(b"agent2", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                       resources="cpus:4;mem:4096"), 50)
    for t in (52.0, 54.0):
        h2.send(b"agent2", Heartbeat(), t)
    h2.tick(54.0)
    assert h2.core.state.offers  # held for the framework while it may still come back
    h2.send(b"agent2", Heartbeat(), 55.4)
    h2.tick(55.5)
    assert h2.core.agent_connected(agent_id)
    assert h2.core.state.offers == {}
    assert h2.core.allocator.free(agent_id) == Resources.parse("cpus:4;mem:4096")


def test_a_launch_the_agent_never_mentions_is_sent_again_with_back_off() -> None:
    h = Harness(launch_retry=5.0)
    agent_id, fid, _ = launch(h)
    assert len(of_type(h.sent, RunTasks)) == 1
    h.tick(4.9)
    assert len(of_type(h.sent, RunTasks)) == 1
    h.tick(5.1)
    runs = of_type(h.sent, RunTasks)
    assert len(runs) == 2 and runs[-1].tasks[0].task_id == "t1"
    h.tick(14.9)
    assert len(of_type(h.sent, RunTasks)) == 2  # next after 10 s more
    h.send(AGENT, StatusUpdate(status=TaskStatus(
        task_id="t1", framework_id=fid, agent_id=agent_id, state="TASK_RUNNING", uuid="u1",
        timestamp=15.0)), 15.0)
    h.tick(40.0)
    assert len(of_type(h.sent, RunTasks)) == 2  # the agent spoke: no more retries


def test_an_undelivered_launch_that_no_longer_fits_a_smaller_agent_is_lost_not_run() -> None:
    """Found by the simulator: an agent restarted with fewer cpus got a launch made
    against its old total and ran more than it has."""
    h = Harness()
    agent_id, fid, _ = launch(h, resources="cpus:3;mem:128")  # its run_tasks is lost
    runs = len(of_type(h.sent, RunTasks))
    h.send(b"agent2", ReregisterAgent(agent_id=agent_id, hostname="h1",
                                      resources="cpus:2;mem:4096"), 1.0)
    assert len(of_type(h.sent, RunTasks)) == runs  # not delivered again
    (lost,) = [m.status for m in of_type(h.sent, StatusUpdate) if m.status.task_id == "t1"]
    assert (lost.state, lost.reason) == ("TASK_LOST", "REASON_AGENT_RESTARTED")
    assert h.core.state.task(fid, "t1").terminal  # type: ignore[union-attr]


def _two_frameworks_same_task_id(h: Harness) -> tuple[str, str, str]:
    """Frameworks A and B each launch a task ``t1`` on the same agent."""
    agent_id = h.register_agent(resources="cpus:4;mem:4096")
    fids = []
    for peer in (b"fw-a", b"fw-b"):
        fid = h.subscribe(peer=peer)
        offers = h.offers_to(peer, 0.0)
        if not offers:
            offers = h.offers_to(peer, 2.0)
        (offer,) = offers
        assert h.send(peer, Accept(framework_id=fid, offer_ids=[offer.offer_id],
                                   tasks=[task("t1", agent_id)], refuse_seconds=0), 2.0) == []
        fids.append(fid)
    return agent_id, fids[0], fids[1]


def test_an_operator_kill_of_an_ambiguous_task_id_names_the_frameworks() -> None:
    h = Harness()
    _agent, fid_a, fid_b = _two_frameworks_same_task_id(h)
    (reply,) = h.send(b"cli", OperatorKill(task_id="t1"), 3.0)
    assert isinstance(reply, Error) and "2 frameworks" in reply.message
    assert fid_a in reply.message and fid_b in reply.message
    assert of_type(h.sent[-1:], KillTask) == []
    (reply,) = h.send(b"cli", OperatorKill(task_id="t1", framework_id=fid_b), 3.0)
    assert isinstance(reply, OperatorReply)
    (kill,) = [m for p, m, _ in h.sent if p == AGENT and isinstance(m, KillTask)]
    assert kill.framework_id == fid_b and kill.task_id == "t1"


def test_a_file_read_of_an_ambiguous_task_id_is_refused_not_guessed() -> None:
    h = Harness()
    agent_id, fid_a, _fid_b = _two_frameworks_same_task_id(h)
    (reply,) = h.send(b"cli", ReadFile(agent_id="", task_id="t1"), 3.0, rid="q")
    assert isinstance(reply, Error) and "--framework" in reply.message
    assert h.send(b"cli", ReadFile(agent_id="", task_id="t1", framework_id=fid_a), 3.0,
                  rid="q2") == []
    _, fwd, _ = h.sent[-1]
    assert isinstance(fwd, ReadFile) and fwd.framework_id == fid_a
    assert fwd.agent_id == agent_id


def test_times_shown_and_written_down_are_wall_clock() -> None:
    h = Harness(now=100.0)
    h.core.wall_offset = 1.7e9  # the shell keeps this at time.time() - monotonic()
    launch(h, now=100.0)
    (reply,) = h.send(b"cli", GetState(), 101.0)
    assert isinstance(reply, State)
    assert reply.state["master"]["now"] == pytest.approx(1.7e9 + 101.0)
    assert reply.state["master"]["started_at"] == pytest.approx(1.7e9 + 100.0)
    (t1,) = reply.state["tasks"]
    assert t1["updated_at"] == pytest.approx(1.7e9 + 100.0)
    assert all(r["time"] > 1e9 for r in h.log.recover().records if "time" in r)


def test_a_guarantee_beyond_the_cluster_is_refused_unless_forced() -> None:
    from mesos_zmq.protocol import SetQuota

    h = Harness()
    h.register_agent(resources="cpus:4;mem:4096")
    h.register_agent(peer=b"agent-2", resources="cpus:2;mem:4096")
    (reply,) = h.send(b"cli", SetQuota(role="eng/ml", guarantee="cpus:8;mem:16384"), 0)
    assert isinstance(reply, Error)
    assert "cpus:8" in reply.message and "cpus:6" in reply.message
    assert "mem:16384" in reply.message and "mem:8192" in reply.message
    assert "--force" in reply.message and not h.core.allocator.quotas()
    # Guarantees add up over the top-most roles with quota; a sub-role's is part of its
    # ancestor's.
    (reply,) = h.send(b"cli", SetQuota(role="eng", guarantee="cpus:4"), 0)
    assert isinstance(reply, OperatorReply)
    (reply,) = h.send(b"cli", SetQuota(role="eng/ml", guarantee="cpus:4"), 0)
    assert isinstance(reply, OperatorReply)
    (reply,) = h.send(b"cli", SetQuota(role="ops", guarantee="cpus:3"), 0)
    assert isinstance(reply, Error) and "cpus:7" in reply.message
    (reply,) = h.send(b"cli", SetQuota(role="ops", guarantee="cpus:3", force=True), 0)
    assert isinstance(reply, OperatorReply)
    assert h.core.allocator.quotas()["ops"].guarantee == {"cpus": 3.0}
    # A sub-role asking more than its parent is counted at what it asks.
    (reply,) = h.send(b"cli", SetQuota(role="eng/ml/big", guarantee="cpus:100"), 0)
    assert isinstance(reply, Error) and "cpus:103" in reply.message


def test_reserving_more_than_an_agent_has_says_so() -> None:
    from mesos_zmq.protocol import ReserveResources

    h = Harness()
    agent_id = h.register_agent(resources="cpus:4;mem:4096")
    (reply,) = h.send(b"cli", ReserveResources(agent_id=agent_id, resources="cpus(eng):99"), 0)
    assert isinstance(reply, Error)
    assert "more than the agent has" in reply.message and "cpus:4 in all" in reply.message
    h.subscribe()
    h.offers_to(FW, 0)  # everything is offered now: free, but not more than it has
    (reply,) = h.send(b"cli", ReserveResources(agent_id=agent_id, resources="cpus(eng):2"), 0)
    assert isinstance(reply, Error) and "not free" in reply.message


def test_a_stopping_agent_gets_no_more_work_and_keeps_its_tasks_for_the_limit() -> None:
    from mesos_zmq.protocol import AgentStopping

    h = Harness(heartbeat_interval=1.0, missed_heartbeats=5)
    agent_id, fid, _ = launch(h, resources="cpus:1;mem:128")
    h.send(AGENT, StatusUpdate(status=TaskStatus(
        task_id="t1", framework_id=fid, agent_id=agent_id, state="TASK_RUNNING",
        uuid="u1", timestamp=0.1)), 0.1)
    offered = h.offers_to(FW, 1.0)
    assert offered  # the rest of the agent is on offer
    h.sent.clear()
    assert h.send(AGENT, AgentStopping(agent_id=agent_id, reason="restart"), 1.5) == []
    rescinded = [m.offer_id for p, m, _ in h.sent if isinstance(m, Rescind)]
    assert rescinded == [o.offer_id for o in offered]
    assert not h.core.agent_connected(agent_id)
    h.send(FW, Heartbeat(), 3.5)
    assert not h.offers_to(FW, 2.0) and not h.offers_to(FW, 4.0)  # nothing offered on it
    assert h.core.state.task(fid, "t1").state.value == "TASK_RUNNING"
    # Back within the limit (5 s): nothing lost.
    (reply,) = h.send(b"agent-2", ReregisterAgent(
        agent_id=agent_id, hostname="h1", resources="cpus:4;mem:4096",
        tasks=[TaskReport(task=task("t1", agent_id), framework_id=fid,
                          state="TASK_RUNNING")]), 6.0)
    assert isinstance(reply, AgentRegistered)
    assert h.core.state.task(fid, "t1").state.value == "TASK_RUNNING"
    h.send(FW, Heartbeat(), 7.0)
    assert h.offers_to(FW, 7.5)


def test_a_stopped_agent_that_stays_away_is_removed_after_the_heartbeat_limit() -> None:
    from mesos_zmq.protocol import AgentStopping

    h = Harness(heartbeat_interval=1.0, missed_heartbeats=5)
    agent_id, fid, _ = launch(h)
    h.send(AGENT, AgentStopping(agent_id=agent_id), 1.0)
    h.send(FW, Heartbeat(), 3.0)
    h.send(FW, Heartbeat(), 5.5)
    h.tick(5.9)
    assert agent_id in h.core.state.agents
    h.tick(6.1)
    assert agent_id not in h.core.state.agents
    assert h.core.state.task(fid, "t1").state.value == "TASK_LOST"
    # Only the agent itself may say it stops.
    h2 = Harness()
    other = h2.register_agent()
    (reply,) = h2.send(b"stranger", AgentStopping(agent_id=other), 0.5)
    assert isinstance(reply, Error) and reply.code == "not_registered"
    assert h2.core.agent_connected(other)


def test_the_master_allocates_with_the_random_sorter() -> None:
    h = Harness(allocator_sorter="random")
    h.register_agent(resources="cpus:4;mem:4096")
    h.register_agent(peer=b"agent-2", resources="cpus:4;mem:4096")
    peers = [b"fw-a", b"fw-b"]
    for peer in peers:
        h.subscribe(peer=peer)
    out = h.tick(0.5) + h.tick(1.5)
    offers = [o for _, m, _ in out if isinstance(m, Offers) for o in m.offers]
    assert sorted(o.agent_id for o in offers) == sorted(h.core.state.agents)  # once each


def test_every_master_task_state_change_goes_through_the_lifecycle_table() -> None:
    from mesos_zmq.tasks import TaskState

    h = Harness()
    agent_id, fid, _ = launch(h)
    h.send(AGENT, StatusUpdate(status=TaskStatus(
        task_id="t1", framework_id=fid, agent_id=agent_id, state="TASK_FINISHED",
        uuid="u1", timestamp=0.1, exit_code=0)), 0.1)
    records = len(h.log.recover().records)
    # A finished task never runs again, whoever asks.
    from mesos_zmq.master import task_book

    assert not task_book.record_task_state(h.core, fid, "t1", TaskState.RUNNING, 0.2)
    ready = h.core.tick(0.3)
    assert not [r for r in ready.records if r.OP == "task_updated"]
    assert h.core.state.task(fid, "t1").state == TaskState.FINISHED
    assert h.core.counters["illegal_transitions"] == 1
    assert len(h.log.recover().records) == records
