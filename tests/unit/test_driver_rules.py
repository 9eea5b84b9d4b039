"""Scheduler driver core rules: subscription, dedup, acks, liveness (no sockets)."""

from __future__ import annotations

import itertools
import random

from mesos_zmq.protocol import (
    Acknowledge,
    Error,
    FileData,
    FrameworkInfo,
    Heartbeat,
    Kill,
    Offer,
    Offers,
    ReadFile,
    StatusUpdate,
    Subscribe,
    Subscribed,
    TaskStatus,
    Teardown,
)
from mesos_zmq.scheduler.core import Abort, Call, DriverCore, FileReply, Reconnect, Send


def make() -> DriverCore:
    counter = itertools.count()
    return DriverCore(FrameworkInfo(name="fw"), lambda: f"r{next(counter)}",
                      rng=random.Random(0))


def subscribed(core: DriverCore, now: float = 0.0, reregistered: bool = False) -> list:
    core.connected(now)
    return core.handle(Subscribed(framework_id="F1", heartbeat_interval=1.0,
                                  missed_heartbeats=3, reregistered=reregistered), "", now)


def status(uuid: str = "u1", state: str = "TASK_RUNNING") -> TaskStatus:
    return TaskStatus(task_id="t1", framework_id="F1", agent_id="A1", state=state, uuid=uuid,
                      timestamp=0.0)


def test_subscribe_retried_then_registered_callback() -> None:
    core = make()
    (send,) = core.connected(0)
    assert isinstance(send, Send) and isinstance(send.message, Subscribe)
    due = core.next_wakeup(0)  # its back-off: within 2 s (test_driver_backoff.py)
    assert core.tick(due / 2) == []
    (retry,) = core.tick(due)
    assert isinstance(retry, Send) and isinstance(retry.message, Subscribe)
    (call,) = core.handle(Subscribed(framework_id="F1", heartbeat_interval=1.0,
                                     missed_heartbeats=3), "", due + 0.1)
    assert call == Call("registered", ("F1", {"framework_id": "F1", "reregistered": False,
                                              "unknown_id": False}))


def test_resubscription_carries_the_id_and_calls_reregistered() -> None:
    core = make()
    subscribed(core)
    (send,) = core.connected(5)
    assert isinstance(send, Send) and send.message.framework.framework_id == "F1"
    (call,) = core.handle(Subscribed(framework_id="F1", heartbeat_interval=1.0,
                                     missed_heartbeats=3, reregistered=True), "", 5)
    assert isinstance(call, Call) and call.name == "reregistered"


def test_update_delivered_once_then_acked_after_callback() -> None:
    core = make()
    subscribed(core)
    first = core.handle(StatusUpdate(status=status()), "", 1)
    assert isinstance(first[0], Call) and first[0].name == "status_update"
    assert isinstance(first[1], Send) and isinstance(first[1].message, Acknowledge)
    again = core.handle(StatusUpdate(status=status()), "", 2)
    assert len(again) == 1 and isinstance(again[0].message, Acknowledge)  # type: ignore[union-attr]


def test_informational_update_is_not_acked() -> None:
    core = make()
    subscribed(core)
    actions = core.handle(StatusUpdate(status=status(uuid="")), "", 1)
    assert [type(a) for a in actions] == [Call]


def test_offers_and_requests() -> None:
    core = make()
    assert core.request(Kill(framework_id="F1", task_id="t")) == []  # not subscribed: dropped
    subscribed(core)
    offer = Offer(offer_id="o", framework_id="F1", agent_id="A1", hostname="h", role="*",
                  resources="cpus:1")
    (call,) = core.handle(Offers(offers=[offer]), "", 1)
    assert call == Call("resource_offers", ([offer],))
    (send,) = core.request(Kill(framework_id="F1", task_id="t"))
    assert isinstance(send, Send) and send.request_id


def test_silent_master_means_disconnected_and_reconnect() -> None:
    core = make()
    subscribed(core)
    assert any(isinstance(a, Send) and isinstance(a.message, Heartbeat) for a in core.tick(1.0))
    actions = core.tick(3.5)
    assert Call("disconnected") in actions and Reconnect() in actions


