"""A first framework to read: launch N ``sleep`` tasks and report what happens.

    python -m mesos_zmq.frameworks.sleeper --master tcp://127.0.0.1:5050 --tasks 5

It shows the whole life of a framework: subscribe, take offers that fit, decline the
rest, watch status updates, and stop (tearing the framework down) when every task has
ended. Updates are acknowledged by the driver after ``status_update`` returns.
"""

from __future__ import annotations

import argparse
import sys

from mesos_zmq.protocol import FrameworkInfo, Offer, TaskInfo, TaskStatus
from mesos_zmq.resources import Resources
from mesos_zmq.scheduler import Scheduler, SchedulerDriver
from mesos_zmq.tasks import TERMINAL


class Sleeper(Scheduler):
    """Launches ``tasks`` sleeps; every callback below runs in the driver's thread."""

    def __init__(self, tasks: int, seconds: float, resources: Resources) -> None:
        self.to_launch = [f"sleep-{i}" for i in range(tasks)]
        self.seconds = seconds
        self.resources = resources
        self.ended: dict[str, str] = {}
        self.total = tasks

    def registered(self, driver: SchedulerDriver, framework_id: str,
                   master_info: dict[str, object]) -> None:
        print(f"registered as {framework_id}", flush=True)

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        # Pack as many tasks as fit into each offer; an offer we do not use must be
        # declined, or its resources stay tied up with us.
        for offer in offers:
            left = Resources.parse(offer.resources)
            tasks = []
            while self.to_launch and left.contains(self.resources):
                left = left - self.resources
                tasks.append(TaskInfo(task_id=self.to_launch.pop(0), agent_id=offer.agent_id,
                                      resources=str(self.resources),
                                      command=f"sleep {self.seconds}"))
            if tasks:
                print(f"launching {[t.task_id for t in tasks]} on {offer.hostname}", flush=True)
                driver.launch_tasks([offer.offer_id], tasks)
            else:
                driver.decline_offer(offer.offer_id, refuse_seconds=30)
        if not self.to_launch:
            driver.suppress_offers()  # everything is launched: no more offers, please

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        # The driver acknowledges the update after this returns, and never delivers
        # the same update twice.
        print(f"{status.task_id}: {status.state} {status.message}".rstrip(), flush=True)
        if status.state in TERMINAL and status.task_id not in self.ended:
            self.ended[status.task_id] = status.state
            if len(self.ended) == self.total:
                driver.stop()  # tears the framework down; run() then returns

    def error(self, driver: SchedulerDriver, message: str) -> None:
        print(f"error: {message}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description="launch N sleep tasks")
    parser.add_argument("--master", default="tcp://127.0.0.1:5050")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--resources", default="cpus:0.1;mem:32")
    args = parser.parse_args()
    sleeper = Sleeper(args.tasks, args.seconds, Resources.parse(args.resources))
    driver = SchedulerDriver(sleeper, FrameworkInfo(name="sleeper"), args.master)
    driver.run()
    failed = [t for t, s in sleeper.ended.items() if s != "TASK_FINISHED"]
    return 1 if failed or len(sleeper.ended) < args.tasks else 0


if __name__ == "__main__":
    sys.exit(main())
