"""What the master knows only while it runs: connections, offers, deadlines.

Rebuilt from the log by a new leader (``MasterCore._recover``); never persisted as such.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
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
    #: master-generated updates awaiting acknowledgement: uuid -> (update, last sent),
    #: in the order they were last sent
    pending: OrderedDict[str, tuple[TaskStatus, float]] = field(default_factory=OrderedDict)
    #: seconds before the next resend round (0: the master's status_update_retry)
    update_retry: float = 0.0
    #: the scheduler process and attempt its binding came from: see master.instances
    instance: str = ""
    attempt: int = 0


@dataclass(slots=True)
class AgentRuntime:
    peer: bytes | None = None
    #: when an agent that is away (recovered from the log and not yet back, or stopped
    #: on purpose) is removed, and why
    deadline: float | None = None
    away: str = "agent did not re-register after master failover"
    offers: set[str] = field(default_factory=set)
    #: the agent process and attempt its binding came from: see master.instances
    instance: str = ""
    attempt: int = 0


#: bytes of file reads one connection may have forwarded to agents and not yet answered:
#: asked for beyond it, a read is refused at once, before an agent sends data the
#: master would hold (300 reads of 1 MiB asked at once grew it by 430 MB); the same as
#: the shell's cap on replies sent and not yet read (server.MAX_UNSENT_BYTES)
MAX_READ_BYTES_IN_FLIGHT = 16 * 1024 * 1024
#: the most one read returns (the agent's limit, agent/files.py MAX_READ)
MAX_READ_LENGTH = 1024 * 1024


@dataclass(slots=True)
class PendingRead:
    """A file read forwarded to an agent, answered to ``peer`` or expired."""

    peer: bytes
    request_id: str
    deadline: float
    #: the bytes asked (at most MAX_READ_LENGTH)
    length: int = 0


class ReadBook:
    """File reads forwarded to agents by forward id, and the bytes each asker has in
    flight, kept as a running sum so that judging a new read costs nothing."""

    def __init__(self) -> None:
        self._pending: dict[str, PendingRead] = {}
        self._asked: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[str]:
        return iter(self._pending)

    def asked(self, peer: bytes) -> int:
        """Bytes ``peer`` has asked for and not yet been answered."""
        return self._asked.get(peer, 0)

    def add(self, forward_id: str, pending: PendingRead) -> None:
        self._pending[forward_id] = pending
        self._asked[pending.peer] = self._asked.get(pending.peer, 0) + pending.length

    def pop(self, forward_id: str) -> PendingRead | None:
        pending = self._pending.pop(forward_id, None)
        if pending is not None:
            left = self._asked[pending.peer] - pending.length
            if left:
                self._asked[pending.peer] = left
            else:
                del self._asked[pending.peer]
        return pending

    def expired(self, now: float) -> list[PendingRead]:
        """Forget and return the reads whose agent did not answer by ``now``."""
        due = [fid for fid, pending in self._pending.items() if pending.deadline <= now]
        return [p for p in map(self.pop, due) if p is not None]
