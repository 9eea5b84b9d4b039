"""The scheduler driver core: what a framework's connection to the master does.

Theory of operation
-------------------
The core is pure: the shell (:mod:`mesos_zmq.scheduler.driver`) feeds it the
master's messages, the user's requests and the time, and carries out the ordered
list of :data:`Action` it returns: send a message, call a scheduler callback,
reconnect the socket, or abort.

* Subscription: ``Subscribe`` is sent on connect and re-sent every second until
  ``Subscribed`` arrives; later subscriptions carry the assigned framework id so the
  master treats them as a failover of the same framework.
* Liveness: heartbeats both ways; a master silent for ``interval * missed`` seconds
  is abandoned (``disconnected`` callback, new socket, resubscribe).
* Exactly-once updates: an update whose uuid was already delivered is acknowledged
  again but not handed to the scheduler a second time. With implicit
  acknowledgements the ack is queued right after the ``status_update`` callback, so
  a scheduler that crashes inside the callback never acknowledges what it did not
  handle.
* Requests made while not subscribed are dropped (as Mesos's driver does); the
  caller learns the outcome through status updates and reconciliation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from mesos_zmq.heartbeat import HeartbeatMonitor
from mesos_zmq.protocol import (
    Acknowledge,
    Error,
    FileData,
    FrameworkInfo,
    Heartbeat,
    Message,
    Offers,
    Rescind,
    StatusUpdate,
    Subscribe,
    Subscribed,
    TaskStatus,
    Teardown,
)

SUBSCRIBE_RETRY = 1.0
SEEN_UUIDS_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Send:
    message: Message
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class Call:
    """Invoke ``Scheduler.<name>(driver, *args)``."""

    name: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Drop the socket and connect afresh, then call ``connected``."""


@dataclass(frozen=True, slots=True)
class Abort:
    reason: str


@dataclass(frozen=True, slots=True)
class FileReply:
    """Route a ReadFile answer (FileData or Error) to the waiting caller."""

    request_id: str
    message: Message


Action = Send | Call | Reconnect | Abort | FileReply


