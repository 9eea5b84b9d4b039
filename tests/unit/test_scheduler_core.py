"""DriverCore driven with messages and times only: no sockets, no threads, no clock."""

from __future__ import annotations

import itertools
import random

from mesos_zmq.protocol import (
    Accept,
    Acknowledge,
    Decline,
    Error,
    FileData,
    FrameworkInfo,
    Heartbeat,
    Kill,
    Message,
    Offer,
    Offers,
    ReadFile,
    Reconcile,
    ReconcileTask,
    Rescind,
    Revive,
    StatusUpdate,
    Subscribe,
    Subscribed,
    Suppress,
    TaskInfo,
    TaskStatus,
    Teardown,
)
from mesos_zmq.scheduler.core import (
    KILL_RETRY,
    SUBSCRIBE_BACKOFF,
    Abort,
    Action,
    Call,
    DriverCore,
    FileReply,
    Reconnect,
    Refusal,
    Send,
)


class Longest(random.Random):
    """Every jittered wait at its longest: the back-off's bounds, exactly."""

    def random(self) -> float:
        return 1.0


def make(framework_id: str = "", implicit: bool = True, seen_limit: int = 1000,
         rng: random.Random | None = None) -> DriverCore:
    counter = itertools.count()
    return DriverCore(
        FrameworkInfo(name="fw", framework_id=framework_id),
        lambda: f"r{next(counter)}",
        implicit_acknowledgements=implicit,
        seen_limit=seen_limit,
        rng=rng or random.Random(0),
    )


def subscribe(core: DriverCore, now: float = 0.0, interval: float = 1.0,
              missed: int = 3) -> list[Action]:
    core.connected(now)
    return core.handle(Subscribed(framework_id="F1", heartbeat_interval=interval,
                                  missed_heartbeats=missed), "", now)


def sent(actions: list[Action]) -> list[Message]:
    return [a.message for a in actions if isinstance(a, Send)]


def calls(actions: list[Action]) -> list[str]:
    return [a.name for a in actions if isinstance(a, Call)]


def status(task: str = "t1", uuid: str = "u1", state: str = "TASK_RUNNING") -> TaskStatus:
    return TaskStatus(task_id=task, framework_id="F1", agent_id="A1", state=state, uuid=uuid,
                      timestamp=0.0)


def update(task: str = "t1", uuid: str = "u1") -> StatusUpdate:
    return StatusUpdate(status=status(task, uuid))


# ----------------------------------------------------------------------------- subscription


def test_subscribe_is_retried_after_its_backoff_with_fresh_request_ids() -> None:
    core = make()
    first = core.connected(0.0)  # the first goes at once
    assert isinstance(first[0], Send) and isinstance(first[0].message, Subscribe)
    due = core.next_wakeup(0.0)
    assert 0.0 < due <= SUBSCRIBE_BACKOFF  # then a random wait within [0, 2 s]
    assert core.tick(due * 0.9) == []
    retry = core.tick(due)
    assert isinstance(retry[0], Send) and isinstance(retry[0].message, Subscribe)
    assert retry[0].request_id != first[0].request_id
    assert due < core.next_wakeup(due) <= due + 2 * SUBSCRIBE_BACKOFF  # the bound doubled


def test_failover_id_is_sent_but_first_subscribed_still_calls_registered() -> None:
    core = make(framework_id="OLD")
    (send,) = core.connected(0.0)
    assert isinstance(send.message, Subscribe)  # type: ignore[union-attr]
    assert send.message.framework.framework_id == "OLD"  # type: ignore[union-attr]
    actions = core.handle(Subscribed(framework_id="OLD", heartbeat_interval=1.0,
                                     missed_heartbeats=3, reregistered=True), "", 0.1)
    assert calls(actions) == ["registered"]


def test_later_subscriptions_carry_the_assigned_id_and_call_reregistered() -> None:
    core = make()
    assert calls(subscribe(core)) == ["registered"]
    (msg,) = sent(core.connected(10.0))
    assert isinstance(msg, Subscribe) and msg.framework.framework_id == "F1"
    again = core.handle(Subscribed(framework_id="F1", heartbeat_interval=1.0,
                                   missed_heartbeats=3, reregistered=True), "", 10.1)
    assert calls(again) == ["reregistered"]


