"""Which process a connection speaks for, and which of its attempts came late.

An agent or a scheduler that hears nothing from the master (one paused while ZooKeeper
had no quorum, or SIGSTOPped) abandons its connection for a fresh one, attempt after
attempt, and an attempt can go on the connection it is about to leave. The master, back,
reads them all at once, a connection's first message in turn with the others' (ZeroMQ
takes one message per connection in turn): the second attempt on an old connection came
after the attempt on the newest, and bound the agent (or framework) to a connection no
one read. An agent's heartbeats went there; the agent, hearing none, left again, and
its registration came after the master had removed it for silence (CI: a task just
launched on it, LOST).

So each (re-)registration and subscription carries the process's name (``instance``, a
uuid per start) and the attempt's number (counted up by the process). Here, per kind
(``"agent"``, ``"framework"``):

- :func:`stale`: an attempt from the same process as the one the binding came from, on
  another connection, numbered no higher, came late: it is refused (``error stale``,
  which the connection left behind never reads) and changes nothing. Another process
  (a restart) is always taken, and so is a peer that sends no ``instance``;
- :func:`known`: which agent or framework a process was made (its first answer went to
  a connection it left, so it asks again as if new: it is that one, not a second);
- :func:`note` after each binding, :func:`forget` when the agent or framework goes.

A scheduler taken over by another process (a framework failover: another ``instance``,
or a peer that sends none, subscribing with its id) is told so on the connection it
had: :func:`displace` sends ``error framework_failed_over`` there, as Mesos's master
sends the old scheduler ``FrameworkErrorMessage("Framework failed over")``, and the SDK
aborts. Until then anything that connection sends is answered the same
(:func:`tell_displaced`), not ``not_registered``: a scheduler that was paused, and missed
the first word, would otherwise subscribe again at once and take the framework back,
and the two processes would take turns for as long as both lived (each switch voiding
the other's offers). For the same reason a later subscription of the process failed
over from is refused the same way (:func:`refused_displaced`): one that woke from a
pause, judged the master silent and left the connection before reading the word,
subscribed again on a fresh one and took the framework back. A process reconnecting
on a fresh connection is the same ``instance``, and is not told anything.

This is runtime state of the leader, never logged: a new leader takes each process's
first attempt and goes on from there. Which scheduler process drives a framework, and
which ones it failed over from, is logged (``SchedulerChanged``): a new leader must
refuse a process failed over from under the previous one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from mesos_zmq.bounded import remember
from mesos_zmq.master.records import SchedulerChanged

if TYPE_CHECKING:
    from mesos_zmq.master.context import MasterContext
    from mesos_zmq.master.runtime import AgentRuntime, FrameworkRuntime

log = structlog.get_logger()

#: characters of an ``instance`` kept (a uuid's 32 are enough to tell two apart)
MAX_INSTANCE = 64


def _runtime(core: MasterContext, kind: str, ident: str
             ) -> AgentRuntime | FrameworkRuntime | None:
    table = core.agent_runtimes if kind == "agent" else core.framework_runtimes
    return table.get(ident)


def known(core: MasterContext, kind: str, instance: str) -> str | None:
    """The agent or framework id process ``instance`` was made, if this master made it."""
    return core.instances.get((kind, instance[:MAX_INSTANCE])) if instance else None


def stale(core: MasterContext, kind: str, ident: str, peer: bytes, instance: str,
          attempt: int, rid: str) -> bool:
    """Whether this attempt came late on a connection its process has left (then it is
    refused, and nothing else is to be done with it)."""
    if not instance:
        return False
    rt = _runtime(core, kind, ident)
    if (rt is None or rt.peer == peer or rt.instance != instance[:MAX_INSTANCE]
            or attempt > rt.attempt):
        return False
    core.count(f"stale_{kind}_attempts")
    log.info("ignored an attempt that came late on a connection left behind", kind=kind,
             id=ident, attempt=attempt, bound_attempt=rt.attempt)
    core.error(peer, "stale", f"attempt {attempt} came after attempt {rt.attempt} of the "
               f"same {kind} process, on another connection: ignored", rid)
    return True


def note(core: MasterContext, kind: str, ident: str, instance: str, attempt: int) -> None:
    """The process and attempt the binding of ``ident`` came from."""
    rt = _runtime(core, kind, ident)
    if rt is None:
        return
    instance = instance[:MAX_INSTANCE]
    if rt.instance and rt.instance != instance:
        forget(core, kind, ident)  # a process that has ended: a restart
    rt.instance, rt.attempt = instance, attempt
    if instance:
        core.instances[(kind, instance)] = ident


#: connections remembered as failed over from (the newest; older ones are answered
#: ``not_registered`` again, and an old SDK subscribes again, once)
MAX_DISPLACED = 4096


def displace(core: MasterContext, framework_id: str, peer: bytes, instance: str) -> None:
    """Before ``peer`` is bound to ``framework_id`` by a subscription of process
    ``instance``: a process other than the one driving the framework is a failover,
    recorded (replicated: a new leader refuses the process failed over from too), and
    the connection the framework had, if any, is told (see the module docstring)."""
    instance = instance[:MAX_INSTANCE]
    current = core.state.schedulers.get(framework_id, "")
    if instance and instance == current:
        return  # the same scheduler (on a fresh connection: the old one is left)
    if instance:
        core.commit(SchedulerChanged(framework_id=framework_id, instance=instance,
                                     previous=current))
    rt = core.framework_runtimes.get(framework_id)
    if rt is None or rt.peer is None or rt.peer == peer:
        return
    old = rt.peer
    remember(core.displaced, old, framework_id, MAX_DISPLACED)
    core.count("framework_failovers")
    log.info("framework failed over to another scheduler", framework_id=framework_id)
    core.error(old, "framework_failed_over", _failed_over(framework_id), "")


def tell_displaced(core: MasterContext, peer: bytes, rid: str) -> bool:
    """Answer a message of a connection a framework failed over from (True), or do
    nothing (False: not one)."""
    framework_id = core.displaced.get(peer)
    if framework_id is None:
        return False
    core.error(peer, "framework_failed_over", _failed_over(framework_id), rid)
    return True


def refused_displaced(core: MasterContext, framework_id: str, instance: str, peer: bytes,
                      rid: str) -> bool:
    """Refuse a subscription of a process ``framework_id`` failed over from (True)."""
    if not instance or (framework_id, instance[:MAX_INSTANCE]) not in core.state.failed_over:
        return False
    core.count("failed_over_subscriptions")
    core.error(peer, "framework_failed_over", _failed_over(framework_id), rid)
    return True


def _failed_over(framework_id: str) -> str:
    return (f"framework {framework_id[:64]} failed over: another scheduler subscribed with "
            "its id; this one must stop")


def forget(core: MasterContext, kind: str, ident: str,
           rt: AgentRuntime | FrameworkRuntime | None = None) -> None:
    """``ident``'s process is no longer one this master knows it by (``rt``: its runtime,
    when the caller has already taken it out of the table)."""
    rt = rt if rt is not None else _runtime(core, kind, ident)
    if rt is not None and rt.instance and core.instances.get((kind, rt.instance)) == ident:
        del core.instances[(kind, rt.instance)]
