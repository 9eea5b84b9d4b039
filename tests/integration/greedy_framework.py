"""A framework with endless demand, run as its own process by the fairness test.

It launches as many ``sleep`` tasks as fit in every offer, forever, and writes nothing
but logs: the test reads allocations from the master.
"""

from __future__ import annotations

import argparse
import itertools
import signal
import sys
import threading
from types import FrameType

from mesos_zmq.protocol import FrameworkInfo, Offer, TaskInfo
from mesos_zmq.resources import Resources
from mesos_zmq.scheduler import Scheduler, SchedulerDriver


class Greedy(Scheduler):
    def __init__(self, role: str, task_resources: Resources, duration: float) -> None:
        self.role = role
        self.task_resources = task_resources
        self.duration = duration
        self.ids = itertools.count()
        self.lock = threading.Lock()

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            left = Resources.parse(offer.resources)
            tasks = []
            while left.contains(self.task_resources):
                left = left - self.task_resources
                tasks.append(TaskInfo(task_id=f"{self.role}-{next(self.ids)}",
                                      agent_id=offer.agent_id,
                                      resources=str(self.task_resources),
                                      command=f"sleep {self.duration}"))
            if tasks:
                driver.launch_tasks([offer.offer_id], tasks, refuse_seconds=1)
            else:
                driver.decline_offer(offer.offer_id, refuse_seconds=1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--master", required=True)
    parser.add_argument("--role", required=True)
    parser.add_argument("--task", default="cpus:0.25;mem:256")
    parser.add_argument("--duration", type=float, default=2.0)
    args = parser.parse_args()
    driver = SchedulerDriver(
        Greedy(args.role, Resources.parse(args.task), args.duration),
        FrameworkInfo(name=f"greedy-{args.role}", roles=[args.role]),
        args.master,
    )

    def on_term(signum: int, frame: FrameType | None) -> None:
        driver.stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    driver.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
