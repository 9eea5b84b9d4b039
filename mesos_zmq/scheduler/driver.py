"""The framework SDK: a ``Scheduler`` to subclass and the ``SchedulerDriver`` shell.

The driver owns one background thread and one DEALER socket; all protocol rules live
in :class:`~mesos_zmq.scheduler.core.DriverCore`, and this module only moves bytes,
reads the clock and calls the scheduler.

Every public method is thread-safe. Called from a callback (the driver thread) it
acts at once; called from another thread it queues the request and wakes the loop
through a pipe that the loop polls next to the socket, so requests go out without
polling delays. Callbacks (and :meth:`SchedulerDriver.call_later` timers) always run
in the driver thread, one at a time; an exception in a callback is logged and does
not stop the driver. Requests are checked in the caller's thread before they are
queued: a mistake raises :class:`~mesos_zmq.scheduler.validation.InvalidRequestError`
where it was made rather than coming back later as a refusal.

docs/sdk.md is the framework developer's guide to all this.
"""

from __future__ import annotations

import collections
import enum
import functools
import getpass
import heapq
import itertools
import math
import os
import random
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import structlog
import zmq

from mesos_zmq.auth.keys import ClientKeys, client_keys
from mesos_zmq.detector import LeaderDetector, NoLeader, parse_master_url
from mesos_zmq.errors import AuthError, ConfigError
from mesos_zmq.master.validation import MAX_RECONCILE
from mesos_zmq.protocol import (
    Accept,
    Decline,
    FrameworkInfo,
    Kill,
    Message,
    Offer,
    Operation,
    ReadFile,
    Reconcile,
    ReconcileTask,
    Revive,
    Suppress,
    TaskInfo,
    TaskStatus,
    encode,
)
from mesos_zmq.scheduler.core import (
    Abort,
    Actions,
    Call,
    DriverCore,
    FileReply,
    Reconnect,
    Refusal,
    Send,
)
from mesos_zmq.scheduler.validation import (
    InvalidRequestError,
    offer_id_list,
    operation_list,
    reconcile_list,
    refuse_seconds_ok,
    role_list,
    task_id_ok,
    task_list,
)
from mesos_zmq.transport import ClientSocket

log = structlog.get_logger()

#: how long a final Teardown may take to leave before the socket is closed anyway
TEARDOWN_LINGER_MS = 1000
#: upper bound on one poll, so a clock jump cannot stall the timers for long
_MAX_POLL_SECONDS = 0.2
#: how long start() waits for ZooKeeper to name a leading master
LEADER_WAIT = 30.0
#: the decline filter of the default ``resource_offers`` (a scheduler that does not
#: override it wants no offers; a minute keeps them from coming back every second)
DEFAULT_DECLINE_SECONDS = 60.0


class DriverStatus(enum.Enum):
    """The driver's lifecycle, with Mesos's names."""

    NOT_STARTED = "DRIVER_NOT_STARTED"
    RUNNING = "DRIVER_RUNNING"
    ABORTED = "DRIVER_ABORTED"
    STOPPED = "DRIVER_STOPPED"


class Scheduler:
    """Override what you need; every callback runs in the driver thread.

    The names are this SDK's (snake_case); pymesos-style names (``resourceOffers``,
    ``statusUpdate``...) are never called, and the driver warns about them at start.
    """

    def registered(
        self, driver: SchedulerDriver, framework_id: str, master_info: dict[str, Any]
    ) -> None:
        """First subscription succeeded; ``framework_id`` is yours from now on."""

    def reregistered(self, driver: SchedulerDriver, master_info: dict[str, Any]) -> None:
        """Subscribed again after a disconnection or a master restart."""

    def disconnected(self, driver: SchedulerDriver) -> None:
        """The master went silent; the driver is reconnecting (requests are dropped)."""

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """Launch tasks on offers, or decline them (unanswered offers stay yours).

        The default declines them all for ``DEFAULT_DECLINE_SECONDS``: a scheduler
        that does not take offers must not hold resources others could use.
        """
        if offers:
            driver.decline_offer([o.offer_id for o in offers],
                                 refuse_seconds=DEFAULT_DECLINE_SECONDS)

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        """An offer is no longer valid (its agent was lost, for example)."""

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """A task changed state; delivered once per update."""

    def refused(self, driver: SchedulerDriver, refusal: Refusal) -> None:
        """The master refused one request (``refusal`` says which, and why).

        The driver goes on. No offer of a refused accept or decline is held any more,
        and each task of a refused launch is also reported ``TASK_DROPPED``. The
        default logs a warning.
        """
        log.warning("request refused by the master", code=refusal.code,
                    message=refusal.message, request=refusal.request,
                    request_id=refusal.request_id, offer_ids=list(refusal.offer_ids),
                    task_ids=list(refusal.task_ids))

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """A fatal error: the driver aborts after this returns.

        Only for ``framework_removed`` and a refused subscription (the master will
        never take this framework as configured); refusals of single requests go to
        :meth:`refused`.
        """


