"""SchedulerDriver against a fake master: a ROUTER in the test speaking the real protocol.

The fake master is driven step by step from the test thread (no thread of its own),
so each test states exactly what the master says and checks what the driver answers.
"""

from __future__ import annotations

import io
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import zmq

from mesos_zmq.errors import ConfigError
from mesos_zmq.frameworks.execute import run_command
from mesos_zmq.protocol import (
    Accept,
    Acknowledge,
    Decline,
    Envelope,
    Error,
    FileData,
    FrameworkInfo,
    Message,
    Offer,
    Offers,
    ReadFile,
    Rescind,
    Revive,
    StatusUpdate,
    Subscribe,
    Subscribed,
    Suppress,
    TaskInfo,
    TaskStatus,
    Teardown,
    batch_frame,
    decode_frame,
    encode,
)
from mesos_zmq.scheduler import (
    DriverStatus,
    InvalidRequestError,
    Refusal,
    Scheduler,
    SchedulerDriver,
)

pytestmark = pytest.mark.integration

M = TypeVar("M", bound=Message)


class FakeMaster:
    """A bound ROUTER; ``expect`` reads until a message of the wanted type arrives."""

    def __init__(self) -> None:
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.socket: zmq.Socket[bytes] = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.url = f"tcp://127.0.0.1:{port}"
        self.seen: list[tuple[bytes, str, Message]] = []
        self.pending: deque[tuple[bytes, Envelope]] = deque()

    def _next(self, left: float) -> tuple[bytes, Envelope] | None:
        """The next message in arrival order: the driver batches what one turn of its
        loop sends (a batch frame's items come out one by one)."""
        if not self.pending:
            if not self.socket.poll(int(left * 1000) + 1):
                return None
            identity, frame = self.socket.recv_multipart()
            for item in decode_frame(frame):
                assert isinstance(item, Envelope), item
                self.pending.append((identity, item))
        return self.pending.popleft()

    def expect(self, kind: type[M], timeout: float = 3.0,
               where: Callable[[M], bool] = lambda m: True) -> tuple[bytes, str, M]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self._next(left)
            if got is None:
                continue
            identity, envelope = got
            self.seen.append((identity, envelope.request_id, envelope.message))
            msg = envelope.message
            if isinstance(msg, kind) and where(msg):
                return identity, envelope.request_id, msg
        raise AssertionError(f"no {kind.__name__} within {timeout}s; saw "
                             f"{[type(m).__name__ for _, _, m in self.seen[-10:]]}")

    def quiet(self, kind: type[Message], seconds: float) -> None:
        """Read for ``seconds`` and fail if a message of ``kind`` arrives."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            got = self._next(left)
            if got is not None:
                identity, envelope = got
                msg = envelope.message
                self.seen.append((identity, "", msg))
                assert not isinstance(msg, kind), f"unexpected {msg}"

    def send(self, identity: bytes, msg: Message, request_id: str = "") -> None:
        self.socket.send_multipart([identity, encode(msg, request_id)])

    def subscribe(self, framework_id: str = "F1", interval: float = 5.0, missed: int = 5,
                  reregistered: bool = False) -> tuple[bytes, Subscribe]:
        identity, rid, msg = self.expect(Subscribe)
        self.send(identity, Subscribed(framework_id=framework_id, heartbeat_interval=interval,
                                       missed_heartbeats=missed, reregistered=reregistered),
                  rid)
        return identity, msg

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


class Recorder(Scheduler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.on_offers: Callable[[SchedulerDriver, list[Offer]], None] | None = None

    def _add(self, name: str, value: Any = None) -> None:
        with self.lock:
            self.events.append((name, value))

    def named(self, name: str) -> list[Any]:
        with self.lock:
            return [v for n, v in self.events if n == name]

    def registered(self, driver: SchedulerDriver, framework_id: str,
                   master_info: dict[str, Any]) -> None:
        self._add("registered", framework_id)

    def reregistered(self, driver: SchedulerDriver, master_info: dict[str, Any]) -> None:
        self._add("reregistered", master_info)

    def disconnected(self, driver: SchedulerDriver) -> None:
        self._add("disconnected")

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        self._add("offers", offers)
        if self.on_offers is not None:
            self.on_offers(driver, offers)

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        self._add("rescinded", offer_id)

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        self._add("update", status)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self._add("error", message)

    def refused(self, driver: SchedulerDriver, refusal: Refusal) -> None:
        self._add("refused", refusal)


def wait_for(check: Callable[[], Any], timeout: float = 3.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def master() -> Iterator[FakeMaster]:
    m = FakeMaster()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def driver(master: FakeMaster, rec: Recorder) -> Iterator[SchedulerDriver]:
    d = SchedulerDriver(rec, FrameworkInfo(name="test-fw"), master.url)
    try:
        yield d
    finally:
        d.abort()
        d.join(5.0)


OFFER = Offer(offer_id="O1", framework_id="F1", agent_id="A1", hostname="h1", role="*",
              resources="cpus:2;mem:1024")


def running(uuid: str, task_id: str = "t1") -> StatusUpdate:
    return StatusUpdate(status=TaskStatus(task_id=task_id, framework_id="F1", agent_id="A1",
                                          state="TASK_RUNNING", uuid=uuid, timestamp=1.0))


# ----------------------------------------------------------------------------- tests


def test_bad_master_urls_are_config_errors(rec: Recorder) -> None:
    with pytest.raises(ConfigError, match="path is required"):
        SchedulerDriver(rec, FrameworkInfo(name="x"), "zk://127.0.0.1:2181")
    with pytest.raises(ConfigError):
        SchedulerDriver(rec, FrameworkInfo(name="x"), "http://127.0.0.1:5050")


def test_subscribe_offers_and_launch(master: FakeMaster, rec: Recorder,
                                     driver: SchedulerDriver) -> None:
    task = TaskInfo(task_id="t1", agent_id="A1", resources="cpus:1;mem:64", command="true")
    rec.on_offers = lambda d, offers: d.launch_tasks([offers[0].offer_id], [task])
    assert driver.start() is DriverStatus.RUNNING
    identity, sub = master.subscribe()
    assert sub.framework.name == "test-fw" and sub.framework.framework_id == ""
    wait_for(lambda: rec.named("registered") == ["F1"], what="registered")
    assert driver.framework_id == "F1"

    master.send(identity, Offers(offers=[OFFER]))
    _, rid, accept = master.expect(Accept)
    assert rec.named("offers") == [[OFFER]]
    assert accept == Accept(framework_id="F1", offer_ids=["O1"], tasks=[task],
                            refuse_seconds=5.0)
    assert len(rid) == 32 and int(rid, 16) >= 0  # a uuid4 hex request id

    master.send(identity, Rescind(offer_id="O2"))
    wait_for(lambda: rec.named("rescinded") == ["O2"], what="rescind callback")


def test_status_update_delivered_once_and_acknowledged(master: FakeMaster, rec: Recorder,
                                                       driver: SchedulerDriver) -> None:
    driver.start()
    identity, _ = master.subscribe()
    master.send(identity, running("U1"))
    _, ack_rid, ack = master.expect(Acknowledge)
    assert ack == Acknowledge(framework_id="F1", agent_id="A1", task_id="t1", uuid="U1")
    assert ack_rid
    assert [s.uuid for s in rec.named("update")] == ["U1"]

    master.send(identity, running("U1"))  # a retry: the master did not see our ack
    _, rid2, again = master.expect(Acknowledge)
    assert again == ack and rid2 != ack_rid
    master.send(identity, running("", task_id="t2"))  # reconciliation answer: no ack
    wait_for(lambda: len(rec.named("update")) == 2, what="informational update")
    master.quiet(Acknowledge, 0.2)
    assert [s.uuid for s in rec.named("update")] == ["U1", ""]


def test_the_updates_of_one_batch_are_acknowledged_in_one_frame_in_order(
        master: FakeMaster, rec: Recorder, driver: SchedulerDriver) -> None:
    driver.start()
    identity, _ = master.subscribe()
    updates = [running(f"U{n}", task_id=f"t{n}") for n in range(5)]
    master.socket.send_multipart([identity, batch_frame([encode(u) for u in updates])])
    assert master.socket.poll(3000)
    _, frame = master.socket.recv_multipart()  # what one turn of the driver said
    acks = [item.message for item in decode_frame(frame)
            if isinstance(item, Envelope) and isinstance(item.message, Acknowledge)]
    assert acks == [Acknowledge(framework_id="F1", agent_id="A1", task_id=f"t{n}",
                                uuid=f"U{n}") for n in range(5)]
    assert [s.uuid for s in rec.named("update")] == [f"U{n}" for n in range(5)]


def test_the_subscription_goes_out_before_the_driver_first_waits(
        master: FakeMaster, rec: Recorder, driver: SchedulerDriver,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the driver queued before its loop's first wait is sent before that wait
    (a wait of up to a minute here): the subscription does not sit in its outbox."""
    monkeypatch.setattr("mesos_zmq.scheduler.driver._MAX_POLL_SECONDS", 60.0)
    monkeypatch.setattr(driver._core, "next_wakeup", lambda now: now + 60.0)
    driver.start()
    master.subscribe()
    wait_for(lambda: rec.named("registered") != [], what="registered callback")


