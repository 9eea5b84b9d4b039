"""A framework with endless demand, run as its own process by the fairness test.

It launches as many ``sleep`` tasks as fit in every offer, forever, and writes nothing
but logs: the test reads allocations from the master.
"""

from __future__ import annotations

import argparse
import itertools
import random
import signal
import sys
import threading
from types import FrameType

from mesos_zmq.protocol import FrameworkInfo, Offer, TaskInfo
from mesos_zmq.resources import Resources
from mesos_zmq.scheduler import Scheduler, SchedulerDriver


class Greedy(Scheduler):
    def __init__(self, role: str, task_resources: Resources, duration: float,
                 max_per_offer: int) -> None:
        self.role = role
        self.task_resources = task_resources
        self.duration = duration
        self.max_per_offer = max_per_offer
        self.ids = itertools.count()
        self.lock = threading.Lock()

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            left = Resources.parse(offer.resources)
            tasks = []
            # Take a few tasks' worth and hand the rest straight back (no filter), so
            # the master can give it to whichever role is now furthest below its share.
            while left.contains(self.task_resources) and len(tasks) < self.max_per_offer:
                left = left - self.task_resources
                seconds = round(self.duration * random.uniform(0.5, 1.5), 2)
                tasks.append(TaskInfo(task_id=f"{self.role.replace('/', '_')}-{next(self.ids)}",
                                      agent_id=offer.agent_id,
                                      resources=str(self.task_resources),
                                      command=f"sleep {seconds}"))
            if tasks:
                driver.launch_tasks([offer.offer_id], tasks, refuse_seconds=0)
            else:
                driver.decline_offer(offer.offer_id, refuse_seconds=1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--master", required=True)
    parser.add_argument("--role", required=True)
    parser.add_argument("--task", default="cpus:0.25;mem:256")
    parser.add_argument("--duration", type=float, default=2.0,
                        help="mean task length; each task sleeps 0.5x to 1.5x of it")
    parser.add_argument("--max-per-offer", type=int, default=4)
    args = parser.parse_args()
    driver = SchedulerDriver(
        Greedy(args.role, Resources.parse(args.task), args.duration, args.max_per_offer),
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
