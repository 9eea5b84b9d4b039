"""Issue 10, items 2 and 3: mistakes raise in the caller; pymesos names are noticed;
the default resource_offers declines. No sockets: the driver is never started."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mesos_zmq.errors import ConfigError
from mesos_zmq.protocol import FrameworkInfo, Offer, Operation, TaskInfo
from mesos_zmq.scheduler import InvalidRequestError, Scheduler, SchedulerDriver
from mesos_zmq.scheduler.driver import DEFAULT_DECLINE_SECONDS, misnamed_callbacks
from mesos_zmq.scheduler.validation import offer_id_list, safe_id, task_list

GOOD = TaskInfo(task_id="t1", agent_id="A1", resources="cpus:1;mem:64", command="true")


@pytest.fixture
def driver() -> Iterator[SchedulerDriver]:
    d = SchedulerDriver(Scheduler(), FrameworkInfo(name="fw", roles=["a", "b"]),
                        "tcp://127.0.0.1:1")
    yield d
    d.stop()  # never started: this only closes its wake pipe


@pytest.mark.parametrize("task,needle", [
    (TaskInfo(task_id="t1", agent_id="A1", resources=["cpus:1"], command="x"),  # type: ignore[arg-type]
     "TaskInfo.resources: expected a string, got list"),
    (TaskInfo(task_id="t1", agent_id="A1", resources="cpus:lots", command="x"), "cpus:lots"),
    (TaskInfo(task_id="../x", agent_id="A1", resources="cpus:1", command="x"), "task id"),
    (TaskInfo(task_id="..", agent_id="A1", resources="cpus:1", command="x"), "task id"),
    (TaskInfo(task_id="t1", agent_id="A1", resources="cpus:1"), "empty command"),
    (TaskInfo(task_id="t1", agent_id="A1", resources="cpus:1", shell=False), "no argv"),
    (TaskInfo(task_id="t1", agent_id="A1", resources="cpus:1", command="x",
              env={"A": 1}), "env"),  # type: ignore[dict-item]
    (TaskInfo(task_id="t1", agent_id="A1", resources="cpus:1", command="x",
              kill_grace_period=7200.0), "kill_grace_period"),
])
def test_bad_tasks_raise_in_the_caller(driver: SchedulerDriver, task: TaskInfo,
                                       needle: str) -> None:
    with pytest.raises(InvalidRequestError, match="launch_tasks") as info:
        driver.launch_tasks("O1", [task])
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)  # `except ValueError` catches it too


def test_offer_ids_may_be_one_string_or_a_list_never_characters() -> None:
    """Before: launch_tasks("O1", ...) sent offer ids ["O", "1"]."""
    assert offer_id_list("offer-1", "x") == ["offer-1"]
    assert offer_id_list(["o1", "o2"], "x") == ["o1", "o2"]
    assert offer_id_list(("o1",), "x") == ["o1"]
    for bad, needle in [([], "no offer ids"), (["o1", "o1"], "repeated"),
                        ([""], "non-empty"), (b"o1", "bytes"), (7, "int")]:
        with pytest.raises(InvalidRequestError, match=needle):
            offer_id_list(bad, "x")  # type: ignore[arg-type]
    offer = Offer(offer_id="o1", framework_id="F", agent_id="A", hostname="h", role="*",
                  resources="cpus:1")
    with pytest.raises(InvalidRequestError, match=r"offer\.offer_id"):
        offer_id_list([offer], "x")  # type: ignore[list-item]


def test_driver_methods_check_their_arguments(driver: SchedulerDriver) -> None:
    driver.launch_tasks("O1", GOOD)  # one id, one task: fine
    driver.launch_tasks(["O1"], [GOOD], operations=[Operation("RESERVE", "cpus(a):1")])
    driver.decline_offer(["O1", "O2"], refuse_seconds=0)
    driver.decline_offers("O3")
    with pytest.raises(InvalidRequestError, match="refuse_seconds"):
        driver.decline_offer("O1", refuse_seconds=-1)
    with pytest.raises(InvalidRequestError, match="refuse_seconds"):
        driver.launch_tasks("O1", [GOOD], refuse_seconds=float("nan"))
    with pytest.raises(InvalidRequestError, match="appears twice"):
        driver.launch_tasks("O1", [GOOD, GOOD])
    with pytest.raises(InvalidRequestError, match="DESTROY"):
        driver.launch_tasks("O1", [GOOD], operations=[Operation("DESTROY", "cpus(a):1")])
    with pytest.raises(InvalidRequestError, match="expected a TaskInfo"):
        driver.launch_tasks("O1", [{"task_id": "t"}])  # type: ignore[list-item]
    with pytest.raises(InvalidRequestError, match="task id"):
        driver.kill_task(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="ReconcileTask"):
        driver.reconcile_tasks(["t1"])  # type: ignore[list-item]
    driver.suppress_offers("a")  # one role as a string, not its characters
    assert driver.suppressed_roles == []  # applied in the driver thread, which is not running
    with pytest.raises(InvalidRequestError, match="not one of the framework's roles"):
        driver.suppress_offers(["c"])
    with pytest.raises(InvalidRequestError, match="delay"):
        driver.call_later(-1, lambda: None)
    with pytest.raises(InvalidRequestError, match="callable"):
        driver.call_later(1, None)  # type: ignore[arg-type]


def test_suppressed_roles_must_be_among_the_roles() -> None:
    with pytest.raises(ConfigError, match="suppressed role 'x'"):
        SchedulerDriver(Scheduler(), FrameworkInfo(name="fw", suppressed_roles=["x"]),
                        "tcp://127.0.0.1:1")


def test_the_safe_id_rule_is_the_agents() -> None:
    from mesos_zmq.agent.core import safe_id as agent_safe_id

    for value in ["t1", "a.b-c_d", "..", ".", "", "a/b", "x" * 200, "x" * 201, "é", "a b"]:
        assert safe_id(value) == agent_safe_id(value), value


def test_task_list_accepts_one_task_or_a_list() -> None:
    assert task_list(GOOD, "x") == [GOOD]
    with pytest.raises(InvalidRequestError, match="must be a list"):
        task_list("t1", "x")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- item 3


class Pymesos(Scheduler):
    def resourceOffers(self, driver: Any, offers: Any) -> None: ...
    def statusUpdate(self, driver: Any, status: Any) -> None: ...
    def frameworkMessage(self, *args: Any) -> None: ...
    def registered(self, *args: Any) -> None: ...  # the same name in both


class Aliased(Scheduler):
    def status_update(self, driver: Any, status: Any) -> None: ...
    statusUpdate = status_update


def test_pymesos_names_are_found() -> None:
    """Before: a Scheduler with pymesos names silently never heard anything."""
    assert misnamed_callbacks(Pymesos()) == [
        ("frameworkMessage", None), ("resourceOffers", "resource_offers"),
        ("statusUpdate", "status_update")]
    assert misnamed_callbacks(Aliased()) == []
    assert misnamed_callbacks(Scheduler()) == []


class FakeDriver:
    def __init__(self) -> None:
        self.declined: list[tuple[Any, float]] = []

    def decline_offer(self, offer_ids: Any, refuse_seconds: float = 5.0) -> None:
        self.declined.append((offer_ids, refuse_seconds))


def test_the_default_resource_offers_declines_instead_of_holding() -> None:
    """Before: an un-overridden resource_offers held every offer for good."""
    fake = FakeDriver()
    offers = [Offer(offer_id=f"o{i}", framework_id="F", agent_id="A", hostname="h", role="*",
                    resources="cpus:1") for i in range(2)]
    Scheduler().resource_offers(fake, offers)  # type: ignore[arg-type]
    assert fake.declined == [(["o0", "o1"], DEFAULT_DECLINE_SECONDS)]
    Scheduler().resource_offers(fake, [])  # type: ignore[arg-type]
    assert len(fake.declined) == 1


def test_refused_default_does_not_call_error() -> None:
    """pymesos users treat error as fatal: a refusal must not reach it by default."""
    from mesos_zmq.scheduler import Refusal

    class Strict(Scheduler):
        def error(self, driver: Any, message: str) -> None:
            raise AssertionError("a refusal reached error()")

    Strict().refused(None, Refusal("invalid", "no", "r1"))  # type: ignore[arg-type]


def test_more_tasks_than_the_master_takes_in_one_accept_are_refused_here() -> None:
    from mesos_zmq.master.runtime import MAX_TASKS_PER_ACCEPT
    from mesos_zmq.scheduler.validation import MAX_TASKS_PER_CALL, task_list

    assert MAX_TASKS_PER_CALL == MAX_TASKS_PER_ACCEPT
    tasks = [TaskInfo(task_id=f"t{i}", agent_id="a", resources="cpus:0.001", command="true")
             for i in range(MAX_TASKS_PER_CALL + 1)]
    with pytest.raises(InvalidRequestError, match="at most 10000"):
        task_list(tasks, "launch_tasks")
    assert len(task_list(tasks[:-1], "launch_tasks")) == MAX_TASKS_PER_CALL


def test_a_reconcile_of_more_tasks_than_the_master_takes_goes_in_several_messages(
        driver: SchedulerDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The master refuses a reconcile naming more than MAX_RECONCILE tasks: the SDK
    splits it, in order, each part a message of its own (built when sent)."""
    from mesos_zmq.master.validation import MAX_RECONCILE
    from mesos_zmq.protocol import Reconcile, ReconcileTask

    sent: list[Any] = []
    monkeypatch.setattr(driver, "_request", lambda build: sent.append(build()))
    tasks = [ReconcileTask(task_id=f"t{n}") for n in range(2 * MAX_RECONCILE + 5)]
    driver.reconcile_tasks(tasks)
    assert all(isinstance(m, Reconcile) for m in sent)
    assert [len(m.tasks) for m in sent] == [MAX_RECONCILE, MAX_RECONCILE, 5]
    assert [t for m in sent for t in m.tasks] == tasks
    sent.clear()
    driver.reconcile_tasks()  # implicit: one message naming none
    assert [m.tasks for m in sent] == [[]]