def test_not_registered_resubscribes_and_removed_aborts() -> None:
    core = make()
    subscribed(core)
    (send,) = core.handle(Error(code="not_registered", message="?"), "", 1)
    assert isinstance(send, Send) and isinstance(send.message, Subscribe)
    actions = core.handle(Error(code="framework_removed", message="gone"), "", 2)
    assert Call("error", ("gone",)) in actions and isinstance(actions[-1], Abort)


def test_read_file_reply_is_routed() -> None:
    core = make()
    subscribed(core)
    rid, actions = core.read_file(ReadFile(agent_id="A1", task_id="t1"))
    assert len(actions) == 1
    data = FileData(task_id="t1", path="stdout", offset=0, data=b"x", size=1)
    assert core.handle(data, rid, 1) == [FileReply(rid, data)]
    rid2, _ = core.read_file(ReadFile(agent_id="A1", task_id="t1"))
    err = Error(code="invalid", message="no", in_reply_to=rid2)
    assert core.handle(err, "", 1) == [FileReply(rid2, err)]


def test_teardown_sends_teardown_and_stops() -> None:
    core = make()
    subscribed(core)
    (send,) = core.teardown()
    assert isinstance(send, Send) and isinstance(send.message, Teardown)
    assert core.stopped and core.tick(100) == []


def test_unconfirmed_accepts_are_resent_after_resubscribing_until_their_effect_shows() -> None:
    from mesos_zmq.protocol import Accept, TaskInfo

    core = make()
    subscribed(core)
    launch = Accept(framework_id="F1", offer_ids=["o1"], tasks=[
        TaskInfo(task_id="t1", agent_id="A1", resources="cpus:1", command="true")])
    (first,) = core.request(launch)
    assert isinstance(first, Send)
    # The master fails over before applying it: the accept goes again, same request id.
    core.connected(5)
    actions = core.handle(Subscribed(framework_id="F1", heartbeat_interval=1.0,
                                     missed_heartbeats=3, reregistered=True), "", 5)
    resent = [a for a in actions if isinstance(a, Send) and isinstance(a.message, Accept)]
    assert [a.request_id for a in resent] == [first.request_id]
    # Once an update for its task arrives it is confirmed and never sent again.
    core.handle(StatusUpdate(status=status()), "", 6)
    core.connected(7)
    actions = core.handle(Subscribed(framework_id="F1", heartbeat_interval=1.0,
                                     missed_heartbeats=3, reregistered=True), "", 7)
    assert not [a for a in actions if isinstance(a, Send) and isinstance(a.message, Accept)]


def test_an_accept_made_while_disconnected_waits_for_the_subscription() -> None:
    from mesos_zmq.protocol import Accept, TaskInfo

    core = make()
    subscribed(core)
    core.connected(5)  # reconnecting: not subscribed
    launch = Accept(framework_id="F1", offer_ids=["o1"], tasks=[
        TaskInfo(task_id="t9", agent_id="A1", resources="cpus:1", command="true")])
    assert core.request(launch) == [] and core.keeps(launch)
    actions = core.handle(Subscribed(framework_id="F1", heartbeat_interval=1.0,
                                     missed_heartbeats=3, reregistered=True), "", 6)
    assert [a.message for a in actions if isinstance(a, Send)] == [launch]


def test_kills_are_kept_and_resent_until_the_task_ends() -> None:
    core = make()
    subscribed(core)
    (sent,) = core.request(Kill(framework_id="F1", task_id="t1"))
    assert isinstance(sent, Send)
    core.connected(5)
    actions = core.handle(Subscribed(framework_id="F1", heartbeat_interval=1.0,
                                     missed_heartbeats=3, reregistered=True), "", 5)
    assert [a.request_id for a in actions if isinstance(a, Send)
            and isinstance(a.message, Kill)] == [sent.request_id]
    core.handle(StatusUpdate(status=status(uuid="u9", state="TASK_RUNNING")), "", 6)
    core.handle(StatusUpdate(status=status(uuid="u10", state="TASK_KILLED")), "", 6)
    core.connected(7)
    actions = core.handle(Subscribed(framework_id="F1", heartbeat_interval=1.0,
                                     missed_heartbeats=3, reregistered=True), "", 7)
    assert not [a for a in actions if isinstance(a, Send) and isinstance(a.message, Kill)]