def test_silent_master_means_reconnect_with_the_same_framework_id(
        master: FakeMaster, rec: Recorder, driver: SchedulerDriver) -> None:
    driver.start()
    old_identity, _ = master.subscribe(interval=0.1, missed=3)
    started = time.monotonic()
    # Say nothing: the driver gives up on us after about 0.3 s and starts over.
    new_identity, _, sub = master.expect(Subscribe, timeout=3.0)
    assert time.monotonic() - started < 2.0
    assert new_identity != old_identity
    assert sub.framework.framework_id == "F1"
    assert rec.named("disconnected") == [None]
    master.send(new_identity, Subscribed(framework_id="F1", heartbeat_interval=5.0,
                                         missed_heartbeats=5, reregistered=True))
    wait_for(lambda: rec.named("reregistered"), what="reregistered")
    assert rec.named("registered") == ["F1"]


def test_not_registered_error_resubscribes(master: FakeMaster, rec: Recorder,
                                           driver: SchedulerDriver) -> None:
    driver.start()
    identity, _ = master.subscribe()
    master.send(identity, Error(code="not_registered", message="unknown connection"))
    same_identity, rid, sub = master.expect(Subscribe, timeout=0.5)
    assert same_identity == identity and sub.framework.framework_id == "F1"
    master.send(identity, Subscribed(framework_id="F1", heartbeat_interval=5.0,
                                     missed_heartbeats=5, reregistered=True), rid)
    wait_for(lambda: rec.named("reregistered"), what="reregistered")
    assert rec.named("error") == [] and driver.status is DriverStatus.RUNNING


