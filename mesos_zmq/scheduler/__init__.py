"""The framework SDK: subclass ``Scheduler`` and run it with a ``SchedulerDriver``."""

from mesos_zmq.scheduler.driver import DriverStatus, Scheduler, SchedulerDriver

__all__ = ["DriverStatus", "Scheduler", "SchedulerDriver"]
