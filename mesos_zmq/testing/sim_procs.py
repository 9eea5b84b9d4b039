"""The simulated processes: real cores inside step functions that copy their shells.

Theory of operation
-------------------
Each class here is one process kind with the same life as its real shell, run one
``step`` at a time by :mod:`mesos_zmq.testing.sim` (no threads, no sockets):

* :class:`MasterReplica` follows :mod:`mesos_zmq.master.ha` and
  :mod:`mesos_zmq.master.server`: boot (recover the log, join the election), stand by
  (tail the log into a hot copy), take over (claim the epoch, tail again, build the
  :class:`~mesos_zmq.master.core.MasterCore`, publish the leader record), then per step
  handle the frames that arrived, tick, append the batch's records with ONE log append,
  maybe snapshot, and only then send (write ahead, then speak). A lost session,
  :class:`~mesos_zmq.master.zk_log.LogFenced` or any ``LogError`` ends it the way the
  shell does, including the ``finally`` that calls ``Contender.withdraw()``; the
  simulator's "systemd" starts it again later from ZooKeeper alone.
* :class:`AgentProc` follows :mod:`mesos_zmq.agent.server`: checkpoints (the real
  record format, folded back by :func:`mesos_zmq.agent.checkpoint.replay`) are written
  before anything is sent, and a :class:`FakeContainer` per task plays the supervisor,
  which outlives the agent process: a task keeps running across an agent restart and
  its events are consumed by the next agent.
* :class:`FrameworkProc` follows :mod:`mesos_zmq.scheduler.driver` around a
  :class:`~mesos_zmq.scheduler.core.DriverCore`, with a scripted scheduler that
  accepts, holds, declines (with filters) and kills, and reports everything it is told
  to the ledger.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from kazoo.protocol.states import KazooState

from mesos_zmq import __version__
from mesos_zmq.agent import checkpoint
from mesos_zmq.agent.core import AgentCore, Effects, RecoveredTask, TaskKey
from mesos_zmq.agent.events import Exited, LogLine, decode_event, encode_line
from mesos_zmq.detector import ELECTION_NODE
from mesos_zmq.errors import LogError, ProtocolError, ResourceError
from mesos_zmq.master.contender import Contender
from mesos_zmq.master.core import MasterCore, MasterCoreConfig, Ready
from mesos_zmq.master.log import EncodedSnapshot, Recovered
from mesos_zmq.master.records import record_to_plain
from mesos_zmq.master.state import MasterState, replay, state_from
from mesos_zmq.master.zk_log import LogFenced, ZooKeeperLog
from mesos_zmq.protocol import (
    Accept,
    Acknowledge,
    Decline,
    Envelope,
    FrameworkInfo,
    Heartbeat,
    Kill,
    Message,
    Offer,
    Reconcile,
    ReconcileTask,
    Refused,
    TaskInfo,
    TaskStatus,
    batches,
    decode_frame,
    encode,
    peek_request_id,
    refusal,
    turn_sends,
)
from mesos_zmq.resources import Resources
from mesos_zmq.scheduler.core import Abort, Action, Call, DriverCore, FileReply, Reconnect, Send
from mesos_zmq.tasks import TERMINAL
from mesos_zmq.testing.sim_net import (
    CLUSTER_PATH,
    ClientConn,
    Lazy,
    Ledger,
    SimDetector,
    Violation,
    World,
)

#: the simulated masters' snapshot threshold (the real default is --snapshot-every 5000)
SNAPSHOT_EVERY = 60
LAUNCH_BATCH = 16
#: the agents' and drivers' retry back-offs (issue 13) keep the real rules and jitter
#: (each process draws from its own seeded Random) on the simulator's time scale: a
#: run is 50-75 s and its fault-free tail 25-35 s, so no wait grows beyond this
RETRY_MAX = 8.0
SIGTERM = 15
SIGKILL = 9


def _arrow(direction: str, identity: bytes) -> str:
    return f"{direction} {identity.decode()}"


def _short(message: Message) -> str:
    """A compact description of a message for the trace."""
    name = message.TYPE
    status = getattr(message, "status", None)
    if isinstance(status, TaskStatus):
        return f"{name} {status.task_id} {status.state} uuid={status.uuid[-6:]}"
    offers = getattr(message, "offers", None)
    if isinstance(offers, list):
        return f"{name} {[o.offer_id[-6:] for o in offers]}"
    ids = getattr(message, "offer_ids", None)
    tasks = getattr(message, "tasks", None)
    parts = [name]
    if isinstance(ids, list):
        parts.append(f"offers={[i[-6:] for i in ids]}")
    if isinstance(tasks, list) and tasks:
        parts.append(f"tasks={[getattr(t, 'task_id', '') or t.task.task_id for t in tasks]}")
    task_id = getattr(message, "task_id", None)
    if isinstance(task_id, str):
        parts.append(task_id)
    return " ".join(parts)


#: answers that mean "the master (or agent) does not know this task": it never ran
_UNKNOWN_REASONS = frozenset({"REASON_TASK_UNKNOWN", "REASON_INVALID_OFFERS"})
#: what the master says when reconciling a task it does not know (master/scheduler_api.py);
#: a reconciliation answer for a known task carries that task's real state instead
_RECONCILED_UNKNOWN = "task unknown to the master"


def _verdict(status: TaskStatus) -> str:
    """A terminal update's meaning for invariant (c): its state, except that every
    "never launched" answer (DROPPED, or an informational LOST for an unknown task)
    is one verdict: they all say the same thing, that the task did not run."""
    if status.state == "TASK_DROPPED" or (
            status.state == "TASK_LOST" and not status.uuid
            and (status.reason in _UNKNOWN_REASONS
                 or (status.reason == "REASON_RECONCILIATION"
                     and status.message == _RECONCILED_UNKNOWN))):
        return "NOT_LAUNCHED"
    return status.state


# ===================================================================== masters
@dataclass(slots=True)
class MasterTuning:
    session_timeout: float = 2.0
    #: compacted log entries left behind (ZooKeeperLog's ``retain``)
    retain: int = 64
    core: MasterCoreConfig = field(default_factory=lambda: MasterCoreConfig(
        heartbeat_interval=0.5, missed_heartbeats=4, allocation_interval=0.5,
        reregister_timeout=10.0, status_update_retry=1.0,
        # 2 agents per 0.5 s step: 3 agents beat every 1 s, and the master retunes
        # them as agents are removed and come back (--max-agent-heartbeats)
        max_agent_heartbeats=4.0))


class MasterReplica:
    """One master process: down, standby or leader (see the module docstring)."""

    def __init__(self, world: World, name: str, tuning: MasterTuning) -> None:
        self.world = world
        self.name = name
        self.address = f"tcp://{name}:5050"
        self.tuning = tuning
        self.phase = "down"
        self.incarnation = 0
        self.restart_at: float | None = 0.0
        self.paused_until = 0.0
        self.lag_until = 0.0
        self.kill_after_commit = False
        self.lost = False
        self.client: Any = None
        self.log: ZooKeeperLog | None = None
        self.contender: Contender | None = None
        self.state = MasterState()
        self.core: MasterCore | None = None
        self.epoch = 0
        self.member_id = ""
        self.flushes = 0
        #: hooks the simulator sets: after each flush with records, after take-over
        self.on_flush: Any = None
        self.on_leader: Any = None
        self.on_snapshot: Any = None
        #: a snapshot built at a mark and not installed yet, as the real master's
        #: forked child leaves it (installed at a later flush, after more appends)
        self.pending_snapshot: tuple[EncodedSnapshot, int] | None = None

    # ----------------------------------------------------------------- life
    def boot(self) -> None:
        self.incarnation += 1
        self.member_id = f"{self.name}-{self.incarnation}"
        self.lost = False
        self.core = None
        self.pending_snapshot = None
        self.client = self.world.client(self.tuning.session_timeout)
        self.client.add_listener(self._on_state)
        self.phase = "standby"
        self.world.log(self.name, "boot", self.member_id)
        try:
            self.log = ZooKeeperLog(self.client, CLUSTER_PATH, retain=self.tuning.retain)
            recovered = self.log.recover()
            self.state = state_from(recovered.snapshot, recovered.records)
            self.contender = Contender(self.client, CLUSTER_PATH, self.member_id)
            self.contender.join()
        except LogError as exc:
            self.end(f"log error at boot: {exc}")

    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST:
            self.lost = True

    def crash(self) -> None:
        """SIGKILL: no withdraw, no close; the session lingers until it expires."""
        self.world.log(self.name, "CRASH", self.phase)
        self._down()

    def end(self, why: str) -> None:
        """The shell's exit path, ``finally`` included (withdraw, stop, close)."""
        self.world.log(self.name, "exit", why)
        try:
            if self.contender is not None:
                self.contender.withdraw()
        except Exception as exc:  # the shell swallows everything here too
            self.world.log(self.name, "withdraw failed", repr(exc))
        if self.client is not None:
            self.client.stop()
            self.client.close()
        self._down()

    def _down(self) -> None:
        if self.phase == "leader":
            net = self.world.network
            if net.bound.get(self.address) is self:
                del net.bound[self.address]
            net.master_died(self.address)
        self.phase = "down"
        self.core = None
        self.contender = None
        self.restart_at = self.world.now + self.world.rng.uniform(0.5, 3.0)

    # ----------------------------------------------------------------- steps
    def step(self) -> None:
        ping_first = self.world.rng.random() < 0.5
        if ping_first:
            self.client.ping()
        try:
            if self.phase == "standby":
                self._standby_step()
            elif self.phase == "leader":
                self._leader_step()
        except LogFenced as exc:
            self.end(f"fenced: {exc}")
            return
        except LogError as exc:
            self.end(f"log error: {exc}")
            return
        if not ping_first and self.phase != "down":
            self.client.ping()
        if self.lost and self.phase != "down":
            self.end("session lost")

    def _apply_tail(self, result: Any) -> None:
        """``tail()`` returns records, or (fixed code) a Recovered meaning "rebuild"."""
        if isinstance(result, list):
            replay(self.state, result)
            return
        assert isinstance(result, Recovered)
        if result.snapshot is not None:
            self.state = MasterState.restore(result.snapshot)
            self.world.log(self.name, "tail reloaded a snapshot")
        replay(self.state, result.records)

    def _standby_step(self) -> None:
        assert self.log is not None
        if self.lost:
            return
        if self.world.now >= self.lag_until:
            self._apply_tail(self.log.tail())
        if self._leads():
            self._take_over()

    def _leads(self) -> bool:
        contender = self.contender
        assert contender is not None
        leads = getattr(contender, "leads", None)
        if callable(leads):
            try:
                return bool(leads())
            except LogError:
                raise
            except Exception:
                self.lost = True
                return False
        members = sorted(self.client.get_children(f"{CLUSTER_PATH}/{ELECTION_NODE}"),
                         key=lambda n: int(n.rsplit("-", 1)[-1]))
        if contender.node not in members:
            self.lost = True  # wait_for_leadership raises: the shell treats it as lost
            return False
        return bool(members[0] == contender.node)

    def _take_over(self) -> None:
        assert self.log is not None and self.contender is not None
        self.epoch = self.log.claim_epoch()
        self._apply_tail(self.log.tail())
        config = replace(self.tuning.core, master_id=self.name)
        self.core = MasterCore(config, self.world.new_id, self.state, now=self.world.now)
        self.phase = "leader"
        self.world.network.bound[self.address] = self
        self.contender.publish({"id": self.member_id, "address": self.address,
                                "epoch": self.epoch, "version": __version__,
                                "elected_at": self.world.now})
        self.world.log(self.name, "LEADER", f"epoch={self.epoch} {self.member_id}")
        if self.on_leader is not None:
            self.on_leader(self)

    def _leader_step(self) -> None:
        core = self.core
        assert core is not None
        ready = Ready()
        now = self.world.now
        for identity, frame in self.world.network.master_receive(self.address):
            self._handle_frame(core, identity, frame, ready, now)
        ticked = core.tick(now)
        ready.records.extend(ticked.records)
        ready.messages.extend(ticked.messages)
        self._flush(ready)
        check = getattr(self.contender, "check_published", None)
        if callable(check) and self.phase == "leader":
            check()

    def _handle_frame(self, core: MasterCore, identity: bytes, frame: bytes, ready: Ready,
                      now: float) -> None:
        try:
            items = decode_frame(frame)
        except ProtocolError as exc:
            items = [Refused(exc, peek_request_id(frame))]
        for item in items:  # a batch's messages in order, as MasterServer does
            if isinstance(item, Refused):  # answered in its place among the replies
                ready.messages.append((identity, refusal(item), item.request_id))
            else:
                self._handle_message(core, identity, item, ready, now)

    def _handle_message(self, core: MasterCore, identity: bytes, envelope: Envelope,
                        ready: Ready, now: float) -> None:
        if not isinstance(envelope.message, Heartbeat):
            self.world.log(self.name, Lazy(_arrow, "<-", identity),
                           Lazy(_short, envelope.message))
        try:
            result = core.handle(identity, envelope.message, envelope.request_id, now)
        except Exception as exc:
            raise Violation("master_handler_raised",
                            f"{self.name} handling {envelope.message.TYPE}: {exc!r}") from exc
        ready.records.extend(result.records)
        ready.messages.extend(result.messages)

    def _flush(self, ready: Ready) -> None:
        assert self.log is not None and self.core is not None
        if ready.records:
            self.log.append([record_to_plain(r) for r in ready.records])
            self.flushes += 1
            if self.kill_after_commit:
                self.kill_after_commit = False
                self.world.log(self.name, "dies after commit, before sending",
                               len(ready.messages))
                self.crash()
                return
            if self.on_flush is not None:
                self.on_flush(self)
            if self.pending_snapshot is not None:
                encoded, mark = self.pending_snapshot
                self.pending_snapshot = None
                self.log.install_snapshot(encoded, mark)
                self.world.log(self.name, "snapshot installed", mark)
                if self.on_snapshot is not None:
                    self.on_snapshot(self)
            elif self.log.records_since_snapshot >= SNAPSHOT_EVERY:
                # The state as of the mark, installed later (MasterServer forks a child
                # for it): what is appended in between must stay after the snapshot.
                mark = self.log.mark_snapshot()
                self.pending_snapshot = (self.log.encode_snapshot(self.core.state.snapshot()),
                                         mark)
                self.world.log(self.name, "snapshot marked", mark)
        # What a step has for one peer goes in batch frames, by MasterServer's rule.
        for peer, frame, _msg, _rid in turn_sends(self._encoded(ready.messages)):
            self.world.network.master_send(peer, frame)

    def _encoded(self, messages: list[tuple[bytes, Message, str]],
                 ) -> Iterator[tuple[bytes, Message, str, bytes]]:
        for peer, msg, request_id in messages:
            if not isinstance(msg, Heartbeat):
                self.world.log(self.name, Lazy(_arrow, "->", peer), Lazy(_short, msg))
            yield peer, msg, request_id, encode(msg, request_id, self.epoch)

    def compact(self) -> None:
        """Forced snapshot + compaction by the serving leader, between two steps."""
        if self.phase == "leader" and self.log is not None and self.core is not None:
            try:
                self.log.write_snapshot(self.core.state.snapshot())
                self.world.log(self.name, "forced snapshot")
                if self.on_snapshot is not None:
                    self.on_snapshot(self)
            except LogError as exc:
                self.end(f"snapshot failed: {exc}")