def test_framework_removed_aborts(master: FakeMaster, rec: Recorder,
                                  driver: SchedulerDriver) -> None:
    driver.start()
    identity, _ = master.subscribe()
    master.send(identity, Error(code="framework_removed", message="F1 was removed"))
    assert driver.join(3.0) is DriverStatus.ABORTED
    assert rec.named("error") == ["F1 was removed"]


def test_refused_subscription_aborts(master: FakeMaster, rec: Recorder,
                                     driver: SchedulerDriver) -> None:
    driver.start()
    identity, rid, _ = master.expect(Subscribe)
    master.send(identity, Error(code="invalid", message="role not allowed", in_reply_to=rid),
                rid)
    assert driver.join(3.0) is DriverStatus.ABORTED
    assert rec.named("error") == ["role not allowed"]


def test_callback_exception_does_not_kill_the_driver(master: FakeMaster, rec: Recorder,
                                                     driver: SchedulerDriver) -> None:
    def explode(d: SchedulerDriver, offers: list[Offer]) -> None:
        raise RuntimeError("scheduler bug")

    rec.on_offers = explode
    driver.start()
    identity, _ = master.subscribe()
    master.send(identity, Offers(offers=[OFFER]))
    master.send(identity, running("U1"))
    master.expect(Acknowledge)
    assert driver.status is DriverStatus.RUNNING and len(rec.named("offers")) == 1


def test_requests_from_other_threads_wake_the_loop(master: FakeMaster,
                                                   driver: SchedulerDriver) -> None:
    driver.start()
    master.subscribe(interval=5.0)  # the loop may now sleep up to a second between timers
    wait_for(lambda: driver.framework_id == "F1", what="subscribed")
    for i in range(3):
        time.sleep(0.05)
        started = time.monotonic()
        driver.decline_offer(f"O{i}", refuse_seconds=1.0)
        _, _, decline = master.expect(Decline, timeout=1.0)
        assert time.monotonic() - started < 0.25, "request waited for a timer"
        assert decline.offer_ids == [f"O{i}"] and decline.refuse_seconds == 1.0


