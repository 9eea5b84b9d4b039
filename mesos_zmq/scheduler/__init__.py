"""The framework SDK: subclass ``Scheduler`` and run it with a ``SchedulerDriver``.

docs/sdk.md is the guide: callbacks, what is held when, refusals and errors, decline
filters, exactly-once updates, timers and suppressed roles.
"""

from mesos_zmq.scheduler.core import Refusal
from mesos_zmq.scheduler.driver import DriverStatus, Scheduler, SchedulerDriver, TimerHandle
from mesos_zmq.scheduler.validation import InvalidRequestError

__all__ = [
    "DriverStatus",
    "InvalidRequestError",
    "Refusal",
    "Scheduler",
    "SchedulerDriver",
    "TimerHandle",
]