#: pymesos callback names, and this SDK's name for each (None: no such callback here)
PYMESOS_CALLBACKS: dict[str, str | None] = {
    "resourceOffers": "resource_offers",
    "statusUpdate": "status_update",
    "offerRescinded": "offer_rescinded",
    "frameworkMessage": None,
    "slaveLost": None,
    "agentLost": None,
    "executorLost": None,
    "inverseOffers": None,
    "inverseOfferRescinded": None,
}


def misnamed_callbacks(scheduler: Scheduler) -> list[tuple[str, str | None]]:
    """Methods of ``scheduler`` with pymesos names, which the driver never calls.

    Each is ``(name, this SDK's name or None)``. A method is not reported when the
    scheduler also defines the right name (an alias is fine).
    """
    found: list[tuple[str, str | None]] = []
    cls = type(scheduler)
    defined = {name for klass in cls.__mro__ if klass not in (Scheduler, object)
               for name in vars(klass)}
    for name in sorted(defined & PYMESOS_CALLBACKS.keys()):
        right = PYMESOS_CALLBACKS[name]
        if right is not None and getattr(cls, right) is not getattr(Scheduler, right):
            continue
        found.append((name, right))
    return found


class TimerHandle:
    """A call scheduled by :meth:`SchedulerDriver.call_later`; ``cancel()`` stops it."""

    __slots__ = ("cancelled", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        """The call will not run (a no-op if it has run already)."""
        self.cancelled = True


#: receives the answer to :meth:`SchedulerDriver.read_file`: FileData or Error
FileCallback = Callable[[Message], None]


def _login_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container without passwd)
        return ""