def test_read_file_routes_data_and_errors(master: FakeMaster, rec: Recorder,
                                          driver: SchedulerDriver) -> None:
    driver.start()
    identity, _ = master.subscribe()
    wait_for(lambda: rec.named("registered"), what="registered")
    answers: list[Message] = []
    driver.read_file("A1", "t1", "stdout", 0, 100, answers.append)
    _, rid, read = master.expect(ReadFile)
    assert read == ReadFile(agent_id="A1", task_id="t1", path="stdout", offset=0, length=100,
                            framework_id="F1")
    data = FileData(task_id="t1", path="stdout", offset=0, data=b"hello", size=5, done=True)
    master.send(identity, data, rid)
    wait_for(lambda: answers == [data], what="FileData callback")

    driver.read_file("A1", "t1", "stderr", 0, 100, answers.append)
    _, rid2, _ = master.expect(ReadFile)
    err = Error(code="invalid", message="agent A1 is not connected", in_reply_to=rid2)
    master.send(identity, err, rid2)
    wait_for(lambda: len(answers) == 2, what="Error callback")
    assert answers[1] == err and driver.status is DriverStatus.RUNNING


def test_stop_without_failover_sends_teardown(master: FakeMaster, rec: Recorder,
                                              driver: SchedulerDriver) -> None:
    driver.start()
    master.subscribe()
    wait_for(lambda: rec.named("registered"), what="registered")
    assert driver.stop() is DriverStatus.STOPPED
    _, _, teardown = master.expect(Teardown)
    assert teardown == Teardown(framework_id="F1")
    assert driver.join(3.0) is DriverStatus.STOPPED


def test_stop_with_failover_just_disconnects(master: FakeMaster, rec: Recorder,
                                             driver: SchedulerDriver) -> None:
    driver.start()
    master.subscribe()
    wait_for(lambda: rec.named("registered"), what="registered")
    driver.stop(failover=True)
    assert driver.join(3.0) is DriverStatus.STOPPED
    master.quiet(Teardown, 0.3)


def test_run_command_streams_output_and_returns_the_exit_code(master: FakeMaster) -> None:
    out, err = io.BytesIO(), io.BytesIO()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(run_command(
        master.url, "echo hi; exit 3", instances=1, cpus=0.5, mem=64, name="run",
        stdout=out, stderr=err, timeout=20)))
    runner.start()
    try:
        identity, sub = master.subscribe()
        assert sub.framework.name == "run"
        master.send(identity, Offers(offers=[OFFER]))
        _, _, accept = master.expect(Accept)
        (task,) = accept.tasks
        assert task.task_id.startswith("run-") and task.task_id.endswith("-0")
        assert task.command == "echo hi; exit 3" and task.resources == "cpus:0.5;mem:64"
        master.expect(Suppress)

        def update(state: str, uuid: str, exit_code: int | None = None) -> StatusUpdate:
            return StatusUpdate(status=TaskStatus(
                task_id=task.task_id, framework_id="F1", agent_id="A1", state=state,
                uuid=uuid, timestamp=1.0, exit_code=exit_code))

        master.send(identity, update("TASK_RUNNING", "U1"))
        master.send(identity, update("TASK_FAILED", "U2", exit_code=3))
        served = {"stdout": b"hi\n", "stderr": b""}
        drained: set[str] = set()
        while drained != {"stdout", "stderr"}:
            _, rid, read = master.expect(ReadFile)
            body = served[read.path][read.offset:read.offset + read.length]
            master.send(identity, FileData(task_id=task.task_id, path=read.path,
                                           offset=read.offset, data=body,
                                           size=len(served[read.path]), done=True), rid)
            if read.offset + len(body) >= len(served[read.path]):
                drained.add(read.path)
        master.expect(Teardown)
    finally:
        runner.join(10.0)
    assert result == [3]
    assert out.getvalue() == b"hi\n"
    assert err.getvalue() == b""


# ----------------------------------------------------------------------------- issue 10


