"""Issue 10 end to end: the SDK against a real master and agent (real processes)."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest

from mesos_zmq.protocol import FrameworkInfo, Offer, Operation, TaskInfo, TaskStatus
from mesos_zmq.scheduler import Refusal, Scheduler, SchedulerDriver
from tests.cluster import Cluster, wait_until

pytestmark = pytest.mark.integration


class Holder(Scheduler):
    """Keeps every offer it is given (a test decides what to do with them)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.offers: list[tuple[float, Offer]] = []
        self.refusals: list[Refusal] = []
        self.updates: list[TaskStatus] = []
        self.errors: list[str] = []
        self.subscriptions: list[dict[str, Any]] = []

    def registered(self, driver: SchedulerDriver, framework_id: str,
                   master_info: dict[str, Any]) -> None:
        with self.lock:
            self.subscriptions.append(master_info)

    def reregistered(self, driver: SchedulerDriver, master_info: dict[str, Any]) -> None:
        with self.lock:
            self.subscriptions.append(master_info)

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        with self.lock:
            self.offers.extend((time.monotonic(), o) for o in offers)

    def refused(self, driver: SchedulerDriver, refusal: Refusal) -> None:
        with self.lock:
            self.refusals.append(refusal)

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        with self.lock:
            self.updates.append(status)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def offers_since(self, since: float) -> list[Offer]:
        with self.lock:
            return [o for t, o in self.offers if t >= since]


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    cluster.start_master()
    cluster.start_agent(resources="cpus:2;mem:1024")
    cluster.wait_agents(1)
    return cluster


def start(cluster: Cluster, scheduler: Scheduler, info: FrameworkInfo) -> SchedulerDriver:
    driver = SchedulerDriver(scheduler, info, cluster.master_url)
    driver.start()
    return driver


@pytest.fixture
def holder() -> Holder:
    return Holder()


def test_a_refused_accept_gives_its_offer_back_at_once(running: Cluster, holder: Holder) -> None:
    """Before: the refused offer stayed held until the master re-sent it (10 s) and the
    SDK declined it then; the scheduler heard only error(message)."""
    driver = start(running, holder, FrameworkInfo(name="q", roles=["eng"]))
    try:
        (offer,) = wait_until(lambda: holder.offers_since(0), 10, what="an offer")
        task = TaskInfo(task_id="t1", agent_id=offer.agent_id, resources="cpus:1;mem:64",
                        command="true")
        refused_at = time.monotonic()
        # Parses fine here; the master refuses it: RESERVE only for the offer's role.
        driver.launch_tasks(offer.offer_id, [task],
                            operations=[Operation("RESERVE", "cpus(ops):1")])
        (refusal,) = wait_until(lambda: holder.refusals, 5, what="refusal")
        assert refusal.code == "invalid" and "offer's role" in refusal.message
        assert (refusal.request, refusal.offer_ids, refusal.task_ids) == (
            "accept", (offer.offer_id,), ("t1",))
        assert refusal.request_id
        wait_until(lambda: [u.state for u in holder.updates] == ["TASK_DROPPED"], 5,
                   what="TASK_DROPPED")
        (again,) = wait_until(lambda: holder.offers_since(refused_at), 4, what="re-offer")
        assert again.offer_id != offer.offer_id and again.resources == offer.resources
        assert holder.errors == []
    finally:
        driver.stop()
        driver.join(5.0)


def test_suppression_holds_from_subscription_and_across_a_master_restart(
        running: Cluster, holder: Holder) -> None:
    info = FrameworkInfo(name="q", suppressed_roles=["*"], failover_timeout=60.0)
    driver = start(running, holder, info)
    try:
        wait_until(lambda: holder.subscriptions, 10, what="registered")
        time.sleep(2.5)  # more than two allocation rounds
        assert holder.offers_since(0) == []
        driver.revive_offers()
        (offer,) = wait_until(lambda: holder.offers_since(0), 5, what="an offer after revive")
        driver.suppress_offers()
        driver.decline_offer(offer.offer_id, refuse_seconds=0)
        time.sleep(1.5)
        assert len(holder.offers_since(0)) == 1
        # The master dies and comes back from its log; the agent and the driver return.
        assert running.master is not None
        running.master.stop(signal.SIGKILL)
        running.start_master()
        running.wait_agents(1)
        wait_until(lambda: len(holder.subscriptions) >= 2, 15, what="re-subscribed")
        back = time.monotonic()
        time.sleep(2.5)
        assert holder.offers_since(back) == [], "a suppressed framework was offered"
        driver.revive_offers()
        wait_until(lambda: holder.offers_since(back), 5, what="an offer after revive")
        assert holder.errors == []
    finally:
        driver.stop()
        driver.join(5.0)


def test_an_unknown_framework_id_is_registered_and_said_so(running: Cluster,
                                                            holder: Holder) -> None:
    driver = start(running, holder, FrameworkInfo(name="q", framework_id="F-from-elsewhere"))
    try:
        (info,) = wait_until(lambda: holder.subscriptions, 10, what="registered")
        assert info == {"framework_id": "F-from-elsewhere", "reregistered": False,
                        "unknown_id": True}
        assert driver.master_info["unknown_id"] is True
        assert [f["id"] for f in running.state()["frameworks"]] == ["F-from-elsewhere"]
    finally:
        driver.stop()
        driver.join(5.0)