def test_duplicate_subscribed_answer_is_ignored() -> None:
    core = make()
    subscribe(core)
    dup = core.handle(Subscribed(framework_id="F1", heartbeat_interval=1.0,
                                 missed_heartbeats=3), "", 0.5)
    assert dup == []


def test_error_answering_any_subscribe_attempt_aborts() -> None:
    core = make()
    (first,) = core.connected(0.0)
    core.tick(1.0)  # a retry with a new id; the master answers the first one late
    assert isinstance(first, Send)
    actions = core.handle(Error(code="invalid", message="bad role", in_reply_to=first.request_id),
                          "", 1.1)
    assert calls(actions) == ["error"] and isinstance(actions[-1], Abort)
    assert core.stopped and core.tick(100.0) == []


def test_framework_removed_aborts_other_errors_are_refusals() -> None:
    core = make()
    subscribe(core)
    soft = core.handle(Error(code="invalid", message="stale offer", in_reply_to="x"), "", 1.0)
    assert soft == [Call("refused", (Refusal("invalid", "stale offer", "x"),))]
    assert not core.stopped
    hard = core.handle(Error(code="framework_removed", message="gone"), "", 2.0)
    assert Call("error", ("gone",)) in hard and isinstance(hard[-1], Abort)
    assert "refused" not in calls(hard)


def test_not_registered_resubscribes_at_once_with_the_same_id() -> None:
    core = make()
    subscribe(core)
    actions = core.handle(Error(code="not_registered", message="who?"), "", 1.0)
    (msg,) = sent(actions)
    assert isinstance(msg, Subscribe) and msg.framework.framework_id == "F1"
    assert calls(actions) == []  # no error callback: this is routine after a master restart
    # More not_registered answers while resubscribing do not start a Subscribe storm.
    assert core.handle(Error(code="not_registered", message="who?"), "", 1.1) == []


# ----------------------------------------------------------------------------- liveness


def test_default_heartbeat_limit_before_subscribed() -> None:
    """Before Subscribed the master is assumed to beat every 1 s, 5 misses allowed;
    the connection is given up when a Subscribe is due and the previous one went
    unanswered that long, and the back-off goes on (it does not start again)."""
    core = make(rng=Longest())  # waits after the Subscribes at 0, 2, 6: 2, 4, 8 s
    core.connected(0.0)
    assert isinstance(sent(core.tick(2.0))[0], Subscribe)
    assert Reconnect() not in core.tick(5.1)  # silent 5 s, but no Subscribe due
    assert isinstance(sent(core.tick(6.0))[0], Subscribe)  # the previous one is 4 s old
    assert core.tick(13.9) == []
    actions = core.tick(14.0)
    assert actions == [Reconnect()]  # never subscribed: nothing to call disconnected
    (msg,) = sent(core.connected(14.0))  # the Subscribe that was due, on the new socket
    assert isinstance(msg, Subscribe)
    assert core.next_wakeup(14.0) == 14.0 + 8 * SUBSCRIBE_BACKOFF  # the back-off went on


def test_master_limits_apply_after_subscribed_and_any_message_counts() -> None:
    core = make()
    subscribe(core, now=0.0, interval=0.5, missed=2)
    assert isinstance(sent(core.tick(0.5))[0], Heartbeat)
    core.handle(Offers(offers=[]), "", 0.9)  # any message is a sign of life
    assert Reconnect() not in core.tick(1.8)
    actions = core.tick(2.0)
    assert actions == [Call("disconnected"), Reconnect()]
    assert not core.subscribed
    (msg,) = sent(core.connected(2.0))
    assert isinstance(msg, Subscribe) and msg.framework.framework_id == "F1"