def test_a_refused_accept_reaches_refused_with_its_details_not_error(
        master: FakeMaster, rec: Recorder, driver: SchedulerDriver) -> None:
    task = TaskInfo(task_id="t1", agent_id="A1", resources="cpus:1;mem:64", command="true")
    rec.on_offers = lambda d, offers: d.launch_tasks(offers[0].offer_id, [task])
    driver.start()
    identity, _ = master.subscribe()
    master.send(identity, Offers(offers=[OFFER]))
    _, rid, accept = master.expect(Accept)
    assert accept.offer_ids == ["O1"]  # one id given as a string, not split into "O", "1"
    master.send(identity, Error(code="invalid", message="accept refused: stale",
                                in_reply_to=rid), rid)
    (refusal,) = wait_for(lambda: rec.named("refused"), what="refused callback")
    assert refusal == Refusal(code="invalid", message="accept refused: stale", request_id=rid,
                              request="accept", offer_ids=("O1",), task_ids=("t1",))
    assert rec.named("error") == [] and driver.status is DriverStatus.RUNNING
    # The caller hears of its own mistakes at once, in its own thread.
    bad = TaskInfo(task_id="t2", agent_id="A1", resources=["cpus:1"],  # type: ignore[arg-type]
                   command="true")
    with pytest.raises(InvalidRequestError, match=r"TaskInfo\.resources"):
        driver.launch_tasks(["O2"], [bad])
    driver.decline_offer(["O2", "O3"], refuse_seconds=0)
    _, _, decline = master.expect(Decline)
    assert decline.offer_ids == ["O2", "O3"]


def test_call_later_runs_in_the_driver_thread_and_can_be_cancelled(
        master: FakeMaster, driver: SchedulerDriver) -> None:
    ran: list[tuple[str, float]] = []
    started = time.monotonic()
    driver.start()
    driver.call_later(0.2, lambda: ran.append((threading.current_thread().name,
                                               time.monotonic() - started)))
    cancelled = driver.call_later(0.1, lambda: ran.append(("cancelled", 0.0)))
    cancelled.cancel()
    driver.call_later(0.05, lambda: 1 / 0)  # an exception is logged, nothing more
    wait_for(lambda: ran, what="timer")
    time.sleep(0.1)
    ((thread, after),) = ran
    assert thread == "scheduler-driver" and 0.2 <= after < 1.0
    assert driver.status is DriverStatus.RUNNING


class PymesosStyle(Scheduler):
    def __init__(self) -> None:
        self.offers: list[Any] = []

    def resourceOffers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        self.offers.append(offers)


def test_pymesos_names_warn_at_start_and_default_offers_are_declined(
        master: FakeMaster) -> None:
    scheduler = PymesosStyle()
    driver = SchedulerDriver(scheduler, FrameworkInfo(name="py"), master.url)
    try:
        with pytest.warns(UserWarning, match=r"PymesosStyle\.resourceOffers is never called"):
            driver.start()
        identity, _ = master.subscribe()
        master.send(identity, Offers(offers=[OFFER]))
        _, _, decline = master.expect(Decline)  # the default resource_offers declines
        assert decline.offer_ids == ["O1"] and decline.refuse_seconds == 60.0
        assert scheduler.offers == []
    finally:
        driver.abort()
        driver.join(5.0)


def test_suppressed_roles_are_sent_with_every_subscription(master: FakeMaster,
                                                           rec: Recorder) -> None:
    info = FrameworkInfo(name="q", roles=["a", "b"], suppressed_roles=["a", "b"])
    driver = SchedulerDriver(rec, info, master.url)
    try:
        driver.start()
        identity, sub = master.subscribe()
        assert sub.framework.suppressed_roles == ["a", "b"]
        wait_for(lambda: rec.named("registered"), what="registered")
        driver.revive_offers("a")
        _, _, revive = master.expect(Revive)
        assert revive.roles == ["a"]
        # The master restarted and lost us: the new subscription says what is suppressed.
        master.send(identity, Error(code="not_registered", message="unknown connection"))
        _, _, again = master.expect(Subscribe)
        assert again.framework.suppressed_roles == ["b"] and driver.suppressed_roles == ["b"]
    finally:
        driver.abort()
        driver.join(5.0)


def test_an_unknown_framework_id_is_exposed(master: FakeMaster, rec: Recorder) -> None:
    driver = SchedulerDriver(rec, FrameworkInfo(name="x", framework_id="F-old"), master.url)
    try:
        driver.start()
        identity, rid, _ = master.expect(Subscribe)
        master.send(identity, Subscribed(framework_id="F-old", heartbeat_interval=5.0,
                                         missed_heartbeats=5, unknown_id=True), rid)
        wait_for(lambda: rec.named("registered"), what="registered")
        assert driver.master_info == {"framework_id": "F-old", "reregistered": False,
                                      "unknown_id": True}
    finally:
        driver.abort()
        driver.join(5.0)
