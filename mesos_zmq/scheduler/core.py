"""The scheduler driver core: what a framework's connection to the master does.

Theory of operation
-------------------
The core is pure: the shell (:mod:`mesos_zmq.scheduler.driver`) feeds it the
master's messages, the user's requests and the time, and carries out the ordered
list of :data:`Action` it returns: send a message, call a scheduler callback,
reconnect the socket, hand a file read its answer, or abort.

* Subscription: ``Subscribe`` is sent at once on connect and re-sent until
  ``Subscribed`` arrives, after random waits that grow as Mesos's scheduler driver
  does it (issue 13; :mod:`mesos_zmq.backoff`): the n-th wait is uniform in
  ``[0, f * 2**n]`` (``f`` = ``subscribe_backoff``, Mesos's
  ``registration_backoff_factor``, 2 s), the bound capped at a minute, so frameworks
  that lost their master together do not come back in step. Once the master has
  assigned a framework id every later subscription carries it, so the master treats
  it as a failover of the same framework rather than a new one. The first
  ``Subscribed`` of a driver calls ``registered``, later ones ``reregistered``.
* Liveness: heartbeats both ways. Until the master has told us its interval we
  assume 1 s and 5 misses. A master silent for ``interval * missed`` seconds while we
  are subscribed is abandoned: ``disconnected``, a new socket, resubscribe at once
  (the back-off starts again). While subscribing, the connection is abandoned only
  when a Subscribe is due and the master said nothing since the previous one, sent at
  least that long ago: the due Subscribe goes on the new socket and the back-off goes
  on. ``Error(not_registered)`` means the master does not know this connection (it
  restarted), so we resubscribe at once on the same socket.
* Fatal errors and refusals: ``framework_removed``, or any error answering one of our
  ``Subscribe`` messages, means the master will never accept us as configured, and
  ``framework_failed_over`` that another scheduler process subscribed with our
  framework id (a failover, as Mesos's "Framework failed over"): the ``error``
  callback runs and the driver aborts, so that only one scheduler acts for the
  framework. Any other error refuses one request
  and the driver keeps going: the ``refused`` callback gets a :class:`Refusal` naming
  the code, the request id and what the core remembers sending under it (its kind,
  offer ids and task ids). No offer of a refused accept or decline stays held: the
  master returns the offers of a request it refused as ``invalid`` to the pool, and
  for a request it could not even read (``bad_field``, ``oversized``, ``internal``...)
  the core declines them itself and reports each task of a refused launch
  ``TASK_DROPPED``, as the master does for an ``invalid`` one.
* Suppression is state, not a message: the core keeps the roles the scheduler has
  suppressed in the ``suppressed_roles`` of the FrameworkInfo it subscribes with, so
  every (re)subscription, to this master or a new leader, restores it; a revive asked
  while not subscribed is sent once subscribed.
* Exactly-once updates: an update whose ``(task_id, uuid)`` was already delivered is
  acknowledged again (the earlier ack was lost) but not handed to the scheduler a
  second time. With implicit acknowledgements the ack is queued right *after* the
  ``status_update`` callback, so a scheduler that crashes inside the callback never
  acknowledges what it did not handle. Updates with an empty uuid (reconciliation
  answers, refused launches) need no ack and are not deduplicated, but for one case:
  a launch sent again across a failover may be refused twice, each time with the
  master's ``TASK_DROPPED`` for its tasks, and the scheduler hears one per launch.
* Offers survive a master failover, and the new leader sends each outstanding one
  again (same id) when we re-subscribe. The core remembers what it did with every
  offer: one the scheduler still holds is not handed over twice; one it already
  declined or accepted gets that same request again (same request id: a decline is
  idempotent, an accept is applied once). So a decline lost with a dying leader is
  repeated rather than leaving the offer held for good, and a decline made while
  not subscribed is not lost either. A launch whose outcome the scheduler has already
  heard is never made late: its offer is declined instead.
* Kills are kept until their task is reported ended, sent again after each
  re-subscription and meanwhile after waits that grow: the n-th is drawn from
  ``[k * 2**n, k * 2**(n+1)]`` (``k`` = ``kill_retry``, 5 s), capped at a minute; a
  re-subscription sends the kill again and starts its back-off afresh.
* Other requests made while not subscribed are dropped (as Mesos's driver does); the
  caller learns the outcome through status updates and reconciliation. Suppress and
  revive are not lost: the next Subscribe carries the suppressed roles. A dropped or
  orphaned file read is answered locally with ``Error(not_registered)`` so that its
  caller never waits for a reply that cannot come.
"""