# ===================================================================== agents
@dataclass(slots=True)
class FakeContainer:
    """A task's supervisor: outlives the agent, numbers its events like the real one
    (``events`` are its events file's lines, read as the agent reads them)."""

    framework_id: str
    info: TaskInfo
    exit_at: float
    exit_code: int
    events: list[dict[str, Any]] = field(default_factory=list)
    signal: int | None = None
    exited: bool = False


class _ClientProc:
    """What agents and frameworks share: crashing, and finding the leader to connect."""

    world: World
    name: str
    conn: ClientConn | None
    phase: str
    core: Any
    restart_at: float | None
    client: Any
    detector: SimDetector | None
    #: encoded messages for the master, sent at the end of a step in batch frames (as
    #: the real agent and driver send what one turn of their loop has to say)
    outbox: list[bytes]

    def _send_outbox(self) -> None:
        if self.outbox and self.conn is not None:
            for frame in batches(self.outbox):
                self.conn.send(frame)
        self.outbox = []

    def crash(self) -> None:
        self.world.log(self.name, "CRASH")
        self.outbox = []  # never sent: the process is gone
        if self.conn is not None:
            self.conn.close()
        self.phase = "down"
        self.core = None
        self.restart_at = self.world.now + self.world.rng.uniform(0.5, 3.0)

    def _connected(self, now: float) -> bool:
        """Keep the session alive; once a leader is known, open the connection and
        tell the core (:meth:`_core_connected`). False while there is none."""
        assert self.detector is not None
        self.client.ping()
        if self.phase == "waiting":
            address = self.detector.current()
            if address is None:
                return False
            self.detector.changed()
            self.conn = ClientConn(self.world, self.name, address)
            self.phase = "up"
            self._core_connected(now)
        return True

    def _core_connected(self, now: float) -> None:
        raise NotImplementedError


