"""What the master knows only while it runs: connections, offers, deadlines.

Rebuilt from the log by a new leader (``MasterCore._recover``); never persisted as such.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from mesos_zmq.heartbeat import HeartbeatMonitor
from mesos_zmq.protocol import TaskStatus
from mesos_zmq.resources import Resources

#: most tasks one accept may launch (and most usage entries one report may carry)
MAX_TASKS_PER_ACCEPT = 10_000


@dataclass(slots=True)
class Peer:
    kind: str  # "agent" | "framework"
    id: str
    monitor: HeartbeatMonitor
    #: the principal the handshake proved when it bound (None without keys)
    principal: str | None = None


@dataclass(slots=True)
class OfferRec:
    offer_id: str
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    created: float


@dataclass(slots=True)
class FrameworkRuntime:
    peer: bytes | None = None
    #: known from the log and not yet back since this master took over: its offers
    #: from the previous leader stay valid when it re-subscribes
    recovered: bool = False
    #: when a disconnected framework is removed (None while connected)
    deadline: float | None = None
    #: a framework recovered from the log keeps its offers until it re-subscribes or
    #: this time passes (the heartbeat limit: a live one is back well before)
    offers_until: float | None = None
    offers: set[str] = field(default_factory=set)
    #: master-generated updates awaiting acknowledgement: uuid -> (update, last sent)
    pending: OrderedDict[str, tuple[TaskStatus, float]] = field(default_factory=OrderedDict)


@dataclass(slots=True)
class AgentRuntime:
    peer: bytes | None = None
    #: when an agent that is away (recovered from the log and not yet back, or stopped
    #: on purpose) is removed, and why
    deadline: float | None = None
    away: str = "agent did not re-register after master failover"
    offers: set[str] = field(default_factory=set)


@dataclass(slots=True)
class PendingRead:
    """A file read forwarded to an agent, answered to ``peer`` or expired."""

    peer: bytes
    request_id: str
    deadline: float