def test_next_wakeup_tracks_heartbeat_and_expiry() -> None:
    core = make()
    subscribe(core, now=10.0, interval=2.0, missed=3)
    assert core.next_wakeup(10.0) == 12.0
    core.tick(12.0)
    assert core.next_wakeup(12.0) == 14.0
    core.teardown()
    assert core.next_wakeup(12.0) > 1000


# ----------------------------------------------------------------------------- traffic


def test_offers_and_rescinds_only_while_subscribed() -> None:
    core = make()
    offer = Offer(offer_id="o1", framework_id="F1", agent_id="A1", hostname="h", role="*",
                  resources="cpus:1")
    core.connected(0.0)
    assert core.handle(Offers(offers=[offer]), "", 0.1) == []
    subscribe(core)
    assert core.handle(Offers(offers=[offer]), "", 0.2) == [Call("resource_offers", ([offer],))]
    assert core.handle(Rescind(offer_id="o1"), "", 0.3) == [Call("offer_rescinded", ("o1",))]


def test_update_delivered_once_then_reacked_and_ack_follows_callback() -> None:
    core = make()
    subscribe(core)
    first = core.handle(update(), "", 1.0)
    assert calls(first) == ["status_update"] and isinstance(first[1], Send)
    ack = first[1].message
    assert ack == Acknowledge(framework_id="F1", agent_id="A1", task_id="t1", uuid="u1")
    assert first[1].request_id
    again = core.handle(update(), "", 2.0)
    assert calls(again) == [] and sent(again) == [ack]


def test_dedup_is_per_task_and_empty_uuid_is_never_acked_or_deduplicated() -> None:
    core = make()
    subscribe(core)
    core.handle(update("t1", "same"), "", 1.0)
    assert calls(core.handle(update("t2", "same"), "", 1.0)) == ["status_update"]
    for _ in range(2):
        info = core.handle(update("t3", ""), "", 1.0)
        assert calls(info) == ["status_update"] and sent(info) == []


def test_seen_set_is_bounded() -> None:
    core = make(seen_limit=3)
    subscribe(core)
    for i in range(5):
        core.handle(update("t", f"u{i}"), "", 1.0)
    # The oldest were forgotten (a retry that old is delivered again, never lost).
    assert calls(core.handle(update("t", "u0"), "", 2.0)) == ["status_update"]
    assert calls(core.handle(update("t", "u4"), "", 2.0)) == []


def test_explicit_acks_are_sent_by_the_scheduler_and_then_repeated() -> None:
    core = make(implicit=False)
    subscribe(core)
    first = core.handle(update(), "", 1.0)
    assert calls(first) == ["status_update"] and sent(first) == []
    assert core.handle(update(), "", 1.5) == []  # not acked by the scheduler yet
    (ack,) = sent(core.acknowledge(status()))
    assert isinstance(ack, Acknowledge) and ack.uuid == "u1"
    assert sent(core.handle(update(), "", 2.0)) == [ack]
    assert core.acknowledge(status(uuid="")) == []


def test_requests_are_dropped_unless_subscribed() -> None:
    core = make()
    kill = Kill(framework_id="F1", task_id="t")
    assert core.request(kill) == []
    subscribe(core)
    (send,) = core.request(kill)
    assert isinstance(send, Send) and send.message == kill and send.request_id
    (other,) = core.request(kill)
    assert isinstance(other, Send) and other.request_id != send.request_id


# ----------------------------------------------------------------------------- file reads


def test_read_file_routing_of_data_and_errors() -> None:
    core = make()
    subscribe(core)
    rid, actions = core.read_file(ReadFile(agent_id="A1", task_id="t1"))
    assert sent(actions) == [ReadFile(agent_id="A1", task_id="t1")]
    assert isinstance(actions[0], Send) and actions[0].request_id == rid
    data = FileData(task_id="t1", path="stdout", offset=0, data=b"x", size=1)
    assert core.handle(data, rid, 1.0) == [FileReply(rid, data)]
    assert core.handle(data, rid, 1.0) == []  # only one answer per read
    rid2, _ = core.read_file(ReadFile(agent_id="A1", task_id="t1"))
    err = Error(code="invalid", message="no sandbox", in_reply_to=rid2)
    assert core.handle(err, "", 1.0) == [FileReply(rid2, err)]  # no error callback


