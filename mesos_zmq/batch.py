"""The one shape of the three pure cores (master, agent, framework driver).

Theory of operation
-------------------
Each core is a class with no socket, clock or file. Its shell feeds it typed inputs
(a decoded :class:`~mesos_zmq.protocol.Message` with its request id and ``now``, or a
fact only the shell knows, such as "task exited") and gets back one **batch** of what to
do. The core dispatches a message through a table keyed by message type, never through
an ``isinstance`` chain, so a new message is one handler and one table entry.

A batch is ordered data, carried out by the shell in one fixed order: durable writes
first (the master's log records, the agent's checkpoints), then local effects (spawn,
signal, scheduler callbacks), then messages. Nothing is sent about a decision that could
still be lost in a crash. The batch types are:

- master: :class:`mesos_zmq.master.core.Ready` (records, then messages);
- agent: :class:`mesos_zmq.agent.core.Effects` (checkpoints, spawns, signals, reads,
  messages);
- driver: :data:`mesos_zmq.scheduler.core.Actions`, a list of typed actions carried out
  in order (the driver keeps nothing durable, so order is the whole contract).

``tests/unit/test_core_shape.py`` holds every core to this shape.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Batch(Protocol):
    """What every core's output can do: take in a later batch. An empty batch is
    falsy (a shell skips it); ``tests/unit/test_core_shape.py`` checks that too."""

    def extend(self, other: Any, /) -> None: ...