from __future__ import annotations

import random
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from mesos_zmq.backoff import Backoff
from mesos_zmq.bounded import remember
from mesos_zmq.heartbeat import HeartbeatMonitor, settings_problem
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
    Offers,
    ReadFile,
    Reconcile,
    Rescind,
    Revive,
    StatusUpdate,
    Subscribe,
    Subscribed,
    Suppress,
    TaskStatus,
    Teardown,
)
from mesos_zmq.tasks import TERMINAL as TERMINAL_STATES
from mesos_zmq.tasks import TaskState

log = structlog.get_logger()

#: how many times an unconfirmed accept is sent again after re-subscriptions
MAX_ACCEPT_RESENDS = 3
#: accepts remembered for re-sending at most
UNCONFIRMED_LIMIT = 10_000
#: bound of the random wait after the first unanswered Subscribe (doubling per attempt);
#: Mesos's scheduler registration_backoff_factor
SUBSCRIBE_BACKOFF = 2.0
#: the bound stops doubling here (Mesos's REGISTRATION_RETRY_INTERVAL_MAX)
SUBSCRIBE_BACKOFF_MAX = 60.0
#: heartbeat settings assumed until the master announces its own
DEFAULT_HEARTBEAT_INTERVAL = 1.0
DEFAULT_MISSED_HEARTBEATS = 5
#: how many delivered (task_id, uuid) pairs are remembered for deduplication
SEEN_UUIDS_LIMIT = 100_000
#: Subscribe request ids remembered per attempt (a retry storm must not grow memory)
_SUBSCRIBE_IDS_LIMIT = 64
#: offers remembered (held by the scheduler, or answered) to recognise a re-sent one
OFFERS_LIMIT = 10_000
#: first wait before a kill whose task has not been reported ended is repeated
#: (then doubling, with jitter, up to KILL_RETRY_MAX)
KILL_RETRY = 5.0
KILL_RETRY_MAX = 60.0
#: requests remembered by request id, to say what a refusal refers to
SENT_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` to the master with ``request_id`` in the envelope."""

    message: Message
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class Call:
    """Invoke ``Scheduler.<name>(driver, *args)``."""

    name: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Drop the socket and connect afresh, then call :meth:`DriverCore.connected`."""


@dataclass(frozen=True, slots=True)
class Abort:
    """Stop the driver for good (status ABORTED); nothing more will be sent."""

    reason: str


@dataclass(frozen=True, slots=True)
class FileReply:
    """Route a ReadFile answer (FileData or Error) to the caller waiting on it."""

    request_id: str
    message: Message


Action = Send | Call | Reconnect | Abort | FileReply
#: the driver core's output batch (see :mod:`mesos_zmq.batch`): carried out in order
Actions = list[Action]


@dataclass(frozen=True, slots=True)
class Refusal:
    """The master refused one request; the driver goes on (see docs/sdk.md).

    ``code`` is the master's error code (``invalid`` for a request it read and refused;
    ``bad_field``, ``oversized``... for one it could not read). ``request`` is the kind
    of message refused (``accept``, ``decline``, ``kill``...), ``offer_ids`` and
    ``task_ids`` what it named; all three are empty when the core no longer remembers
    the request id (or the error named none). None of ``offer_ids`` is held any more.
    """

    code: str
    message: str
    request_id: str
    request: str = ""
    offer_ids: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Sent:
    """What a request id was used for, kept to describe a refusal of it."""

    kind: str
    offer_ids: tuple[str, ...] = ()
    #: (task id, agent id) of the tasks of a launch
    tasks: tuple[tuple[str, str], ...] = ()
    #: sent by the core itself to give back offers of a refused request
    cleanup: bool = False


class DriverCore:
    """Subscription, heartbeats, dedup, acks and file-read routing for one framework."""

    def __init__(
        self,
        framework: FrameworkInfo,
        new_id: Callable[[], str],
        implicit_acknowledgements: bool = True,
        seen_limit: int = SEEN_UUIDS_LIMIT,
        *,
        rng: random.Random | None = None,
        subscribe_backoff: float = SUBSCRIBE_BACKOFF,
        subscribe_backoff_max: float = SUBSCRIBE_BACKOFF_MAX,
        kill_retry: float = KILL_RETRY,
        kill_retry_max: float = KILL_RETRY_MAX,
        instance: str = "",
    ) -> None:
        """``rng``: where the jitter of the retry back-offs comes from (seed it for a
        replay; by default one seeded by the system, so that drivers differ);
        ``instance``: this driver's name in its subscriptions (by default a new uuid)."""
        self.framework = framework
        self.framework_id = framework.framework_id
        self._new_id = new_id
        self.implicit_acks = implicit_acknowledgements
        self.subscribed = False
        self.stopped = False
        self._registered_once = False
        self._rng = rng if rng is not None else random.Random()
        self.subscribe_backoff = Backoff(subscribe_backoff,
                                         max(subscribe_backoff_max, subscribe_backoff))
        self.kill_backoff = Backoff(kill_retry, max(kill_retry_max, kill_retry))
        #: when the last Subscribe went on this connection (None: none yet)
        self._subscribe_sent: float | None = None
        #: when the next Subscribe goes while unsubscribed
        self._subscribe_due = float("-inf")
        #: Subscribes sent since the back-off started
        self._subscribe_attempts = 0
        #: this driver's Subscribes, numbered: the master ignores one numbered below one
        #: it already took from this ``instance`` (it came late, on a connection left
        #: behind: see mesos_zmq.master.instances)
        self.instance = instance or uuid.uuid4().hex
        self._attempts_sent = 0
        #: set when this core asked for the reconnection: the back-off goes on
        self._resume_subscribing = False
        self._subscribe_ids: list[str] = []
        self.monitor = HeartbeatMonitor(DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MISSED_HEARTBEATS)
        # (task_id, uuid) -> whether it has been acknowledged
        self._seen: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._seen_limit = seen_limit
        self._reads: set[str] = set()
        #: accepts whose effect we have not seen yet: request id -> (accept, resends).
        #: They are sent again, with the same request id, after a re-subscription (the
        #: master may have died before committing them); the master ignores a request
        #: id it has already applied, so each accept has exactly one effect.
        self._unconfirmed: OrderedDict[str, tuple[Accept | Kill, int]] = OrderedDict()
        #: kill request id -> (when it is next sent again, repeats since its back-off
        #: started)
        self._kill_due: dict[str, tuple[float, int]] = {}
        #: offers handed to the scheduler and not yet answered
        self._held_offers: OrderedDict[str, None] = OrderedDict()
        #: offer id -> (request id, the accept or decline that answered it)
        self._answered: OrderedDict[str, tuple[str, Accept | Decline]] = OrderedDict()
        #: request id -> what was sent under it (to describe a refusal)
        self._sent: OrderedDict[str, _Sent] = OrderedDict()
        #: request ids already reported refused (a repeated request is refused again)
        self._refused: OrderedDict[str, None] = OrderedDict()
        #: tasks reported TASK_DROPPED for a refused launch and not launched again since:
        #: a launch sent again across a failover can be refused twice, each time with
        #: the master's TASK_DROPPED for its tasks; the scheduler hears it once
        self._dropped: OrderedDict[str, None] = OrderedDict()
        #: roles a revive asked for while not subscribed ([] = all), sent once subscribed
        self._revive_owed: list[str] | None = None
        #: what the last Subscribed said (framework_id, reregistered, unknown_id)
        self.master_info: dict[str, Any] = {}
        #: wall clock minus ``now``'s clock, kept by the shell: the timestamp of an update
        #: made here is wall-clock UTC like the master's and the agents'
        self.wall_offset = 0.0
        #: inbound message type -> (needs a subscription, handler)
        self._inbound: dict[type[Message],
                            tuple[bool, Callable[[Any, str, float], Actions]]] = {
            Subscribed: (False, lambda m, rid, now: self._on_subscribed(m, now)),
            Error: (False, lambda m, rid, now: self._on_error(m, now)),
            FileData: (False, self._on_file_data),
            Offers: (True, lambda m, rid, now: self._on_offers(m)),
            Rescind: (True, self._on_rescind),
            StatusUpdate: (True, lambda m, rid, now: self._on_update(m.status)),
        }

    # ----------------------------------------------------------------- connection
    def connected(self, now: float) -> Actions:
        """A fresh socket is up: forget the old connection's state and subscribe (at
        once; the back-off starts again unless this core asked for the socket because
        its subscription went unanswered)."""
        self.subscribed = False
        self._subscribe_ids = []
        self._subscribe_sent = None
        if not self._resume_subscribing:
            self._subscribe_attempts = 0
        self._resume_subscribing = False
        self.monitor = HeartbeatMonitor(DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MISSED_HEARTBEATS)
        self.monitor.reset(now)
        actions = self._fail_reads("connection to the master was replaced")
        actions.extend(self._subscribe(now))
        return actions

    def _subscribe(self, now: float) -> Actions:
        """Send a Subscribe, and draw the wait before the next one if it goes unanswered."""
        info = replace(self.framework, framework_id=self.framework_id)
        request_id = self._new_id()
        self._subscribe_sent = now
        self._subscribe_due = now + self.subscribe_backoff.full_jitter(
            self._subscribe_attempts, self._rng)
        self._subscribe_attempts += 1
        self._subscribe_ids.append(request_id)
        del self._subscribe_ids[:-_SUBSCRIBE_IDS_LIMIT]
        self.monitor.sent(now)
        self._attempts_sent += 1
        return [Send(Subscribe(framework=info, instance=self.instance,
                               attempt=self._attempts_sent), request_id)]

    def _fail_reads(self, why: str) -> Actions:
        """Answer reads whose reply can no longer arrive, so no caller waits forever."""
        actions: Actions = [
            FileReply(rid, Error(code="not_registered", message=why, in_reply_to=rid))
            for rid in sorted(self._reads)
        ]
        self._reads.clear()
        return actions

    def tick(self, now: float) -> Actions:
        """Timers: master liveness, Subscribe retries, our own heartbeats."""
        if self.stopped:
            return []
        if self.subscribed and self.monitor.expired(now):
            self.subscribed = False
            return [Call("disconnected"), Reconnect()]
        if not self.subscribed:
            if now < self._subscribe_due:
                return []
            if self._abandon_connection(now):
                self._resume_subscribing = True  # connected() sends the Subscribe due
                return [Reconnect()]
            return self._subscribe(now)
        actions = self._retry_kills(now)
        if self.monitor.send_due(now):
            self.monitor.sent(now)
            actions.append(Send(Heartbeat()))
        return actions

    def _abandon_connection(self, now: float) -> bool:
        """While subscribing: the master has said nothing since our last Subscribe on
        this connection, sent at least the monitor's timeout ago."""
        sent = self._subscribe_sent
        return (sent is not None and now - sent > self.monitor.timeout
                and self.monitor.expired(now))

    def _retry_kills(self, now: float) -> Actions:
        """Kills go again, after growing waits, until their task is reported ended.

        A kill (or the master's word to the agent) lost on a broken connection would
        otherwise leave the task running for good; repeating a kill is harmless.
        """
        actions: Actions = []
        for request_id in [r for r in self._kill_due if r not in self._unconfirmed]:
            del self._kill_due[request_id]
        for request_id, (request, _) in self._unconfirmed.items():
            if not isinstance(request, Kill):
                continue
            entry = self._kill_due.get(request_id)
            if entry is None:
                self._kill_due[request_id] = self._kill_timer(now, 0)
                continue
            due, repeats = entry
            if due <= now:
                self._kill_due[request_id] = self._kill_timer(now, repeats + 1)
                actions.append(Send(replace(request, framework_id=self.framework_id),
                                    request_id))
        return actions

    def _kill_timer(self, now: float, repeats: int) -> tuple[float, int]:
        """When a kill sent now goes again, after its ``repeats``-th repeat."""
        return now + self.kill_backoff.floored_jitter(repeats, self._rng), repeats

    def next_wakeup(self, now: float) -> float:
        """The time at which :meth:`tick` next has something to do (for the shell's poll)."""
        if self.stopped:
            return now + 3600.0
        if not self.subscribed:
            return self._subscribe_due
        expiry = self.monitor.last_received + self.monitor.timeout
        wake = min(expiry, self.monitor.last_sent + self.monitor.interval)
        if self._kill_due:
            wake = min(wake, *(due for due, _ in self._kill_due.values()))
        return wake

    # ----------------------------------------------------------------- inbound
    def handle(self, msg: Message, request_id: str, now: float) -> Actions:
        """One message from the master; any message at all proves it is alive.

        Dispatched by type, as the master and agent cores do; heartbeats and message
        types newer than this driver need no handler."""
        self.monitor.received(now)
        if self.stopped:
            return []
        entry = self._inbound.get(type(msg))
        if entry is None:
            return []
        needs_subscription, handler = entry
        if needs_subscription and not self.subscribed:
            return []  # traffic for a subscription we no longer have; it is retried
        return handler(msg, request_id, now)

    def _on_file_data(self, msg: FileData, request_id: str, now: float) -> Actions:
        if request_id in self._reads:
            self._reads.discard(request_id)
            return [FileReply(request_id, msg)]
        return []  # a reply we gave up on

    def _on_rescind(self, msg: Rescind, request_id: str, now: float) -> Actions:
        self._held_offers.pop(msg.offer_id, None)
        return [Call("offer_rescinded", (msg.offer_id,))]

    def _on_subscribed(self, msg: Subscribed, now: float) -> Actions:
        if self.subscribed and msg.framework_id == self.framework_id:
            return []  # the answer to a retried Subscribe
        problem = settings_problem(msg.heartbeat_interval, msg.missed_heartbeats)
        if problem is not None:
            # No monitor can be built from it; the subscription is retried.
            log.error("ignored a subscription answer", reason=problem)
            return []
        self.framework_id = msg.framework_id
        self.subscribed = True
        self._subscribe_ids = []
        self._subscribe_attempts = 0
        self.monitor = HeartbeatMonitor(msg.heartbeat_interval, msg.missed_heartbeats)
        self.monitor.reset(now)
        info: dict[str, Any] = {"framework_id": msg.framework_id,
                                "reregistered": msg.reregistered,
                                "unknown_id": msg.unknown_id}
        self.master_info = dict(info)
        if not self._registered_once:
            self._registered_once = True
            actions: Actions = [Call("registered", (msg.framework_id, info))]
        else:
            actions = [Call("reregistered", (info,))]
        if self._revive_owed is not None:
            revive = Revive(framework_id=self.framework_id, roles=self._revive_owed)
            self._revive_owed = None
            actions.append(self._send_new(revive))
        return actions + self._resend_unconfirmed()

    def _send_new(self, msg: Accept | Decline | Kill | Reconcile | Revive | Suppress,
                  cleanup: bool = False) -> Send:
        """Send a request under a fresh request id, remembered for its refusal."""
        request_id = self._new_id()
        self._remember(msg, request_id, cleanup)
        return Send(msg, request_id)

    def _remember(self, msg: Message, request_id: str, cleanup: bool = False) -> None:
        offer_ids: tuple[str, ...] = ()
        tasks: tuple[tuple[str, str], ...] = ()
        if isinstance(msg, Accept | Decline):
            offer_ids = tuple(msg.offer_ids)
        if isinstance(msg, Accept):
            tasks = tuple((t.task_id, t.agent_id) for t in msg.tasks)
        elif isinstance(msg, Kill):
            tasks = ((msg.task_id, msg.agent_id),)
        elif isinstance(msg, Reconcile):
            tasks = tuple((t.task_id, t.agent_id) for t in msg.tasks)
        self._sent[request_id] = _Sent(msg.TYPE, offer_ids, tasks, cleanup)
        while len(self._sent) > SENT_LIMIT:
            self._sent.popitem(last=False)

    def _on_offers(self, msg: Offers) -> Actions:
        """New offers go to the scheduler; re-sent ones get the answer they had."""
        fresh = []
        answers: Actions = []
        for offer in msg.offers:
            answered = self._answered.get(offer.offer_id)
            if answered is not None:
                answers.append(self._answer_again(offer.offer_id, *answered))
            elif offer.offer_id not in self._held_offers:
                self._held_offers[offer.offer_id] = None
                fresh.append(offer)
        while len(self._held_offers) > OFFERS_LIMIT:
            self._held_offers.popitem(last=False)
        actions: Actions = [Call("resource_offers", (fresh,))] if fresh else []
        return actions + answers

    def _answer_again(self, offer_id: str, request_id: str,
                      request: Accept | Decline) -> Action:
        """The answer for an offer the master sent again (so it never applied one).

        A launch whose fate we already know (one of its tasks was reported, or it was
        refused) must not happen late: the scheduler may have been told its tasks are
        gone. Such an offer is declined instead. Anything else goes again as it was,
        with its request id, so the master applies it at most once.
        """
        if isinstance(request, Accept) and request.tasks and request_id not in self._unconfirmed:
            decline = Decline(framework_id=self.framework_id, offer_ids=[offer_id],
                              refuse_seconds=request.refuse_seconds)
            send = self._send_new(decline)
            self._answer_offers(decline, send.request_id)
            return send
        return Send(replace(request, framework_id=self.framework_id), request_id)

    def _withdraw_launch(self, task_id: str) -> None:
        """A killed (or explicitly reconciled) task leaves the launches we may still
        send again.

        The master answers a kill of a task it does not know with TASK_LOST, so a
        launch of it sent again later (after a lost message or a failover) would run a
        task its scheduler was told is gone. If the first launch did land, the repeat
        carries the same request id and changes nothing; the kill deals with the task.
        """
        for request_id, (request, resends) in list(self._unconfirmed.items()):
            if not isinstance(request, Accept) or all(t.task_id != task_id
                                                       for t in request.tasks):
                continue
            rest = replace(request, tasks=[t for t in request.tasks if t.task_id != task_id])
            if rest.tasks:
                self._unconfirmed[request_id] = (rest, resends)
            else:
                del self._unconfirmed[request_id]
            for offer_id in rest.offer_ids:
                if self._answered.get(offer_id, ("", None))[0] == request_id:
                    self._answered[offer_id] = (request_id, rest)

    def _answer_offers(self, msg: Accept | Decline, request_id: str) -> None:
        for offer_id in msg.offer_ids:
            self._held_offers.pop(offer_id, None)
            self._answered[offer_id] = (request_id, msg)
            self._answered.move_to_end(offer_id)
        while len(self._answered) > OFFERS_LIMIT:
            self._answered.popitem(last=False)

    def _resend_unconfirmed(self) -> Actions:
        actions: Actions = []
        for request_id, (request, resends) in list(self._unconfirmed.items()):
            if resends >= MAX_ACCEPT_RESENDS:
                del self._unconfirmed[request_id]
                continue
            self._unconfirmed[request_id] = (request, resends + 1)
            self._kill_due.pop(request_id, None)  # a kill's back-off starts again
            actions.append(Send(replace(request, framework_id=self.framework_id), request_id))
        return actions

    def _confirm(self, task_id: str = "", request_id: str = "", terminal: bool = False) -> None:
        """An accept is confirmed by any update of its tasks; a kill by a terminal one."""
        if request_id:
            self._unconfirmed.pop(request_id, None)
        if task_id:
            for rid, (request, _) in list(self._unconfirmed.items()):
                if isinstance(request, Kill):
                    if terminal and request.task_id == task_id:
                        del self._unconfirmed[rid]
                elif any(t.task_id == task_id for t in request.tasks):
                    del self._unconfirmed[rid]

    def _on_error(self, msg: Error, now: float) -> Actions:
        actions: Actions = []
        if msg.in_reply_to and msg.code != "not_registered":
            self._confirm(request_id=msg.in_reply_to)  # refused: nothing to retry
        if msg.in_reply_to and msg.in_reply_to in self._reads:
            self._reads.discard(msg.in_reply_to)
            actions.append(FileReply(msg.in_reply_to, msg))
            if msg.code != "not_registered":
                return actions
        if msg.code == "not_registered":
            # The master does not know this connection (it restarted): subscribe again
            # now; while a subscription is already under way its retry timer suffices.
            if self.subscribed:
                self.subscribed = False
                actions.extend(self._fail_reads("the master lost this subscription"))
                actions.extend(self._subscribe(now))
            return actions
        if msg.code == "stale":
            # An attempt of ours that came late on a connection we left: the master
            # ignored it and kept the later one (never read here but by mistake).
            return actions
        fatal = msg.code in ("framework_removed", "framework_failed_over") or (
            bool(msg.in_reply_to) and msg.in_reply_to in self._subscribe_ids
        )
        if not fatal:
            return actions + self._on_refusal(msg, now)
        actions.append(Call("error", (msg.message,)))
        self.stopped = True
        self.subscribed = False
        actions.extend(self._fail_reads("the driver aborted"))
        actions.append(Abort(f"{msg.code}: {msg.message}"))
        return actions

    def _on_refusal(self, msg: Error, now: float) -> Actions:
        """One request refused: tell the scheduler what it was, and hold nothing of it.

        ``invalid``: the master read the request and refused it; it has returned the
        offers and reported each task of a launch ``TASK_DROPPED`` itself. Any other
        code: the master could not read it, so the offers are still its; they are
        declined here (no filter) and the tasks reported ``TASK_DROPPED`` locally,
        so that a refused launch always ends the same way for the scheduler.
        """
        rid = msg.in_reply_to
        if rid and rid in self._refused:
            return []  # the same request sent again (after a resubscription), refused again
        sent = self._sent.pop(rid, None) if rid else None
        if rid:
            remember(self._refused, rid, None, SENT_LIMIT)
        if sent is None:
            return [Call("refused", (Refusal(msg.code, msg.message, rid),))]
        task_ids = tuple(t for t, _ in sent.tasks)
        actions: Actions = [Call("refused", (Refusal(
            msg.code, msg.message, rid, sent.kind, sent.offer_ids, task_ids),))]
        if msg.code == "invalid" or sent.cleanup:
            return actions
        if sent.offer_ids:
            decline = Decline(framework_id=self.framework_id, offer_ids=list(sent.offer_ids),
                              refuse_seconds=0.0)
            send = self._send_new(decline, cleanup=True)
            self._answer_offers(decline, send.request_id)
            if self.subscribed:
                actions.append(send)
        if sent.kind == Accept.TYPE:
            for task_id, agent_id in sent.tasks:
                self._confirm(task_id=task_id, terminal=True)  # a kill of it is done too
                if not self._first_drop(task_id):
                    continue
                actions.append(Call("status_update", (TaskStatus(
                    task_id=task_id, framework_id=self.framework_id, agent_id=agent_id,
                    state=TaskState.DROPPED.value, uuid="", timestamp=now + self.wall_offset,
                    source="master",
                    reason="REASON_TASK_INVALID",
                    message=f"launch refused by the master ({msg.code}): {msg.message}"),)))
        return actions

    def _on_update(self, status: TaskStatus) -> Actions:
        if self._unconfirmed:
            self._confirm(task_id=status.task_id, terminal=status.state in TERMINAL_STATES)
        if not status.uuid:
            if status.state == TaskState.DROPPED.value and not self._first_drop(status.task_id):
                return []  # the same refused launch, refused again
            return [Call("status_update", (status,))]  # informational: no ack, no dedup
        key = (status.task_id, status.uuid)
        acked = self._seen.get(key)
        if acked is not None:
            # A retry: the earlier ack was lost. With explicit acks, re-ack only what
            # the scheduler itself has acknowledged already.
            return [self._ack(status)] if acked else []
        self._seen[key] = self.implicit_acks
        while len(self._seen) > self._seen_limit:
            self._seen.popitem(last=False)
        actions: Actions = [Call("status_update", (status,))]
        if self.implicit_acks:
            actions.append(self._ack(status))
        return actions

    def _first_drop(self, task_id: str) -> bool:
        """Whether a TASK_DROPPED of a refused launch of ``task_id`` is the first since
        the task was last launched (and remember that it came)."""
        if task_id in self._dropped:
            return False
        remember(self._dropped, task_id, None, SENT_LIMIT)
        return True

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
    def request(self, msg: Message) -> Actions:
        """A user request; dropped (empty result) when not subscribed.

        Accepts that launch tasks are the exception: they are kept until their effect
        shows (a status update for one of their tasks, or an error) and sent again
        after a re-subscription, so an accept caught by a master failover still lands.
        """
        if self.stopped:
            return []
        request_id = self._new_id()
        self._remember(msg, request_id)
        if isinstance(msg, Suppress | Revive):
            self._track_suppression(msg)
        if isinstance(msg, Accept | Decline):
            # Remembered even when not subscribed: if a new leader offers it again,
            # this answer goes back (see _on_offers).
            self._answer_offers(msg, request_id)
        if isinstance(msg, Accept):
            for task in msg.tasks:
                self._dropped.pop(task.task_id, None)  # launched again: may be dropped again
        if isinstance(msg, Kill):
            self._withdraw_launch(msg.task_id)
        elif isinstance(msg, Reconcile):
            # The master's answer is final for these tasks: if it does not know one
            # (TASK_LOST), a repeated launch must not start it afterwards.
            for item in msg.tasks:
                self._withdraw_launch(item.task_id)
        if self.keeps(msg):
            assert isinstance(msg, Accept | Kill)
            self._unconfirmed[request_id] = (msg, 0)
            while len(self._unconfirmed) > UNCONFIRMED_LIMIT:
                self._unconfirmed.popitem(last=False)
            if not self.subscribed:
                return []  # kept: it goes out once subscribed
        if not self.subscribed:
            return []
        return [Send(msg, request_id)]

    def _track_suppression(self, msg: Suppress | Revive) -> None:
        """Suppression is carried by every Subscribe, so it survives any reconnection."""
        roles = list(self.framework.roles or ["*"])
        named = {r for r in (msg.roles or roles) if r in roles}
        current = set(self.framework.suppressed_roles)
        if isinstance(msg, Suppress):
            current |= named
        else:
            current -= named
            if not self.subscribed:
                # Revive also clears decline filters: say it again once subscribed.
                owed = self._revive_owed
                if owed is None:
                    self._revive_owed = list(msg.roles)
                elif owed and msg.roles:
                    self._revive_owed = sorted(set(owed) | set(msg.roles))
                else:
                    self._revive_owed = []  # one of them revives every role
        self.framework = replace(self.framework, suppressed_roles=sorted(current))

    @property
    def suppressed_roles(self) -> list[str]:
        """The roles the framework currently wants no offers for."""
        return list(self.framework.suppressed_roles)

    def keeps(self, msg: Message) -> bool:
        """True for requests kept until their effect shows: launches and kills."""
        return (isinstance(msg, Accept) and bool(msg.tasks)) or isinstance(msg, Kill)

    def acknowledge(self, status: TaskStatus) -> Actions:
        """An explicit acknowledgement; remembered so that a retried update is re-acked."""
        if not status.uuid:
            return []
        key = (status.task_id, status.uuid)
        if key in self._seen:
            self._seen[key] = True
        if not self.subscribed or self.stopped:
            return []  # the agent retries the update, and we ack that
        return [self._ack(status)]

    def read_file(self, msg: ReadFile) -> tuple[str, list[Action]]:
        """Send a ReadFile; its answer comes back as a :class:`FileReply` for the id."""
        request_id = self._new_id()
        if not self.subscribed or self.stopped:
            error = Error(
                code="not_registered",
                message="not subscribed to the master",
                in_reply_to=request_id,
            )
            return request_id, [FileReply(request_id, error)]
        self._reads.add(request_id)
        return request_id, [Send(msg, request_id)]

    def teardown(self) -> Actions:
        """Stop, telling the master to remove the framework and kill its tasks."""
        actions: Actions = []
        if self.subscribed and self.framework_id and not self.stopped:
            actions.append(Send(Teardown(framework_id=self.framework_id), self._new_id()))
        actions.extend(self.abort())
        return actions

    def abort(self) -> Actions:
        """Stop without telling the master (it keeps the framework for failover)."""
        self.stopped = True
        self.subscribed = False
        return self._fail_reads("the driver stopped")