def test_read_while_unsubscribed_or_across_reconnect_is_answered_locally() -> None:
    core = make()
    rid, actions = core.read_file(ReadFile(agent_id="A1", task_id="t1"))
    (reply,) = actions
    assert isinstance(reply, FileReply) and reply.request_id == rid
    assert isinstance(reply.message, Error) and reply.message.code == "not_registered"
    subscribe(core)
    rid2, _ = core.read_file(ReadFile(agent_id="A1", task_id="t1"))
    replies = [a for a in core.connected(5.0) if isinstance(a, FileReply)]
    assert [r.request_id for r in replies] == [rid2]


def test_not_registered_answer_to_a_read_resubscribes_too() -> None:
    core = make()
    subscribe(core)
    rid, _ = core.read_file(ReadFile(agent_id="A1", task_id="t1"))
    actions = core.handle(Error(code="not_registered", message="?", in_reply_to=rid), "", 1.0)
    assert isinstance(actions[0], FileReply) and actions[0].request_id == rid
    assert isinstance(sent(actions)[0], Subscribe)


# ----------------------------------------------------------------------------- stopping


def test_teardown_and_abort() -> None:
    core = make()
    subscribe(core)
    (send,) = core.teardown()
    assert isinstance(send, Send) and send.message == Teardown(framework_id="F1")
    assert core.stopped and core.tick(100.0) == []
    assert core.handle(update(), "", 100.0) == []
    other = make()
    subscribe(other)
    assert other.abort() == [] and other.stopped
    assert other.teardown() == []  # already stopped: nothing more is said


# ----------------------------------------------------------------------------- offers


def offer(offer_id: str) -> Offer:
    return Offer(offer_id=offer_id, framework_id="F1", agent_id="A1", hostname="h", role="*",
                 resources="cpus:1")


def test_a_resent_offer_gets_the_answer_it_had_not_a_second_callback() -> None:
    """Issue 9, violation 4: a decline lost with a dying leader left the offer held."""
    core = make()
    subscribe(core)
    o1, o2, o3 = offer("o1"), offer("o2"), offer("o3")
    assert calls(core.handle(Offers(offers=[o1, o2, o3]), "", 0.1)) == ["resource_offers"]
    (decline,) = core.request(Decline(framework_id="F1", offer_ids=["o1"], refuse_seconds=5))
    assert isinstance(decline, Send)
    # The leader dies before committing the decline; we subscribe to the next one,
    # which sends every outstanding offer again (same ids).
    core.connected(1.0)
    subscribe(core, now=1.1)
    again = core.handle(Offers(offers=[o1, o2, o3]), "", 1.2)
    assert calls(again) == []  # o2 and o3 are still with the scheduler; o1 was answered
    (resent,) = [a for a in again if isinstance(a, Send)]
    assert resent == decline  # same request, same request id
    # An offer the scheduler has not seen (made but never delivered) is handed over.
    assert core.handle(Offers(offers=[offer("o4")]), "", 1.3) == [
        Call("resource_offers", ([offer("o4")],))]


def test_a_decline_while_not_subscribed_is_answered_when_the_offer_returns() -> None:
    core = make()
    subscribe(core)
    core.handle(Offers(offers=[offer("o1")]), "", 0.1)
    core.connected(1.0)  # the connection drops
    decline = Decline(framework_id="F1", offer_ids=["o1"])
    assert core.request(decline) == []
    subscribe(core, now=1.1)
    (resent,) = core.handle(Offers(offers=[offer("o1")]), "", 1.2)
    assert isinstance(resent, Send) and resent.message == decline and resent.request_id