class SchedulerDriver:
    """Connects a :class:`Scheduler` to a master at ``tcp://host:port``."""

    def __init__(
        self,
        scheduler: Scheduler,
        framework: FrameworkInfo,
        master: str,
        *,
        implicit_acknowledgements: bool = True,
        keys: ClientKeys | None = None,
    ) -> None:
        """``keys``: this framework's CurveZMQ key pair and the masters' pinned public
        key; by default read from MESOS_ZMQ_KEY and MESOS_ZMQ_MASTER_KEY (none: a
        master without keys)."""
        text = master.strip()
        url = parse_master_url(text)  # ConfigError for anything but tcp:// and zk://
        for role in framework.suppressed_roles:
            if role not in (framework.roles or ["*"]):
                raise ConfigError(f"suppressed role {role!r} is not one of the framework's "
                                  f"roles ({', '.join(framework.roles)})")
        if not framework.user:
            # As Mesos's drivers do: tasks run as the user who runs the scheduler,
            # unless the framework (or a task) names another.
            framework = replace(framework, user=_login_user())
        self.scheduler = scheduler
        try:
            self._keys = keys if keys is not None else client_keys()
        except AuthError as exc:
            raise ConfigError(str(exc)) from None
        self._url = url
        self._detector: LeaderDetector | None = None
        self.master = url.address if url.kind == "tcp" else str(url)
        self._name = framework.name
        # The retry back-offs' jitter: from the system, so that frameworks differ.
        self._core = DriverCore(framework, _request_id, implicit_acknowledgements,
                                rng=random.Random())
        self._status = DriverStatus.NOT_STARTED
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._queue: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pipe_closed = False
        self._file_callbacks: dict[str, FileCallback] = {}
        self._stop_requested = False
        self._final: Actions = []
        self._linger_ms = 0
        self._done = threading.Event()
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._client: ClientSocket | None = None
        #: encoded messages for the master, sent at the end of the loop's turn in as few
        #: frames as batches allow (the acknowledgements of a turn's updates: one frame)
        self._outbox: list[bytes] = []
        self._socket_changed = False
        #: call_later timers: (due, sequence, handle), touched only in the driver thread
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._timer_seq = itertools.count()

    # ----------------------------------------------------------------- lifecycle
    @property
    def framework_id(self) -> str:
        """The id the master assigned (or the one given to fail over); empty before."""
        return self._core.framework_id

    @property
    def status(self) -> DriverStatus:
        return self._status

    @property
    def master_info(self) -> dict[str, Any]:
        """What the master said at the last subscription: ``framework_id``,
        ``reregistered`` and ``unknown_id`` (True when the master did not know the id
        we failed over with and registered a new framework under it). Empty before."""
        return dict(self._core.master_info)

    @property
    def suppressed_roles(self) -> list[str]:
        """The roles offers are suppressed for (restored on every re-subscription)."""
        return self._core.suppressed_roles

    @property
    def _log(self) -> Any:
        return log.bind(framework=self._name, framework_id=self._core.framework_id)

    def start(self) -> DriverStatus:
        """Connect and start the driver thread; a no-op unless NOT_STARTED."""
        with self._state_lock:
            if self._status is not DriverStatus.NOT_STARTED:
                return self._status
            self._warn_misnamed_callbacks()
            if self._url.kind == "zk":
                try:
                    self._detector = LeaderDetector(self._url)
                    self.master = self._detector.wait(LEADER_WAIT)
                    # Move to a new leader the moment ZooKeeper names it, not on the
                    # loop's next timer turn (up to _MAX_POLL_SECONDS later).
                    self._detector.add_listener(self._wake)
                except NoLeader as exc:
                    if self._detector is not None:
                        self._detector.close()
                    self._close_pipe()
                    self._status = DriverStatus.ABORTED
                    self._done.set()
                    raise ConfigError(f"cannot find the leading master: {exc}") from None
            # Open the socket here so that a bad address fails in the caller's thread.
            self._context = zmq.Context()
            try:
                self._client = ClientSocket(self._context, self.master, self._keys)
            except zmq.ZMQError as exc:
                self._context.term()
                self._close_pipe()
                self._status = DriverStatus.ABORTED
                self._done.set()
                raise ConfigError(f"cannot connect to {self.master}: {exc.strerror}") from None
            self._status = DriverStatus.RUNNING
            self._thread = threading.Thread(
                target=self._run_loop, name="scheduler-driver", daemon=True
            )
            self._thread.start()
            return self._status

    def _warn_misnamed_callbacks(self) -> None:
        """pymesos-style names are never called: say so loudly, once, at start."""
        for name, right in misnamed_callbacks(self.scheduler):
            if right is None:
                text = (f"{type(self.scheduler).__name__}.{name} is a pymesos callback that "
                        "this SDK never calls (it has no executors or agent-loss "
                        "callback; agent loss shows as TASK_LOST/TASK_UNREACHABLE updates)")
            else:
                text = (f"{type(self.scheduler).__name__}.{name} is never called: this SDK "
                        f"calls {right}(driver, ...); rename the method")
            self._log.warning("scheduler callback misnamed", method=name, right_name=right)
            warnings.warn(text, UserWarning, stacklevel=3)

    def stop(self, failover: bool = False) -> DriverStatus:
        """Stop the driver.

        Without ``failover`` the master is told to tear the framework down (its tasks
        are killed); the Teardown gets a moment to leave before the socket closes.
        With ``failover`` the driver just disconnects, so a new driver can take over
        the same framework id within its ``failover_timeout``.
        """
        with self._state_lock:
            if self._status is DriverStatus.NOT_STARTED:
                self._status = DriverStatus.STOPPED
                self._close_pipe()
                self._done.set()
                return self._status
            if self._status is not DriverStatus.RUNNING:
                return self._status
            self._status = DriverStatus.STOPPED

        def do() -> None:
            if failover:
                self._final.extend(self._core.abort())
            else:
                self._final.extend(self._core.teardown())
                self._linger_ms = TEARDOWN_LINGER_MS
            self._stop_requested = True

        self._submit(do)
        return DriverStatus.STOPPED

    def abort(self) -> DriverStatus:
        """Stop at once without a Teardown; the status becomes ABORTED."""
        with self._state_lock:
            if self._status is DriverStatus.NOT_STARTED:
                self._close_pipe()
                self._done.set()
            elif self._status is not DriverStatus.RUNNING:
                return self._status
            self._status = DriverStatus.ABORTED

        def do() -> None:
            self._final.extend(self._core.abort())
            self._stop_requested = True

        self._submit(do)
        return DriverStatus.ABORTED

    def join(self, timeout: float | None = None) -> DriverStatus:
        """Wait until the driver thread has ended (returns at once inside a callback)."""
        if self._status is DriverStatus.NOT_STARTED:
            return self._status
        if threading.current_thread() is not self._thread:
            self._done.wait(timeout)
        return self._status

    def run(self) -> DriverStatus:
        """``start()`` then ``join()``."""
        self.start()
        return self.join()

    # ----------------------------------------------------------------- requests
    def launch_tasks(
        self, offer_ids: str | Iterable[str], tasks: TaskInfo | Iterable[TaskInfo],
        refuse_seconds: float = 5.0, operations: Iterable[Operation] = (),
    ) -> None:
        """Accept offers (all from one agent) to launch ``tasks``; the rest is declined.

        ``offer_ids`` is one offer id or a list of them. ``operations``
        (RESERVE/UNRESERVE) are applied to the offers first, so tasks may use the
        resources they reserve. Raises :class:`InvalidRequestError` here, in the
        caller, for what the master would refuse anyway (bad resources or task ids,
        mistyped fields, repeated ids, a bad ``refuse_seconds``).
        """
        ids = offer_id_list(offer_ids, "launch_tasks")
        items = task_list(tasks, "launch_tasks")
        ops = operation_list(operations, "launch_tasks")
        refuse_seconds = refuse_seconds_ok(refuse_seconds, "launch_tasks")
        self._request(
            lambda: Accept(
                framework_id=self.framework_id,
                offer_ids=ids,
                tasks=items,
                refuse_seconds=refuse_seconds,
                operations=ops,
            )
        )

    accept_offers = launch_tasks

    def decline_offer(self, offer_id: str | Iterable[str], refuse_seconds: float = 5.0) -> None:
        """Give offers back (one id or a list); their agents are not re-offered to us
        for ``refuse_seconds`` (0: no filter). See docs/sdk.md on filters."""
        ids = offer_id_list(offer_id, "decline_offer")
        refuse_seconds = refuse_seconds_ok(refuse_seconds, "decline_offer")
        self._request(
            lambda: Decline(
                framework_id=self.framework_id, offer_ids=ids, refuse_seconds=refuse_seconds
            )
        )

    decline_offers = decline_offer

    def kill_task(self, task_id: str, agent_id: str = "") -> None:
        """Ask for a task to be killed; the outcome arrives as a status update."""
        task_id_ok(task_id, "kill_task")
        self._request(
            lambda: Kill(framework_id=self.framework_id, task_id=task_id, agent_id=agent_id)
        )

    def reconcile_tasks(self, tasks: Iterable[ReconcileTask] = ()) -> None:
        """Ask for the latest state of ``tasks`` (all of ours when empty); more than the
        master takes in one message (MAX_RECONCILE) go in several."""
        items = reconcile_list(tasks, "reconcile_tasks")
        for start in range(0, max(len(items), 1), MAX_RECONCILE):
            self._request(functools.partial(self._reconcile, items[start:start + MAX_RECONCILE]))

    def _reconcile(self, tasks: list[ReconcileTask]) -> Reconcile:
        return Reconcile(framework_id=self.framework_id, tasks=tasks)

    def revive_offers(self, roles: str | Iterable[str] | None = None) -> None:
        """Clear every decline filter and resume offers (for ``roles``, or all).

        Asked while not subscribed, it takes effect at the next subscription.
        """
        names = role_list(roles, self._core.framework.roles or ["*"], "revive_offers")
        self._request(lambda: Revive(framework_id=self.framework_id, roles=names))

    def suppress_offers(self, roles: str | Iterable[str] | None = None) -> None:
        """Stop receiving offers (for ``roles``, or all) until revived.

        Suppression is kept by the SDK and sent with every subscription, so it holds
        across reconnections and master failovers (see docs/sdk.md).
        """
        names = role_list(roles, self._core.framework.roles or ["*"], "suppress_offers")
        self._request(lambda: Suppress(framework_id=self.framework_id, roles=names))

    def acknowledge_status_update(self, status: TaskStatus) -> None:
        """Acknowledge an update (needed only with ``implicit_acknowledgements=False``)."""
        self._submit(lambda: self._execute(self._core.acknowledge(status)))

    def read_file(
        self,
        agent_id: str,
        task_id: str,
        path: str,
        offset: int,
        length: int,
        callback: FileCallback,
    ) -> None:
        """Read part of a sandbox file through the master.

        ``callback`` runs once in the driver thread with the ``FileData`` reply or an
        ``Error`` (also a local ``not_registered`` one when the read could not be sent
        or the connection was replaced before the answer came).
        """

        def do() -> None:
            msg = ReadFile(
                agent_id=agent_id,
                task_id=task_id,
                path=path,
                offset=offset,
                length=length,
                framework_id=self.framework_id,
            )
            request_id, actions = self._core.read_file(msg)
            self._file_callbacks[request_id] = callback
            self._execute(actions)

        self._submit(do)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the driver thread (where callbacks run), e.g. periodic work."""
        self._submit(fn)

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        """Run ``fn`` in the driver thread after ``delay`` seconds (a timer).

        Like a callback, ``fn`` may use the driver and the scheduler's state without
        locks; an exception in it is logged. Timers run only while the driver runs
        (one set before ``start`` counts from when it was set). ``cancel()`` on the
        returned handle stops it.
        """
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not (
                math.isfinite(delay) and delay >= 0):
            raise InvalidRequestError(f"call_later: delay must be a finite number of seconds "
                                      f">= 0, got {delay!r}")
        if not callable(fn):
            raise InvalidRequestError(f"call_later: fn must be callable, got {fn!r}")
        handle = TimerHandle(fn)
        due = time.monotonic() + float(delay)
        self._submit(lambda: heapq.heappush(self._timers, (due, next(self._timer_seq), handle)))
        return handle

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now and not self._stop_requested:
            _, _, handle = heapq.heappop(self._timers)
            if handle.cancelled:
                continue
            handle.cancelled = True  # it has run: cancel() is now a no-op
            try:
                handle.fn()
            except Exception:
                self._log.exception("call_later function failed")

    def _request(self, build: Callable[[], Message]) -> None:
        def do() -> None:
            msg = build()
            actions = self._core.request(msg)
            if not actions and self._core.keeps(msg):
                self._log.info("request kept until subscribed to the master",
                               request=msg.TYPE)
            elif not actions and isinstance(msg, Accept | Decline):
                self._log.info("answer kept until the master offers this again",
                               request=msg.TYPE)
            elif not actions:
                self._log.warning("request dropped: not subscribed to the master",
                                  request=msg.TYPE)
            self._execute(actions)

        self._submit(do)

    # ----------------------------------------------------------------- loop
    def _submit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the driver thread: now if we are in it, else queue and wake it."""
        if threading.current_thread() is self._thread:
            fn()
            return
        with self._state_lock:
            if self._pipe_closed:
                self._log.debug("request ignored: the driver is not running")
                return
            self._queue.append(fn)
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass  # the pipe is full, so the loop is already awake

    def _wake(self) -> None:
        """Wake the loop (from any thread) so it looks at the detector at once."""
        with self._state_lock:
            if self._pipe_closed:
                return
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass  # the pipe is full, so the loop is already awake

    def _close_pipe(self) -> None:
        """Close the wake pipe (caller holds ``_state_lock``); later submits are ignored."""
        if not self._pipe_closed:
            self._pipe_closed = True
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _run_loop(self) -> None:
        assert self._client is not None and self._context is not None
        client = self._client
        try:
            self._execute(self._core.connected(time.monotonic()))
            poller = self._poller()
            while not self._stop_requested:
                if self._socket_changed:
                    poller = self._poller()
                now = time.monotonic()
                wake = self._core.next_wakeup(now)
                if self._timers:
                    wake = min(wake, self._timers[0][0])
                wait = min(max(wake - now, 0.0), _MAX_POLL_SECONDS)
                # What the last turn (or anything before the loop) had to say goes
                # before waiting: the subscription itself, first of all.
                self._send_outbox()
                events = dict(poller.poll(int(wait * 1000) + 1))
                if self._wake_r in events:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                self._run_queue()
                self._follow_leader(client)
                if not self._stop_requested and client.socket in events:
                    self._drain()
                if not self._stop_requested and not self._core.subscribed:
                    self._check_handshake(client)
                if not self._stop_requested:
                    self._execute(self._core.tick(time.monotonic()))
                if not self._stop_requested:
                    self._run_timers()
            self._execute(self._final)
            self._send_outbox()
            client.close(linger_ms=self._linger_ms)
        except Exception:
            self._log.exception("scheduler driver crashed")
            self._status = DriverStatus.ABORTED
            client.close()
        finally:
            self._context.term()
            if self._detector is not None:
                self._detector.close()
            with self._state_lock:
                self._close_pipe()
                leftover = len(self._queue)
                self._queue.clear()
            if leftover:
                self._log.debug("driver stopped with requests still queued", count=leftover)
            self._done.set()

    def _check_handshake(self, client: ClientSocket) -> None:
        """A master that refuses our key never answers: say so and stop, as Mesos's
        driver does when authentication fails, instead of subscribing forever."""
        problem = client.auth_problem()
        if problem:
            self._execute([Call("error", (problem,)), Abort(problem)])

    def _follow_leader(self, client: ClientSocket) -> None:
        """ZooKeeper named a new leader: move to it and subscribe there."""
        if self._detector is None:
            return
        address = self._detector.changed()
        if address is not None and address != client.address:
            self._log.info("new leading master", address=address)
            self._send_outbox()  # the old connection's, as if sent at once
            client.reconnect(address)
            self._socket_changed = True
            self._execute(self._core.connected(time.monotonic()))

    def _poller(self) -> zmq.Poller:
        assert self._client is not None
        self._socket_changed = False
        poller = zmq.Poller()
        poller.register(self._client.socket, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        return poller

    def _run_queue(self) -> None:
        while self._queue and not self._stop_requested:
            fn = self._queue.popleft()
            try:
                fn()
            except Exception:
                self._log.exception("queued driver request failed")

    def _drain(self) -> None:
        assert self._client is not None
        for envelope in self._client.receive_all():
            now = time.monotonic()
            self._core.wall_offset = time.time() - now
            self._execute(self._core.handle(envelope.message, envelope.request_id, now))
            if self._stop_requested or self._socket_changed:
                return  # the rest belongs to a socket or a driver that is gone

    def _send_outbox(self) -> None:
        if self._outbox and self._client is not None:
            frames, self._outbox = self._outbox, []
            self._client.send_all(frames)

    def _execute(self, actions: Actions) -> None:
        for action in actions:
            if isinstance(action, Send):
                if self._client is not None:
                    self._outbox.append(encode(action.message, action.request_id))
            elif isinstance(action, Call):
                if action.name in ("registered", "reregistered") and \
                        self._core.master_info.get("unknown_id"):
                    self._log.warning(
                        "the master did not know this framework id: it registered a new "
                        "framework under it (its earlier tasks are unknown to the master; "
                        "reconcile them)")
                try:
                    getattr(self.scheduler, action.name)(self, *action.args)
                except Exception:
                    self._log.exception("scheduler callback failed", callback=action.name)
            elif isinstance(action, Reconnect):
                if self._client is not None:
                    self._log.warning("master silent: reconnecting", master=self.master)
                    self._send_outbox()  # the old connection's, as if sent at once
                    self._client.reconnect(
                        self._detector.current() if self._detector is not None else None)
                    self._socket_changed = True
                    self._execute(self._core.connected(time.monotonic()))
            elif isinstance(action, Abort):
                self._log.error("driver aborted", reason=action.reason)
                self._status = DriverStatus.ABORTED
                self._stop_requested = True
            elif isinstance(action, FileReply):
                callback = self._file_callbacks.pop(action.request_id, None)
                if callback is not None:
                    try:
                        callback(action.message)
                    except Exception:
                        self._log.exception("read_file callback failed")


def _request_id() -> str:
    """A unique request id for the envelope (the master may use it for idempotency)."""
    return uuid.uuid4().hex
