"""A framework run as its own process by the failover test, so it can be SIGKILLed.

First run (no ``--framework-id``): subscribes with a failover timeout and launches
``--tasks`` sleeping tasks plus one task, ``ender``, that exits 5 once ``--trigger``
exists. A later run with ``--framework-id`` fails over to the same framework and
launches nothing. Every callback is appended to ``--out`` as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from mesos_zmq.protocol import FrameworkInfo, Offer, TaskInfo, TaskStatus
from mesos_zmq.scheduler import Scheduler, SchedulerDriver


class Failover(Scheduler):
    def __init__(self, out: str, tasks: int, trigger: str, launch: bool) -> None:
        self.out = out
        self.tasks = tasks
        self.trigger = trigger
        self.launch = launch
        self.lock = threading.Lock()

    def emit(self, **event: Any) -> None:
        with self.lock, open(self.out, "a") as handle:
            handle.write(json.dumps(event) + "\n")

    def registered(self, driver: SchedulerDriver, framework_id: str,
                   master_info: dict[str, Any]) -> None:
        self.emit(event="registered", framework_id=framework_id)

    def reregistered(self, driver: SchedulerDriver, master_info: dict[str, Any]) -> None:
        self.emit(event="reregistered", framework_id=driver.framework_id)

    def resource_offers(self, driver: SchedulerDriver, offers: list[Offer]) -> None:
        for offer in offers:
            if not self.launch:
                driver.decline_offer(offer.offer_id, refuse_seconds=60)
                continue
            self.launch = False
            tasks = [TaskInfo(task_id=f"keep-{i}", agent_id=offer.agent_id,
                              resources="cpus:0.1;mem:16", command="exec sleep 120")
                     for i in range(self.tasks)]
            tasks.append(TaskInfo(
                task_id="ender", agent_id=offer.agent_id, resources="cpus:0.1;mem:16",
                command=f"while [ ! -e {self.trigger} ]; do sleep 0.05; done; exit 5"))
            driver.launch_tasks([offer.offer_id], tasks, refuse_seconds=60)

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        self.emit(event="update", task_id=status.task_id, state=status.state,
                  exit_code=status.exit_code, uuid=status.uuid)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.emit(event="error", message=message)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--master", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--trigger", required=True)
    parser.add_argument("--failover-timeout", type=float, required=True)
    parser.add_argument("--framework-id", default="")
    parser.add_argument("--tasks", type=int, default=3)
    args = parser.parse_args()
    scheduler = Failover(args.out, args.tasks, args.trigger, launch=not args.framework_id)
    info = FrameworkInfo(name="failover", framework_id=args.framework_id,
                         failover_timeout=args.failover_timeout)
    driver = SchedulerDriver(scheduler, info, args.master)
    signal.signal(signal.SIGTERM, lambda signum, frame: driver.stop(failover=True))
    driver.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