def test_a_resent_offer_whose_launch_was_already_answered_is_declined() -> None:
    """A late launch would run a task the scheduler was told is gone."""
    core = make()
    subscribe(core)
    core.handle(Offers(offers=[offer("o1")]), "", 0.1)
    task = TaskInfo(task_id="t1", agent_id="A1", resources="cpus:1")
    core.request(Accept(framework_id="F1", offer_ids=["o1"], tasks=[task]))
    # The accept is lost; reconciling, the scheduler hears the task is unknown (LOST).
    core.handle(StatusUpdate(status=TaskStatus(task_id="t1", framework_id="F1", agent_id="",
                                               state="TASK_LOST", uuid="", timestamp=0.3)),
                "", 0.3)
    (answer,) = core.handle(Offers(offers=[offer("o1")]), "", 0.4)
    assert isinstance(answer, Send) and isinstance(answer.message, Decline)
    assert answer.message.offer_ids == ["o1"]
    # Still unconfirmed, an accept goes again as it was (the master applies it once).
    core.handle(Offers(offers=[offer("o2")]), "", 0.5)
    (accept2,) = core.request(Accept(framework_id="F1", offer_ids=["o2"], tasks=[
        TaskInfo(task_id="t2", agent_id="A1", resources="cpus:1")]))
    assert core.handle(Offers(offers=[offer("o2")]), "", 0.6) == [accept2]


def test_kills_are_repeated_until_their_task_ends() -> None:
    core = make()
    subscribe(core, interval=100.0)
    (kill,) = core.request(Kill(framework_id="F1", task_id="t1"))
    assert sent(core.tick(1.0)) == []
    due = core.next_wakeup(1.0)
    assert 1.0 + KILL_RETRY <= due <= 1.0 + 2 * KILL_RETRY  # never sooner than 5 s
    assert sent(core.tick(due - 0.01)) == []
    assert sent(core.tick(due)) == [kill.message]  # type: ignore[union-attr]
    again = core.next_wakeup(due)
    assert due + 2 * KILL_RETRY <= again <= due + 4 * KILL_RETRY  # the wait doubled
    core.handle(StatusUpdate(status=TaskStatus(task_id="t1", framework_id="F1", agent_id="A1",
                                               state="TASK_KILLED", uuid="u1",
                                               timestamp=7.0)), "", due + 0.1)
    assert [m for m in sent(core.tick(20.0)) if isinstance(m, Kill)] == []


def test_a_killed_task_is_taken_out_of_a_launch_that_may_be_sent_again() -> None:
    """Found by the simulator: the accept was lost, the scheduler killed one of its
    tasks (told TASK_LOST: unknown), then the repeated accept launched it anyway."""
    core = make()
    subscribe(core)
    core.handle(Offers(offers=[offer("o1")]), "", 0.1)
    tasks = [TaskInfo(task_id=t, agent_id="A1", resources="cpus:0.5") for t in ("t1", "t2")]
    (accept,) = core.request(Accept(framework_id="F1", offer_ids=["o1"], tasks=tasks))
    core.request(Kill(framework_id="F1", task_id="t2"))
    (again,) = core.handle(Offers(offers=[offer("o1")]), "", 0.5)
    assert isinstance(again, Send) and again.request_id == accept.request_id  # type: ignore[union-attr]
    assert [t.task_id for t in again.message.tasks] == ["t1"]  # type: ignore[attr-defined]
    core.request(Kill(framework_id="F1", task_id="t1"))
    (last,) = core.handle(Offers(offers=[offer("o1")]), "", 0.6)
    assert isinstance(last, Send) and last.message.tasks == []  # type: ignore[attr-defined]


def test_an_explicitly_reconciled_task_is_taken_out_of_a_launch_sent_again() -> None:
    """Found by the simulator (seed 7906): the master answered a reconciliation with
    TASK_LOST (unknown), then a repeated launch, crossing that answer, started it."""
    core = make()
    subscribe(core)
    core.handle(Offers(offers=[offer("o1")]), "", 0.1)
    task = TaskInfo(task_id="t1", agent_id="A1", resources="cpus:0.5")
    core.request(Accept(framework_id="F1", offer_ids=["o1"], tasks=[task]))
    core.request(Reconcile(framework_id="F1", tasks=[ReconcileTask(task_id="t1")]))
    (again,) = core.handle(Offers(offers=[offer("o1")]), "", 0.5)
    assert isinstance(again, Send) and again.message.tasks == []  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- issue 10


