"""The framework SDK: a ``Scheduler`` to subclass and the ``SchedulerDriver`` shell.

The driver owns one background thread and one DEALER socket; all protocol rules live
in :class:`~mesos_zmq.scheduler.core.DriverCore`, and this module only moves bytes,
reads the clock and calls the scheduler.

Every public method is thread-safe. Called from a callback (the driver thread) it
acts at once; called from another thread it queues the request and wakes the loop
through a pipe that the loop polls next to the socket, so requests go out without
polling delays. Callbacks always run in the driver thread, one at a time; an
exception in a callback is logged and does not stop the driver.
"""

from __future__ import annotations

import collections
import enum
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import structlog
import zmq

from mesos_zmq.detector import LeaderDetector, NoLeader, parse_master_url
from mesos_zmq.errors import ConfigError
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
from mesos_zmq.scheduler.core import Abort, Action, Call, DriverCore, FileReply, Reconnect, Send
from mesos_zmq.transport import ClientSocket

log = structlog.get_logger()

#: how long a final Teardown may take to leave before the socket is closed anyway
TEARDOWN_LINGER_MS = 1000
#: upper bound on one poll, so a clock jump cannot stall the timers for long
_MAX_POLL_SECONDS = 0.2
#: how long start() waits for ZooKeeper to name a leading master
LEADER_WAIT = 30.0


class DriverStatus(enum.Enum):
    """The driver's lifecycle, with Mesos's names."""

    NOT_STARTED = "DRIVER_NOT_STARTED"
    RUNNING = "DRIVER_RUNNING"
    ABORTED = "DRIVER_ABORTED"
    STOPPED = "DRIVER_STOPPED"


class Scheduler:
    """Override what you need; every callback runs in the driver thread."""

    def registered(
        self, driver: SchedulerDriver, framework_id: str, master_info: dict[str, Any]
    ) -> None:
        """First subscription succeeded; ``framework_id`` is yours from now on."""

    def reregistered(self, driver: SchedulerDriver, master_info: dict[str, Any]) -> None:
        """Subscribed again after a disconnection or a master restart."""

    def disconnected(self, driver: SchedulerDriver) -> None:
        """The master went silent; the driver is reconnecting (requests are dropped)."""

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """Launch tasks on offers, or decline them (unanswered offers stay yours)."""

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        """An offer is no longer valid (its agent was lost, for example)."""

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """A task changed state; delivered once per update."""

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """The master refused something; after a fatal error the driver aborts."""


#: receives the answer to :meth:`SchedulerDriver.read_file`: FileData or Error
FileCallback = Callable[[Message], None]


class SchedulerDriver:
    """Connects a :class:`Scheduler` to a master at ``tcp://host:port``."""

    def __init__(
        self,
        scheduler: Scheduler,
        framework: FrameworkInfo,
        master: str,
        *,
        implicit_acknowledgements: bool = True,
    ) -> None:
        text = master.strip()
        url = parse_master_url(text)  # ConfigError for anything but tcp:// and zk://
        self.scheduler = scheduler
        self._url = url
        self._detector: LeaderDetector | None = None
        self.master = url.address if url.kind == "tcp" else str(url)
        self._name = framework.name
        self._core = DriverCore(framework, _request_id, implicit_acknowledgements)
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
        self._final: list[Action] = []
        self._linger_ms = 0
        self._done = threading.Event()
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._client: ClientSocket | None = None
        self._socket_changed = False

    # ----------------------------------------------------------------- lifecycle
    @property
    def framework_id(self) -> str:
        """The id the master assigned (or the one given to fail over); empty before."""
        return self._core.framework_id

    @property
    def status(self) -> DriverStatus:
        return self._status

    @property
    def _log(self) -> Any:
        return log.bind(framework=self._name, framework_id=self._core.framework_id)

    def start(self) -> DriverStatus:
        """Connect and start the driver thread; a no-op unless NOT_STARTED."""
        with self._state_lock:
            if self._status is not DriverStatus.NOT_STARTED:
                return self._status
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
                self._client = ClientSocket(self._context, self.master)
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
        self, offer_ids: Iterable[str], tasks: list[TaskInfo], refuse_seconds: float = 5.0,
        operations: Iterable[Operation] = (),
    ) -> None:
        """Accept offers (all from one agent) to launch ``tasks``; the rest is declined.

        ``operations`` (RESERVE/UNRESERVE) are applied to the offers first, so tasks may
        use the resources they reserve.
        """
        ids = list(offer_ids)
        items = list(tasks)
        ops = list(operations)
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

    def decline_offer(self, offer_id: str, refuse_seconds: float = 5.0) -> None:
        """Give an offer back; its agent is not re-offered to us for ``refuse_seconds``."""
        self._request(
            lambda: Decline(
                framework_id=self.framework_id, offer_ids=[offer_id], refuse_seconds=refuse_seconds
            )
        )

    def kill_task(self, task_id: str, agent_id: str = "") -> None:
        """Ask for a task to be killed; the outcome arrives as a status update."""
        self._request(
            lambda: Kill(framework_id=self.framework_id, task_id=task_id, agent_id=agent_id)
        )

    def reconcile_tasks(self, tasks: Iterable[ReconcileTask] = ()) -> None:
        """Ask for the latest state of ``tasks`` (all of ours when empty)."""
        items = list(tasks)
        self._request(lambda: Reconcile(framework_id=self.framework_id, tasks=items))

    def revive_offers(self, roles: Iterable[str] | None = None) -> None:
        """Clear decline filters and resume offers (for ``roles``, or all)."""
        names = list(roles or [])
        self._request(lambda: Revive(framework_id=self.framework_id, roles=names))

    def suppress_offers(self, roles: Iterable[str] | None = None) -> None:
        """Stop receiving offers (for ``roles``, or all) until revived."""
        names = list(roles or [])
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
                wait = min(max(self._core.next_wakeup(now) - now, 0.0), _MAX_POLL_SECONDS)
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
                if not self._stop_requested:
                    self._execute(self._core.tick(time.monotonic()))
            self._execute(self._final)
            client.socket.close(linger=self._linger_ms)
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

    def _follow_leader(self, client: ClientSocket) -> None:
        """ZooKeeper named a new leader: move to it and subscribe there."""
        if self._detector is None:
            return
        address = self._detector.changed()
        if address is not None and address != client.address:
            self._log.info("new leading master", address=address)
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
            self._execute(
                self._core.handle(envelope.message, envelope.request_id, time.monotonic())
            )
            if self._stop_requested or self._socket_changed:
                return  # the rest belongs to a socket or a driver that is gone

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if self._client is not None:
                    self._client.send(encode(action.message, action.request_id))
            elif isinstance(action, Call):
                try:
                    getattr(self.scheduler, action.name)(self, *action.args)
                except Exception:
                    self._log.exception("scheduler callback failed", callback=action.name)
            elif isinstance(action, Reconnect):
                if self._client is not None:
                    self._log.warning("master silent: reconnecting", master=self.master)
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
