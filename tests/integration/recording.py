"""A scheduler that records every callback, for tests that drive a real cluster."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mesos_zmq.protocol import Offer, TaskInfo, TaskStatus
from mesos_zmq.resources import Resources
from mesos_zmq.scheduler import Scheduler, SchedulerDriver


class Recorder(Scheduler):
    """Launches queued tasks on matching offers and keeps every other offer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.offers: dict[str, Offer] = {}
        self.rescinded: list[tuple[float, str]] = []
        self.updates: list[tuple[float, TaskStatus]] = []
        self.registered_ids: list[str] = []
        self.reregistered_count = 0
        self.disconnected_count = 0
        self.errors: list[str] = []
        # (predicate on offer, tasks factory)
        self.wanted: list[tuple[Callable[[Offer], bool], Callable[[Offer], list[TaskInfo]]]] = []

    def want(self, match: Callable[[Offer], bool],
             make: Callable[[Offer], list[TaskInfo]]) -> None:
        with self.lock:
            self.wanted.append((match, make))

    def release(self, driver: SchedulerDriver) -> None:
        """Decline every held offer so its resources can be offered again at once."""
        with self.lock:
            held, self.offers = list(self.offers), {}
        for offer_id in held:
            driver.decline_offer(offer_id, refuse_seconds=0)

    def registered(self, driver: SchedulerDriver, framework_id: str, master_info: dict) -> None:
        self.registered_ids.append(framework_id)

    def reregistered(self, driver: SchedulerDriver, master_info: dict) -> None:
        self.reregistered_count += 1

    def disconnected(self, driver: SchedulerDriver) -> None:
        self.disconnected_count += 1

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.errors.append(message)

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            with self.lock:
                match = next((w for w in self.wanted if w[0](offer)), None)
                if match is not None:
                    self.wanted.remove(match)
            if match is None:
                with self.lock:
                    self.offers[offer.offer_id] = offer
                continue
            tasks = match[1](offer)
            driver.launch_tasks([offer.offer_id], tasks, refuse_seconds=0)

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        with self.lock:
            self.offers.pop(offer_id, None)
            self.rescinded.append((time.monotonic(), offer_id))

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        with self.lock:
            self.updates.append((time.monotonic(), status))

    def states(self, task_id: str) -> list[str]:
        with self.lock:
            return [s.state for _, s in self.updates if s.task_id == task_id]


def sleep_tasks(prefix: str, count: int, seconds: float,
                resources: str = "cpus:0.1;mem:16") -> Callable[[Offer], list[TaskInfo]]:
    def make(offer: Offer) -> list[TaskInfo]:
        per = Resources.parse(resources)
        left = Resources.parse(offer.resources)
        tasks = []
        for i in range(count):
            assert left.contains(per), "offer too small for the test's tasks"
            left = left - per
            tasks.append(TaskInfo(task_id=f"{prefix}-{i}", agent_id=offer.agent_id,
                                  resources=resources, command=f"sleep {seconds}"))
        return tasks

    return make