def launch_refused(code: str) -> tuple[DriverCore, Send, list[Action]]:
    """A launch on two offers, answered by an error with ``code``."""
    core = make()
    subscribe(core)
    core.handle(Offers(offers=[offer("o1"), offer("o2")]), "", 0.1)
    tasks = [TaskInfo(task_id=t, agent_id="A1", resources="cpus:0.5", command="true")
             for t in ("t1", "t2")]
    (accept,) = core.request(Accept(framework_id="F1", offer_ids=["o1", "o2"], tasks=tasks))
    assert isinstance(accept, Send)
    refused = core.handle(Error(code=code, message="no", in_reply_to=accept.request_id), "",
                          0.5)
    return core, accept, refused


def test_a_refused_accept_names_its_code_request_id_offers_and_tasks() -> None:
    """Issue 10, item 1: error(driver, message) said none of this."""
    core, accept, actions = launch_refused("invalid")
    assert actions == [Call("refused", (Refusal(
        code="invalid", message="no", request_id=accept.request_id, request="accept",
        offer_ids=("o1", "o2"), task_ids=("t1", "t2")),))]
    assert not core.stopped
    # A refusal is final: the accept is not sent again after a resubscription.
    core.connected(1.0)
    assert [m for m in sent(subscribe(core, now=1.1)) if isinstance(m, Accept)] == []
    # The same request refused again (a resend crossing the refusal) is reported once.
    again = Error(code="invalid", message="no", in_reply_to=accept.request_id)
    assert core.handle(again, "", 1.2) == []


def test_an_accept_the_master_could_not_read_gives_back_its_offers_and_drops_its_tasks() -> None:
    """Issue 10, item 1: a bad_field refusal changed nothing at the master, so its
    offers stayed held for good and its tasks never got an update."""
    core, _, actions = launch_refused("bad_field")
    assert calls(actions) == ["refused", "status_update", "status_update"]
    (decline,) = sent(actions)
    assert decline == Decline(framework_id="F1", offer_ids=["o1", "o2"], refuse_seconds=0.0)
    drops = [a.args[0] for a in actions if isinstance(a, Call) and a.name == "status_update"]
    assert [(d.task_id, d.state, d.uuid, d.agent_id) for d in drops] == [
        ("t1", "TASK_DROPPED", "", "A1"), ("t2", "TASK_DROPPED", "", "A1")]
    # Offered again (the master still had it): declined again, never launched late.
    (answer,) = core.handle(Offers(offers=[offer("o1")]), "", 1.0)
    assert isinstance(answer, Send) and answer.message == decline
    # The cleanup decline refused in turn is reported but starts no loop of declines.
    more = core.handle(Error(code="bad_field", message="?", in_reply_to=answer.request_id),
                       "", 1.1)
    assert calls(more) == ["refused"] and sent(more) == []


def test_an_error_for_an_unknown_request_is_a_bare_refusal() -> None:
    core = make()
    subscribe(core)
    actions = core.handle(Error(code="unexpected", message="huh"), "", 1.0)
    assert actions == [Call("refused", (Refusal("unexpected", "huh", ""),))]


def make_roles(roles: list[str], suppressed: list[str] | None = None) -> DriverCore:
    counter = itertools.count()
    info = FrameworkInfo(name="fw", roles=roles, suppressed_roles=suppressed or [])
    return DriverCore(info, lambda: f"r{next(counter)}")


def subscription(actions: list[Action]) -> Subscribe:
    (msg,) = [m for m in sent(actions) if isinstance(m, Subscribe)]
    return msg