class AgentProc(_ClientProc):
    """One agent process plus the supervisors of its tasks (which survive it)."""

    def __init__(self, world: World, name: str, resources: str, session_timeout: float,
                 ledger: Ledger) -> None:
        self.world = world
        self.name = name
        self.resources = Resources.parse(resources)
        self.session_timeout = session_timeout
        self.ledger = ledger
        # durable: survives the agent process
        self.agent_id: str | None = None
        self.task_log: list[bytes] = []
        self.containers: dict[TaskKey, FakeContainer] = {}
        # per process
        self.phase = "down"
        self.restart_at: float | None = 0.0
        self.core: AgentCore | None = None
        self.conn: ClientConn | None = None
        self.detector: SimDetector | None = None
        self.client: Any = None
        self.launches: set[TaskKey] = set()  # containerizer.launches
        self.consumed: dict[TaskKey, int] = {}
        self.launch_queue: list[tuple[str, TaskInfo]] = []
        self.outbox = []
        #: boots so far (each boot is another agent process: another ``instance``)
        self.boots = 0

    # ----------------------------------------------------------------- life
    def boot(self) -> None:
        self.boots += 1
        self.world.log(self.name, "boot", self.agent_id or "new")
        self.client = self.world.client(self.session_timeout)
        self.detector = SimDetector(self.client)
        self.core = AgentCore(hostname=self.name, resources=self.resources, attributes="",
                              agent_id=self.agent_id, new_id=self.world.new_id,
                              kill_grace=1.0, retry_interval=1.0, retry_max=RETRY_MAX,
                              registration_backoff_factor=1.0,
                              registration_backoff_max=RETRY_MAX,
                              rng=random.Random(self.world.rng.getrandbits(64)),
                              instance=f"{self.name}-{self.boots}")
        self.launch_queue = []
        self.conn = None
        found = checkpoint.replay(self.task_log)
        self.launches = {(cp.framework_id, cp.info.task_id) for cp in found.values()}
        self.consumed = {(cp.framework_id, cp.info.task_id): cp.last_seq
                         for cp in found.values()}
        recovered = [RecoveredTask(framework_id=cp.framework_id, info=cp.info, state=cp.state,
                                   exit_code=cp.exit_code, healthy=cp.healthy,
                                   pending=cp.pending, kill_reason=cp.kill_reason)
                     for cp in found.values()]
        self.phase = "waiting"
        self._apply(self.core.recover(recovered, self.world.now))
        for cp in found.values():
            self._consume((cp.framework_id, cp.info.task_id))

    def stop(self) -> None:
        """A planned stop: the agent's last word to the master, then it exits."""
        if self.core is not None:
            self._apply(self.core.stopping("restart"))
            self._send_outbox()
        self.crash()

    # ----------------------------------------------------------------- steps
    def step(self) -> None:
        assert self.core is not None and self.detector is not None
        now = self.world.now
        if not self._connected(now):
            return
        assert self.conn is not None
        for envelope in self.conn.receive_all():
            if not isinstance(envelope.message, Heartbeat):
                self.world.log(self.name, "<-", Lazy(_short, envelope.message))
            self._apply(self.core.handle(envelope.message, envelope.request_id, now))
        self._launch_some()
        for key in list(self.containers):
            self._consume(key)
        address = self.detector.changed()
        if address is not None and address != self.conn.address:
            self.world.log(self.name, "follows leader", address)
            self._send_outbox()
            self.conn.reconnect(address)
            self._apply(self.core.connected(now))
        self._apply(self.core.tick(now))
        self._send_outbox()

    def _launch_some(self) -> None:
        assert self.core is not None
        batch, self.launch_queue = self.launch_queue[:LAUNCH_BATCH], \
            self.launch_queue[LAUNCH_BATCH:]
        for framework_id, info in batch:
            if self.core.is_terminal((framework_id, info.task_id)):
                continue
            self._launch(framework_id, info)

    def _launch(self, framework_id: str, info: TaskInfo) -> None:
        """containerizer.launch: the launch record first, then the supervisor."""
        self._write([checkpoint.launch_record(framework_id, info, info.task_id, [])])
        self.launches.add((framework_id, info.task_id))
        rng = self.world.rng
        now = self.world.now
        key = (framework_id, info.task_id)
        self.ledger.start(self.name, key, info.resources, now)
        self.world.log(self.name, "START", f"{info.task_id} {info.resources}")
        container = FakeContainer(framework_id, info, now + rng.uniform(1.0, 6.0),
                                  0 if rng.random() < 0.85 else 1)
        container.events.append({"seq": 1, "event": "started"})
        self.containers[key] = container

    def _consume(self, key: TaskKey) -> None:
        """Feed the supervisor's new events to the core, checkpointing the last seq."""
        container = self.containers.get(key)
        core = self.core
        if container is None or core is None:
            return
        last = self.consumed.get(key, 0)
        events = [e for raw in container.events
                  if (e := decode_event(raw)) is not None and e.seq > last]
        if not events:
            return
        total = Effects()
        now = self.world.now
        for event in events:
            total.extend(core.supervisor_event(key, event, now))
        self.consumed[key] = events[-1].seq
        self._apply(total, seq=(key, events[-1].seq))
        if any(isinstance(e, Exited) for e in events):
            del self.containers[key]

    def _core_connected(self, now: float) -> None:
        assert self.core is not None
        self._apply(self.core.connected(now))

    def _apply(self, fx: Effects, seq: tuple[TaskKey, int] | None = None) -> None:
        assert self.core is not None
        self._write_checkpoints(fx, seq)
        if fx.checkpoint_agent_id:
            self.agent_id = fx.checkpoint_agent_id
            self.world.log(self.name, "registered", fx.checkpoint_agent_id)
        self.launch_queue.extend(fx.launch)
        for key in fx.cancel:  # killed while its launch is still queued: never started
            if any((f, info.task_id) == key for f, info in self.launch_queue):
                self._apply(self.core.killed_unstarted(key, self.world.now))
        for key, signum in fx.signal:
            self._signal(key, signum)
        for msg, request_id in fx.messages:
            if self.conn is not None:
                if not isinstance(msg, Heartbeat):
                    self.world.log(self.name, "->", Lazy(_short, msg))
                self.outbox.append(encode(msg, request_id))
        for key in fx.forget:
            if key in self.launches:
                self.launches.discard(key)
                self._write([checkpoint.forget_record(*key)])
        if fx.reconnect and self.conn is not None and self.detector is not None:
            self.world.log(self.name, "master silent: reconnecting")
            self._send_outbox()
            self.conn.reconnect(self.detector.current())
            self._apply(self.core.connected(self.world.now))

    def _write_checkpoints(self, fx: Effects, seq: tuple[TaskKey, int] | None) -> None:
        batch = checkpoint.batch_records(fx.checkpoint, seq, self.launches.__contains__)
        self._write(batch)

    def _write(self, lines: list[LogLine]) -> None:
        self.task_log.extend(encode_line(key, record).encode() for key, record in lines)

    def _signal(self, key: TaskKey, signum: int) -> None:
        container = self.containers.get(key)
        if container is None or container.exited:
            return
        now = self.world.now
        delay = 0.0 if signum == SIGKILL else self.world.rng.uniform(0.0, 0.5)
        if now + delay < container.exit_at:
            container.exit_at = now + delay
            container.signal = signum

    def advance(self) -> None:
        """Supervisors run whether or not the agent does: tasks exit on their own."""
        now = self.world.now
        for (_, task_id), container in self.containers.items():
            if container.exited or container.exit_at > now:
                continue
            container.exited = True
            event: dict[str, Any] = {"seq": len(container.events) + 1, "event": "exited"}
            if container.signal is not None:
                event["signal"] = container.signal
            else:
                event["exit_code"] = container.exit_code
            container.events.append(event)
            self.ledger.end(self.name, (container.framework_id, task_id), now)
            self.world.log(self.name, "EXIT", f"{task_id} {event}")


