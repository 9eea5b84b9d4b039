"""The framework SDK: a ``Scheduler`` to subclass and the ``SchedulerDriver`` shell.

The driver owns one background thread and one DEALER socket. Every public method is
thread-safe: called from a callback (the driver thread) it acts at once; called from
another thread it queues the request and wakes the loop through a pipe, so requests
go out without polling delays. Callbacks always run in the driver thread, one at a
time; an exception in a callback is logged and does not stop the driver.
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

from mesos_zmq.errors import ConfigError
from mesos_zmq.protocol import (
    Accept,
    Decline,
    FrameworkInfo,
    Kill,
    Message,
    Offer,
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


class DriverStatus(enum.Enum):
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
        """The master went silent; the driver is reconnecting."""

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        """Launch tasks on offers, or decline them (unanswered offers stay yours)."""

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        """An offer is no longer valid (its agent was lost, for example)."""

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        """A task changed state; delivered once per update."""

    def error(self, driver: SchedulerDriver, message: str) -> None:
        """The master refused something; after a fatal error the driver aborts."""


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
        if master.startswith("zk://"):
            raise ConfigError(
                "zk:// master URLs need ZooKeeper detection, which is not available yet; "
                "use tcp://host:port"
            )
        self.scheduler = scheduler
        self.master = master
        self._core = DriverCore(framework, lambda: uuid.uuid4().hex, implicit_acknowledgements)
        self._status = DriverStatus.NOT_STARTED
        self._thread: threading.Thread | None = None
        self._queue: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._file_callbacks: dict[str, FileCallback] = {}
        self._stop_requested = False
        self._done = threading.Event()
        self._client: ClientSocket | None = None
        self._log = log.bind(framework=framework.name)

    # ----------------------------------------------------------------- lifecycle
    @property
    def framework_id(self) -> str:
        return self._core.framework_id

    @property
    def status(self) -> DriverStatus:
        return self._status

    def start(self) -> DriverStatus:
        if self._status is not DriverStatus.NOT_STARTED:
            return self._status
        self._status = DriverStatus.RUNNING
        self._thread = threading.Thread(target=self._run_loop, name="scheduler-driver",
                                        daemon=True)
        self._thread.start()
        return self._status

    def stop(self, failover: bool = False) -> DriverStatus:
        """Stop; without ``failover`` the framework is torn down (its tasks killed)."""

        def do() -> None:
            if not failover:
                self._execute(self._core.teardown())
            self._core.stopped = True
            self._stop_requested = True
            if self._status is DriverStatus.RUNNING:
                self._status = DriverStatus.STOPPED

        self._submit(do)
        return DriverStatus.STOPPED

    def abort(self) -> DriverStatus:
        def do() -> None:
            self._core.stopped = True
            self._stop_requested = True
            self._status = DriverStatus.ABORTED

        self._submit(do)
        return DriverStatus.ABORTED

    def join(self, timeout: float | None = None) -> DriverStatus:
        if self._thread is not None and threading.current_thread() is not self._thread:
            self._done.wait(timeout)
        return self._status

    def run(self) -> DriverStatus:
        self.start()
        return self.join()

    # ----------------------------------------------------------------- requests
    def launch_tasks(
        self, offer_ids: Iterable[str], tasks: list[TaskInfo], refuse_seconds: float = 5.0
    ) -> None:
        ids = list(offer_ids)
        self._request(
            lambda: Accept(framework_id=self.framework_id, offer_ids=ids, tasks=list(tasks),
                           refuse_seconds=refuse_seconds)
        )

    accept_offers = launch_tasks

    def decline_offer(self, offer_id: str, refuse_seconds: float = 5.0) -> None:
        self._request(
            lambda: Decline(framework_id=self.framework_id, offer_ids=[offer_id],
                            refuse_seconds=refuse_seconds)
        )

    def kill_task(self, task_id: str, agent_id: str = "") -> None:
        self._request(lambda: Kill(framework_id=self.framework_id, task_id=task_id,
                                   agent_id=agent_id))

    def reconcile_tasks(self, tasks: Iterable[ReconcileTask] = ()) -> None:
        items = list(tasks)
        self._request(lambda: Reconcile(framework_id=self.framework_id, tasks=items))

    def revive_offers(self, roles: Iterable[str] | None = None) -> None:
        names = list(roles or [])
        self._request(lambda: Revive(framework_id=self.framework_id, roles=names))

    def suppress_offers(self, roles: Iterable[str] | None = None) -> None:
        names = list(roles or [])
        self._request(lambda: Suppress(framework_id=self.framework_id, roles=names))

    def acknowledge_status_update(self, status: TaskStatus) -> None:
        self._submit(lambda: self._execute(self._core.acknowledge(status)))

    def read_file(
        self, agent_id: str, task_id: str, path: str, offset: int, length: int,
        callback: FileCallback,
    ) -> None:
        """Read part of a sandbox file; ``callback`` gets FileData or Error (driver thread)."""

        def do() -> None:
            msg = ReadFile(agent_id=agent_id, task_id=task_id, path=path, offset=offset,
                           length=length, framework_id=self.framework_id)
            request_id, actions = self._core.read_file(msg)
            if actions:
                self._file_callbacks[request_id] = callback
                self._execute(actions)

        self._submit(do)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the driver thread (where callbacks run), e.g. periodic work."""
        self._submit(fn)

    def _request(self, build: Callable[[], Message]) -> None:
        def do() -> None:
            actions = self._core.request(build())
            if not actions:
                self._log.warning("request dropped: not subscribed to the master")
            self._execute(actions)

        self._submit(do)

    # ----------------------------------------------------------------- loop
    def _submit(self, fn: Callable[[], None]) -> None:
        if threading.current_thread() is self._thread:
            fn()
            return
        self._queue.append(fn)
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the pipe is full, so the loop is already awake

    def _run_loop(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._client = ClientSocket(context, self.master)
        try:
            self._execute(self._core.connected(time.monotonic()))
            while not self._stop_requested:
                poller = zmq.Poller()
                poller.register(self._client.socket, zmq.POLLIN)
                poller.register(self._wake_r, zmq.POLLIN)
                events = dict(poller.poll(50))
                if self._wake_r in events:
                    os.read(self._wake_r, 4096)
                while self._queue:
                    self._queue.popleft()()
                if self._client.socket in events:
                    self._drain()
                self._execute(self._core.tick(time.monotonic()))
            # Give a final Teardown a moment to leave before the socket closes.
            self._client.socket.close(linger=1000)
        except Exception:
            self._log.exception("scheduler driver crashed")
            self._status = DriverStatus.ABORTED
            self._client.close()
        finally:
            context.term()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._done.set()

    def _drain(self) -> None:
        assert self._client is not None
        for envelope in self._client.receive_all():
            self._execute(
                self._core.handle(envelope.message, envelope.request_id, time.monotonic())
            )

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
                    self._log.warning("master silent: reconnecting")
                    self._client.reconnect()
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
