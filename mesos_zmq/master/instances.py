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

This is runtime state of the leader, never logged: a new leader takes each process's
first attempt and goes on from there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

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


def forget(core: MasterContext, kind: str, ident: str,
           rt: AgentRuntime | FrameworkRuntime | None = None) -> None:
    """``ident``'s process is no longer one this master knows it by (``rt``: its runtime,
    when the caller has already taken it out of the table)."""
    rt = rt if rt is not None else _runtime(core, kind, ident)
    if rt is not None and rt.instance and core.instances.get((kind, rt.instance)) == ident:
        del core.instances[(kind, rt.instance)]