# ===================================================================== frameworks
@dataclass(slots=True)
class Workload:
    """What the scripted scheduler still wants to do."""

    tasks_left: int = 12
    hold_probability: float = 0.15
    active: bool = True  # False once the simulation quiesces: no new launches


class FrameworkProc(_ClientProc):
    """A framework process: the driver core, its shell's rules and a scripted scheduler."""

    def __init__(self, world: World, name: str, session_timeout: float, ledger: Ledger,
                 tasks: int) -> None:
        self.world = world
        self.name = name
        self.session_timeout = session_timeout
        self.ledger = ledger
        self.workload = Workload(tasks_left=tasks)
        # durable (a real framework stores its id to fail over)
        self.framework_id = ""
        self.launched: dict[str, str] = {}  # task id -> agent id
        self.received: set[str] = set()  # offer ids ever delivered
        self.answered: set[str] = set()  # offer ids declined or used
        # per process
        self.incarnation = 0
        self.phase = "down"
        self.restart_at: float | None = 0.0
        self.core: DriverCore | None = None
        self.conn: ClientConn | None = None
        self.detector: SimDetector | None = None
        self.client: Any = None
        self.held: dict[str, tuple[Offer, float]] = {}
        self.delivered: set[tuple[str, str]] = set()
        self.next_kill = 0.0
        self.next_reconcile = 0.0
        self.outbox = []

    @property
    def key_prefix(self) -> str:
        return f"{self.name}-t"

    def boot(self) -> None:
        self.incarnation += 1
        self.world.log(self.name, "boot", self.framework_id or "new")
        self.client = self.world.client(self.session_timeout)
        self.detector = SimDetector(self.client)
        info = FrameworkInfo(name=self.name, framework_id=self.framework_id,
                             failover_timeout=120.0)
        self.core = DriverCore(info, self.world.new_id, subscribe_backoff=1.0,
                               subscribe_backoff_max=RETRY_MAX, kill_retry=2.0,
                               kill_retry_max=RETRY_MAX,
                               rng=random.Random(self.world.rng.getrandbits(64)),
                               instance=f"{self.name}-{self.incarnation}")
        self.held = {}
        self.delivered = set()
        self.conn = None
        self.phase = "waiting"

    # ----------------------------------------------------------------- steps
    def step(self) -> None:
        assert self.core is not None and self.detector is not None
        now = self.world.now
        if not self._connected(now):
            return
        assert self.conn is not None
        try:
            self._step(now)
        finally:
            self._send_outbox()

    def _step(self, now: float) -> None:
        assert self.core is not None and self.detector is not None and self.conn is not None
        address = self.detector.changed()
        if address is not None and address != self.conn.address:
            self.world.log(self.name, "follows leader", address)
            self._send_outbox()
            self.conn.reconnect(address)
            self._execute(self.core.connected(now))
        for envelope in self.conn.receive_all():
            if self.phase != "up" or self.core is None:
                return
            self._execute(self.core.handle(envelope.message, envelope.request_id, now))
        if self.phase != "up" or self.core is None:
            return
        self._timed_work(now)
        self._execute(self.core.tick(now))

    def _core_connected(self, now: float) -> None:
        assert self.core is not None
        self._execute(self.core.connected(now))

    def _execute(self, actions: list[Action]) -> None:
        for action in actions:
            if self.core is None or self.phase != "up":
                return
            if isinstance(action, Send):
                assert self.conn is not None
                self._check_ack(action.message)
                if not isinstance(action.message, Heartbeat):
                    self.world.log(self.name, "->", Lazy(_short, action.message))
                self.outbox.append(encode(action.message, action.request_id))
            elif isinstance(action, Call):
                getattr(self, f"on_{action.name}")(*action.args)
            elif isinstance(action, Reconnect):
                assert self.conn is not None and self.detector is not None
                self.world.log(self.name, "master silent: reconnecting")
                self._send_outbox()
                self.conn.reconnect(self.detector.current())
                self._execute(self.core.connected(self.world.now))
            elif isinstance(action, Abort):
                self.world.log(self.name, "ABORTED", action.reason)
                self.phase = "aborted"
                self.restart_at = None
            elif isinstance(action, FileReply):
                pass

    def _check_ack(self, msg: Message) -> None:
        if isinstance(msg, Acknowledge) and (msg.task_id, msg.uuid) not in self.delivered:
            raise Violation("acked_never_delivered",
                            f"{self.name} acknowledges {msg.task_id} uuid {msg.uuid} "
                            "that this driver was never given")

    def _request(self, msg: Message) -> None:
        assert self.core is not None
        self._execute(self.core.request(msg))

    # ----------------------------------------------------------------- scheduler
    def on_registered(self, framework_id: str, info: dict[str, Any]) -> None:
        self.framework_id = framework_id
        self.world.log(self.name, "registered", framework_id)

    def on_reregistered(self, info: dict[str, Any]) -> None:
        self.world.log(self.name, "reregistered")

    def on_disconnected(self) -> None:
        self.world.log(self.name, "disconnected")

    def on_error(self, message: str) -> None:
        self.world.log(self.name, "error", message[:120])

    def on_refused(self, refusal: Any) -> None:
        self.world.log(self.name, "refused", f"{refusal.code}: {refusal.message[:120]}")

    def on_offer_rescinded(self, offer_id: str) -> None:
        self.held.pop(offer_id, None)
        self.answered.add(offer_id)

    def on_resource_offers(self, offers: list[Offer]) -> None:
        rng = self.world.rng
        for offer in offers:
            self.received.add(offer.offer_id)
            roll = rng.random()
            if not self.workload.active or self.workload.tasks_left <= 0:
                self.decline(offer.offer_id, 1.0)
            elif roll < 0.55 * (1 - self.workload.hold_probability):
                self._launch(offer)
            elif roll < 0.55 + 0.45 * self.workload.hold_probability:
                self.held[offer.offer_id] = (offer, self.world.now + rng.uniform(0.5, 4.0))
            else:
                self.decline(offer.offer_id, round(rng.uniform(0.0, 3.0), 2))

    def decline(self, offer_id: str, seconds: float) -> None:
        self.answered.add(offer_id)
        self._request(Decline(framework_id=self.framework_id, offer_ids=[offer_id],
                              refuse_seconds=seconds))

    def _launch(self, offer: Offer) -> None:
        try:
            left = Resources.parse(offer.resources)
        except ResourceError:
            self.decline(offer.offer_id, 0.0)
            return
        tasks: list[TaskInfo] = []
        for _ in range(self.world.rng.randint(1, 3)):
            cpus = self.world.rng.choice((0.5, 1.0, 1.5))
            mem = self.world.rng.choice((64, 128, 256))
            need = Resources.parse(f"cpus:{cpus};mem:{mem}")
            if self.workload.tasks_left <= 0 or not left.contains(need):
                break
            left = left - need
            self.workload.tasks_left -= 1
            task_id = f"{self.key_prefix}{self.world.new_id()[-6:]}"
            tasks.append(TaskInfo(task_id=task_id, agent_id=offer.agent_id,
                                  resources=str(need), command="sim"))
            self.launched[task_id] = offer.agent_id
        self.answered.add(offer.offer_id)
        self._request(Accept(framework_id=self.framework_id, offer_ids=[offer.offer_id],
                             tasks=tasks, refuse_seconds=1.0))

    def _timed_work(self, now: float) -> None:
        for offer_id, (offer, until) in list(self.held.items()):
            if until <= now or not self.workload.active:
                del self.held[offer_id]
                if self.workload.active and self.world.rng.random() < 0.5:
                    self._launch(offer)
                else:
                    self.decline(offer_id, 1.0)
        if self.workload.active and now >= self.next_kill:
            self.next_kill = now + self.world.rng.uniform(2.0, 8.0)
            live = sorted(t for t in self.launched
                          if (self.framework_id, t) not in self.ledger.terminal)
            if live:
                task_id = self.world.rng.choice(live)
                self._request(Kill(framework_id=self.framework_id, task_id=task_id,
                                   agent_id=self.launched[task_id]))
        if not self.workload.active and now >= self.next_reconcile:
            self.next_reconcile = now + 3.0
            open_tasks = [ReconcileTask(task_id=t, agent_id=a)
                          for t, a in sorted(self.launched.items())
                          if (self.framework_id, t) not in self.ledger.terminal]
            if open_tasks:
                self._request(Reconcile(framework_id=self.framework_id, tasks=open_tasks))

    def on_status_update(self, status: TaskStatus) -> None:
        self.world.log(self.name, "status",
                       f"{status.task_id} {status.state} {status.reason} uuid={status.uuid[-6:]}")
        key = (status.framework_id or self.framework_id, status.task_id)
        if status.uuid:
            pair = (status.task_id, status.uuid)
            if pair in self.delivered:
                raise Violation("update_delivered_twice",
                                f"{self.name} got {pair} twice in one driver incarnation")
            self.delivered.add(pair)
            self.ledger.delivered.add(pair)
            self.ledger.delivered_uuids.add(status.uuid)
        if status.state in TERMINAL:
            verdict = _verdict(status)
            first = self.ledger.terminal.get(key)
            if first is None:
                self.ledger.terminal[key] = verdict
            elif first != verdict:
                raise Violation("two_terminal_states",
                                f"task {key} reported {first} and then {status.state} "
                                f"({status.reason}: {status.message})")