def test_suppression_is_carried_by_every_subscription() -> None:
    """Issue 10, item 4: a framework may subscribe suppressed, and stays suppressed
    across reconnections (the master hears it again with each Subscribe)."""
    core = make_roles(["a", "b"], suppressed=["b"])
    assert subscription(core.connected(0.0)).framework.suppressed_roles == ["b"]
    subscribe(core)
    core.request(Suppress(framework_id="F1", roles=["a"]))
    assert core.suppressed_roles == ["a", "b"]
    assert subscription(core.connected(5.0)).framework.suppressed_roles == ["a", "b"]
    subscribe(core, now=5.1)
    core.request(Revive(framework_id="F1", roles=["b"]))
    assert subscription(core.connected(9.0)).framework.suppressed_roles == ["a"]
    core.request(Suppress(framework_id="F1", roles=["zzz"]))  # not ours: ignored
    core.request(Suppress(framework_id="F1"))  # all roles
    assert core.suppressed_roles == ["a", "b"]


def test_a_revive_asked_while_not_subscribed_is_sent_once_subscribed() -> None:
    core = make_roles(["a", "b"], suppressed=["a", "b"])
    subscribe(core)
    core.connected(3.0)
    assert core.request(Revive(framework_id="F1", roles=["a"])) == []
    assert core.request(Revive(framework_id="F1", roles=["b"])) == []
    actions = subscribe(core, now=3.5)
    assert [m for m in sent(actions) if isinstance(m, Revive)] == [
        Revive(framework_id="F1", roles=["a", "b"])]
    assert core.suppressed_roles == []
    core.connected(4.0)
    assert not [m for m in sent(subscribe(core, now=4.1)) if isinstance(m, Revive)]


def test_an_unknown_framework_id_is_reported_to_the_scheduler() -> None:
    """Issue 10, item 5: the master registered a new framework under our old id."""
    core = make(framework_id="OLD")
    core.connected(0.0)
    (call,) = core.handle(Subscribed(framework_id="OLD", heartbeat_interval=1.0,
                                     missed_heartbeats=3, unknown_id=True), "", 0.1)
    assert call == Call("registered", ("OLD", {"framework_id": "OLD", "reregistered": False,
                                               "unknown_id": True}))
    assert core.master_info["unknown_id"] is True


def test_a_launch_refused_twice_reports_its_tasks_dropped_once() -> None:
    """Found by tools/chaos.py (seed 14): an accept sent again across a failover was
    refused twice, and the master's TASK_DROPPED of each refusal reached the scheduler:
    15 tasks with their terminal state delivered twice."""
    core, accept, _ = launch_refused("invalid")
    assert isinstance(accept.message, Accept)

    def dropped(task_id: str) -> StatusUpdate:
        return StatusUpdate(status=TaskStatus(
            task_id=task_id, framework_id="F1", agent_id="A1", state="TASK_DROPPED",
            uuid="", timestamp=0.0, source="master", reason="REASON_INVALID_OFFERS",
            message="accept refused: offer not valid"))

    first = [a for t in ("t1", "t2") for a in core.handle(dropped(t), "", 0.6)]
    assert calls(first) == ["status_update", "status_update"]
    again = Error(code="invalid", message="no", in_reply_to=accept.request_id)
    repeated = core.handle(again, "", 1.2)
    for t in ("t1", "t2"):
        repeated += core.handle(dropped(t), "", 1.3)
    assert repeated == []
    # Launched again under the same id, it is reported dropped again if refused again.
    core.handle(Offers(offers=[offer("o3")]), "", 2.0)
    core.request(Accept(framework_id="F1", offer_ids=["o3"], tasks=[TaskInfo(
        task_id="t1", agent_id="A1", resources="cpus:0.5", command="true")]))
    assert calls(core.handle(dropped("t1"), "", 2.1)) == ["status_update"]
    assert core.handle(dropped("t2"), "", 2.1) == []


def test_a_launch_the_master_could_not_read_twice_is_dropped_once() -> None:
    core, _, actions = launch_refused("bad_field")
    assert calls(actions).count("status_update") == 2
    # what the master says of those tasks later, if it ever says DROPPED, is not news
    late = StatusUpdate(status=TaskStatus(
        task_id="t1", framework_id="F1", agent_id="A1", state="TASK_DROPPED", uuid="",
        timestamp=0.0, source="master", reason="REASON_INVALID_OFFERS", message="late"))
    assert core.handle(late, "", 1.0) == []