class DriverCore:
    """Subscription, heartbeats, dedup and acks for one framework."""

    def __init__(
        self,
        framework: FrameworkInfo,
        new_id: Callable[[], str],
        implicit_acknowledgements: bool = True,
    ) -> None:
        self.framework = framework
        self.framework_id = framework.framework_id
        self._new_id = new_id
        self.implicit_acks = implicit_acknowledgements
        self.subscribed = False
        self.stopped = False
        self._ever_subscribed = bool(framework.framework_id)
        self._first_registration = not framework.framework_id
        self._subscribe_sent = 0.0
        self._subscribe_rid = ""
        self.monitor = HeartbeatMonitor(1.0, 5)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._reads: set[str] = set()

    # ----------------------------------------------------------------- connection
    def connected(self, now: float) -> list[Action]:
        self.subscribed = False
        self.monitor.reset(now)
        return self._subscribe(now)

    def _subscribe(self, now: float) -> list[Action]:
        info = replace(self.framework, framework_id=self.framework_id)
        self._subscribe_sent = now
        self._subscribe_rid = self._new_id()
        self.monitor.sent(now)
        return [Send(Subscribe(framework=info), self._subscribe_rid)]

    def tick(self, now: float) -> list[Action]:
        if self.stopped:
            return []
        actions: list[Action] = []
        if self.monitor.expired(now):
            actions.append(Call("disconnected"))
            actions.append(Reconnect())
            self.subscribed = False
            return actions
        if not self.subscribed:
            if now - self._subscribe_sent >= SUBSCRIBE_RETRY:
                actions.extend(self._subscribe(now))
        elif self.monitor.send_due(now):
            self.monitor.sent(now)
            actions.append(Send(Heartbeat()))
        return actions

    # ----------------------------------------------------------------- inbound
    def handle(self, msg: Message, request_id: str, now: float) -> list[Action]:
        self.monitor.received(now)
        if self.stopped:
            return []
        if isinstance(msg, Subscribed):
            return self._on_subscribed(msg)
        if isinstance(msg, Error):
            return self._on_error(msg, now)
        if isinstance(msg, FileData):
            if request_id in self._reads:
                self._reads.discard(request_id)
                return [FileReply(request_id, msg)]
            return []
        if not self.subscribed:
            return []  # stale traffic for a subscription we no longer have
        if isinstance(msg, Offers):
            return [Call("resource_offers", (list(msg.offers),))]
        if isinstance(msg, Rescind):
            return [Call("offer_rescinded", (msg.offer_id,))]
        if isinstance(msg, StatusUpdate):
            return self._on_update(msg.status)
        return []  # heartbeats and anything newer than us

    def _on_subscribed(self, msg: Subscribed) -> list[Action]:
        if self.subscribed and msg.framework_id == self.framework_id:
            return []  # answer to a retried Subscribe
        self.framework_id = msg.framework_id
        self.subscribed = True
        self.monitor = HeartbeatMonitor(msg.heartbeat_interval, msg.missed_heartbeats)
        self.monitor.reset(self._subscribe_sent)
        self.monitor.received(self._subscribe_sent)
        info = {"framework_id": msg.framework_id, "reregistered": msg.reregistered}
        if self._first_registration:
            self._first_registration = False
            self._ever_subscribed = True
            return [Call("registered", (msg.framework_id, info))]
        return [Call("reregistered", (info,))]

    def _on_error(self, msg: Error, now: float) -> list[Action]:
        if msg.in_reply_to in self._reads:
            self._reads.discard(msg.in_reply_to)
            return [FileReply(msg.in_reply_to, msg)]
        if msg.code == "not_registered":
            self.subscribed = False
            return self._subscribe(now)
        if msg.code == "framework_removed" or (
            msg.in_reply_to and msg.in_reply_to == self._subscribe_rid
        ):
            self.stopped = True
            return [Call("error", (msg.message,)), Abort(msg.message)]
        return [Call("error", (msg.message,))]

    def _on_update(self, status: TaskStatus) -> list[Action]:
        if status.uuid and status.uuid in self._seen:
            return [self._ack(status)]  # a retry: the earlier ack was lost
        actions: list[Action] = [Call("status_update", (status,))]
        if status.uuid:
            self._seen[status.uuid] = None
            while len(self._seen) > SEEN_UUIDS_LIMIT:
                self._seen.popitem(last=False)
            if self.implicit_acks:
                actions.append(self._ack(status))
        return actions

    def _ack(self, status: TaskStatus) -> Send:
        return Send(
            Acknowledge(
                framework_id=self.framework_id,
                agent_id=status.agent_id,
                task_id=status.task_id,
                uuid=status.uuid,
            ),
            self._new_id(),
        )

    # ----------------------------------------------------------------- outbound
    def request(self, msg: Message) -> list[Action]:
        """A user request; dropped (empty result) when not subscribed."""
        if not self.subscribed or self.stopped:
            return []
        return [Send(msg, self._new_id())]

    def acknowledge(self, status: TaskStatus) -> list[Action]:
        if not status.uuid or not self.subscribed:
            return []
        return [self._ack(status)]

    def read_file(self, msg: Message) -> tuple[str, list[Action]]:
        request_id = self._new_id()
        if not self.subscribed or self.stopped:
            return request_id, []
        self._reads.add(request_id)
        return request_id, [Send(msg, request_id)]

    def forget_read(self, request_id: str) -> None:
        self._reads.discard(request_id)

    def teardown(self) -> list[Action]:
        actions: list[Action] = []
        if self.subscribed and self.framework_id:
            actions.append(Send(Teardown(framework_id=self.framework_id), self._new_id()))
        self.stopped = True
        self.subscribed = False
        return actions
