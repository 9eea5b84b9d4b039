"""The master's I/O shell: socket, clock, log and signals around :class:`MasterCore`.

The loop is: wait for frames (or the next tick), decode each one (a bad frame gets an
error reply at once and touches nothing), feed the good ones to the core, tick, then
append the whole batch of records with one durable write, and only then send the
batch of messages. Draining many frames per iteration is what groups commits.
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import os
import resource
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import structlog
import zmq

from mesos_zmq.allocator.allocator import parse_min_allocatable
from mesos_zmq.auth.acls import Acls
from mesos_zmq.auth.credentials import Credentials
from mesos_zmq.auth.keys import KeyPair, load_secret
from mesos_zmq.auth.rate_limits import RateLimits
from mesos_zmq.auth.zap import ZapHandler, principal_of
from mesos_zmq.collector import tune_collector
from mesos_zmq.errors import AuthError, ConfigError, ProtocolError, ResourceError
from mesos_zmq.master import flags
from mesos_zmq.master.core import DeferredRead, MasterCore, MasterCoreConfig, Ready
from mesos_zmq.master.forked_reads import ForkedReads
from mesos_zmq.master.log import (
    DirectoryLog,
    MemoryLog,
    ReplicatedLog,
    SnapshotPolicy,
)
from mesos_zmq.master.loop_reads import LoopReads
from mesos_zmq.master.records import record_to_plain
from mesos_zmq.master.snapshots import HOLD_AFTER_START, BackgroundSnapshots
from mesos_zmq.master.state import HistoryLimits, MasterState, state_from
from mesos_zmq.protocol import (
    ASKED_REPLIES,
    DEFAULT_MAX_FRAME_BYTES,
    Envelope,
    Heartbeat,
    Message,
    Refused,
    decode_frame,
    encode,
    error_frame,
    peek_request_id,
    peek_reregistration,
    refusal,
    turn_sends,
)
from mesos_zmq.resources import validate_role
from mesos_zmq.transport import TRACKED_BYTES, ServerSocket

log = structlog.get_logger()

#: Messages handled before the loop ticks and commits (a batch frame's items each
#: count); bounds the latency of one turn.
MAX_BATCH = 2000
#: bytes of large replies (file data, state) one connection may leave unread before
#: further ones are withheld with an error (a few replies of the largest kind)
MAX_UNSENT_BYTES = 16 * 1024 * 1024
#: the shortest time between two runs of the core's timers (heartbeats due, expiries,
#: retries, allocation): what they do waits at most this long
TICK_EVERY = 0.005
#: the shortest time between two wake-ups of a loop that is keeping up: frames trickling
#: in one at a time (an idle cluster's heartbeats) are then read, handled and answered
#: a few at a time, so the fixed cost of a turn (poll, the leadership check, flush, and
#: ZeroMQ's hand-offs between its I/O thread and this one) is paid once per batch, for
#: at most this much latency. Only a turn that read at most COALESCE_BELOW frames waits:
#: under load (a turn reads dozens) waiting only delayed work that was there to do
COALESCE = 0.002
COALESCE_BELOW = 16
#: the frame every agent and framework sends as a heartbeat (no request id, no epoch)
HEARTBEAT_FRAME = encode(Heartbeat())


@dataclass(slots=True)
class MasterConfig:
    """A master's settings; defaults, ranges and help of its flags are in
    :mod:`mesos_zmq.master.flags` (the CLI's options are built from there)."""

    ip: str = flags.default("ip")
    port: int = flags.default("port")
    work_dir: str = flags.default("work_dir")
    registry: str = flags.default("registry")  # replicated_log (directory) | in_memory
    heartbeat_interval: float = flags.HEARTBEAT_INTERVAL
    missed_heartbeats: int = flags.MISSED_HEARTBEATS
    max_agent_heartbeats: float = flags.MAX_AGENT_HEARTBEATS
    allocation_interval: float = flags.ALLOCATION_INTERVAL
    reregister_timeout: float = flags.REREGISTER_TIMEOUT
    roles: tuple[str, ...] | None = None
    weights: dict[str, float] = field(default_factory=dict)
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    fsync: bool = flags.default("fsync")
    master_id: str = ""
    offer_timeout: float | None = flags.default("offer_timeout")
    fair_sharing_excluded: tuple[str, ...] = ()
    min_allocatable: str = flags.default("min_allocatable")
    #: role -> alternatives text, e.g. {"ml": "cpus:1;mem:1024|gpus:1"}
    role_min_allocatable: dict[str, str] = field(default_factory=dict)
    #: zk://[user:pass@]hosts/path: elect a leader and replicate the log in ZooKeeper
    zk: str = flags.default("zk")
    zk_session_timeout: float = flags.ZK_SESSION_TIMEOUT
    #: the masters' ZooKeeper digest credentials file (see mesos_zmq.zk_auth)
    zk_credentials: str | None = flags.default("zk_credentials")
    snapshot_every: int = flags.SNAPSHOT_EVERY
    snapshot_bytes: int = flags.SNAPSHOT_BYTES
    snapshot_interval: float = flags.SNAPSHOT_INTERVAL
    allocator_sorter: str = flags.ALLOCATOR_SORTER
    #: the masters' CurveZMQ key pair (.key_secret file); None: no encryption, no auth
    key: str | None = flags.default("key")
    #: who may connect (see mesos_zmq.auth.credentials); required with ``key``
    credentials: str | None = flags.default("credentials")
    #: who may do what (see mesos_zmq.auth.acls); only with ``key``
    acls: str | None = flags.default("acls")
    #: messages a second per principal (see mesos_zmq.auth.rate_limits); only with ``key``
    rate_limits: str | None = flags.default("rate_limits")
    insecure: bool = flags.default("insecure")
    max_completed_tasks_per_framework: int = flags.MAX_COMPLETED_TASKS_PER_FRAMEWORK
    max_completed_task_age: float = flags.MAX_COMPLETED_TASK_AGE
    max_completed_frameworks: int = flags.MAX_COMPLETED_FRAMEWORKS
    max_completed_tasks: int = flags.MAX_COMPLETED_TASKS

    @property
    def history(self) -> HistoryLimits:
        """How much completed-task history the state keeps (also on replay)."""
        return HistoryLimits(self.max_completed_tasks_per_framework, self.max_completed_tasks,
                             self.max_completed_task_age, self.max_completed_frameworks)

    @property
    def snapshot_policy(self) -> SnapshotPolicy:
        return SnapshotPolicy(self.snapshot_every, self.snapshot_bytes, self.snapshot_interval)

    def validate(self) -> None:
        """Refuse out-of-range settings with the flag's name (also when the config was
        built in code, not from the command line)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        problems = flags.range_problems(values)
        if problems:
            raise ConfigError(problems[0])
        for role, weight in self.weights.items():
            if not weight > 0:
                raise ConfigError(f"weight of role {role!r} must be positive, got {weight}")
        if self.min_allocatable:
            try:
                parse_min_allocatable(self.min_allocatable)
            except (ValueError, ResourceError) as exc:
                raise ConfigError(f"--min-allocatable-resources: {exc}") from None
        for role, text in self.role_min_allocatable.items():
            try:
                validate_role(role)
                parse_min_allocatable(text)
            except (ValueError, ResourceError) as exc:
                raise ConfigError(f"--role-min-allocatable-resources {role}: {exc}") from None
        if bool(self.key) != bool(self.credentials):
            raise ConfigError("--key and --credentials go together: the key proves this "
                              "master to clients, the credentials say which clients may "
                              "connect")
        if self.rate_limits and not self.key:
            raise ConfigError("--rate-limits needs --key and --credentials: limits are "
                              "per principal, and only keys prove who a client is")
        if self.acls and not self.key:
            raise ConfigError("--acls needs --key and --credentials: rules name principals, "
                              "and only keys prove who a client is")
        if not self.key and not self.insecure and not loopback(self.ip):
            raise ConfigError(
                f"refusing to listen on {self.ip} without keys: anyone who can reach the "
                "port would control the cluster. Give --key and --credentials (see "
                "'mesos-zmq keygen' and the README's 'Secure a cluster'), or --insecure")

    def load_rate_limits(self) -> RateLimits | None:
        if not self.rate_limits:
            return None
        try:
            return RateLimits.load(self.rate_limits)
        except AuthError as exc:
            raise ConfigError(str(exc)) from None

    def load_acls(self) -> Acls | None:
        if not self.acls:
            return None
        try:
            return Acls.load(self.acls)
        except AuthError as exc:
            raise ConfigError(str(exc)) from None

    def load_auth(self) -> tuple[KeyPair, Credentials] | None:
        """The key pair and credentials, read now (None without keys)."""
        if not self.key or not self.credentials:
            return None
        try:
            return load_secret(self.key), Credentials.load(self.credentials)
        except AuthError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def bind_address(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"tcp://{host}:{self.port}"


def loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def advertised_address(config: MasterConfig, port: int | None = None) -> str:
    """Where clients reach this master: the bind address, with a wildcard (0.0.0.0,
    ::) replaced by the host name."""
    host = config.ip
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"tcp://{host}:{config.port if port is None else port}"


def new_id() -> str:
    return uuid.uuid4().hex


def stable_master_id(work_dir: str) -> str:
    """This master's id, kept in its work dir so that a restart keeps it (operators and
    logs name a master by it). A work dir that cannot be written gets a fresh id."""
    path = Path(work_dir) / "master_id"
    try:
        text = path.read_text().strip()
        if text:
            return text
    except OSError:
        pass
    fresh = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(fresh + "\n")
        os.replace(tmp, path)
    except OSError:
        pass
    return fresh


def _core_config(config: MasterConfig, master_id: str) -> MasterCoreConfig:
    """The core's settings from the master's (ACL and rate-limit files read here: a
    bad one stops the master before it listens or publishes anything)."""
    return MasterCoreConfig(
        master_id=master_id.split("-")[-1],
        heartbeat_interval=config.heartbeat_interval,
        missed_heartbeats=config.missed_heartbeats,
        max_agent_heartbeats=config.max_agent_heartbeats,
        allocation_interval=config.allocation_interval,
        reregister_timeout=config.reregister_timeout,
        roles=config.roles,
        weights=tuple(config.weights.items()),
        offer_timeout=config.offer_timeout,
        fair_sharing_excluded=config.fair_sharing_excluded,
        min_allocatable=None if not config.min_allocatable else tuple(
            tuple(alt.items()) for alt in parse_min_allocatable(config.min_allocatable)),
        role_min_allocatable=tuple(
            (role, tuple(tuple(alt.items()) for alt in parse_min_allocatable(text)))
            for role, text in config.role_min_allocatable.items()),
        allocator_sorter=config.allocator_sorter,
        acls=config.load_acls(),
        rate_limits=config.load_rate_limits(),
        defer_reads=True,
    )


class MasterServer:
    """Owns the socket, the log and the core; ``serve_forever`` runs until stopped."""

    def __init__(
        self,
        config: MasterConfig,
        replicated_log: ReplicatedLog | None = None,
        state: MasterState | None = None,
        guard: Callable[[], str | None] | None = None,
        epoch: int | None = None,
        standbys: Callable[[], list[dict[str, Any]]] | None = None,
        on_listening: Callable[[str], None] | None = None,
    ) -> None:
        """``state``: already recovered from ``replicated_log`` (a hot standby's copy).

        ``guard`` is asked every loop turn: "pause" stops handling messages and
        committing (ZooKeeper connection in doubt), "exit" stops the server.

        ``on_listening(address)`` is called once the socket is bound, before the core
        is built from ``state`` (0.25 s at 100,000 tasks): a new leader publishes its
        record there, so agents connect and send their re-registrations (which wait in
        ZeroMQ) while it builds, rather than after. If it raises, nothing is left open.
        """
        config.validate()
        self._guard = guard
        self.config = config
        self.master_id = config.master_id or stable_master_id(config.work_dir)
        if replicated_log is not None:
            self.log: ReplicatedLog = replicated_log
        elif config.registry == "in_memory":
            self.log = MemoryLog()
        else:
            self.log = DirectoryLog(Path(config.work_dir) / "registry", fsync=config.fsync)
        recovered_records = 0
        if state is None:
            recovered = self.log.recover()
            state = state_from(recovered.snapshot, recovered.records, config.history)
            recovered_records = len(recovered.records)
        core_config = _core_config(config, self.master_id)
        self.context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        auth = config.load_auth()
        self.zap: ZapHandler | None = None
        if auth is not None:
            self.zap = ZapHandler(self.context, auth[1])
            log.info("CurveZMQ on", credentials=len(auth[1]), key=config.key)
        try:
            self.server = ServerSocket(self.context, config.bind_address,
                                       config.max_frame_bytes,
                                       key=None if auth is None else auth[0])
        except ConfigError:
            if self.zap is not None:
                self.zap.stop()
            raise
        self.address = self.server.address
        try:
            if on_listening is not None:
                on_listening(self.address)
            self.core = MasterCore(core_config, new_id, state, now=time.monotonic())
        except BaseException:
            self.server.close()
            if self.zap is not None:
                self.zap.stop()
            self.context.term()
            raise
        self.core.wall_offset = time.time() - time.monotonic()
        # Every message this master sends carries its term, so clients can tell a
        # deposed leader from the current one.
        self.epoch = epoch if epoch is not None else self.log.claim_epoch()
        self._reads: ForkedReads[DeferredRead] = ForkedReads(self._answer_reads,
                                                             self._read_failed)
        #: reads cheap enough to answer in the loop (pages; state from a cache)
        self._loop_reads = LoopReads()
        self._standbys = standbys
        shown = advertised_address(config, int(self.address.rsplit(":", 1)[1]))
        self.core.facts.update(id=self.master_id, pid=os.getpid(), address=shown,
                               epoch=self.epoch, leader=shown,
                               replicated=config.zk != "", standbys=[])
        self._stopping = False
        started = time.monotonic()
        self._snapshots = BackgroundSnapshots(
            self.log, config.snapshot_policy, started,
            hold_until=started + HOLD_AFTER_START if state.agents else 0.0)
        log.info(
            "master started",
            master_id=self.master_id,
            address=self.address,
            epoch=self.epoch,
            frameworks=len(state.frameworks),
            agents=len(state.agents),
            active_tasks=len(state.tasks),
            recovered_records=recovered_records,
        )

    def stop(self) -> None:
        self._stopping = True

    #: the process exit status (70 after a handler failure it could not undo)
    exit_code = 0
    #: SIGHUP asked for the credentials to be read again
    _reload_asked = False
    _flushes = 0
    #: the last moment the input queue was found empty (see MasterCore.tick)
    _heard_until: float | None = None
    _last_tick = 0.0
    #: frames the last turn read, when it read all there was
    _last_batch = 0

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        poller.register(self.server.socket, zmq.POLLIN)
        tick_every = min(0.05, self.config.heartbeat_interval / 4)
        polled: set[int] = set()  # the pipes of forked children (reads, snapshots)
        try:
            while not self._stopping:
                events = dict(poller.poll(int(tick_every * 1000)))
                self._note_stall(time.monotonic(), tick_every)
                # Asked after the wait, so a process paused inside poll() checks that it
                # still leads before it handles what queued up meanwhile.
                verdict = self._guard() if self._guard is not None else None
                if verdict == "exit":
                    break
                if verdict == "pause":
                    time.sleep(tick_every)
                    continue
                if self._reload_asked:
                    self.reload_credentials()
                ready = Ready()
                now = time.monotonic()
                self.core.wall_offset = time.time() - now
                if self._standbys is not None:
                    self.core.facts["standbys"] = self._standbys()
                # Everything that had arrived was read by ``now`` unless this batch
                # stopped at MAX_BATCH: silence is judged only up to that moment.
                caught_up = not events or self._drain(ready, now)
                if caught_up:
                    # After a stall (the process paused: SIGSTOP, swap, a VM frozen) the
                    # peers' messages are not all queued yet (new connections still
                    # handshake; agents that gave up on us wait out a back-off): silence
                    # is judged up to the stall's start until each peer has had a whole
                    # timeout since we are back.
                    self._heard_until = self._judged_at(now)
                # Timers run at most every TICK_EVERY: a busy loop turns a thousand
                # times a second for a few messages each, and a tick's fixed cost was
                # then most of an idle master's time (10,000 agents).
                tick_at = time.monotonic()
                if tick_at - self._last_tick >= TICK_EVERY:
                    self._last_tick = tick_at
                    ready.extend(self.core.tick(tick_at, self._heard_until))
                # And once more before speaking: a pause while handling the batch.
                verdict = self._guard() if self._guard is not None else None
                while verdict == "pause" and self._guard is not None:
                    time.sleep(tick_every)
                    verdict = self._guard()
                if verdict == "exit":
                    break
                self._flush(ready)
                polled = self._collect_children(poller, polled)
                if caught_up and events and self._last_batch <= COALESCE_BELOW:
                    rest = now + COALESCE - time.monotonic()
                    if rest > 0:
                        time.sleep(rest)
        finally:
            self.close()

    #: the loop's last turn (for stalls), the stall's start and until when it is excused
    _loop_at: float | None = None
    _stalled_at = 0.0
    _stall_grace_until = 0.0

    def _note_stall(self, now: float, tick_every: float) -> None:
        """A turn that came much later than the poll's timeout: the process stood still
        (see serve_forever); peers are not judged silent for that time, nor until each
        has had a full timeout since."""
        last, self._loop_at = self._loop_at, now
        if last is None or now - last < max(1.0, 20 * tick_every):
            return
        interval = max(self.config.heartbeat_interval, self.core.agent_heartbeat_interval)
        limit = interval * self.config.missed_heartbeats
        # A stall within the grace of another keeps its start, but no further back than
        # a limit before this one: stalls that keep coming (a slow disk, throttling)
        # must not hold every judgement back for good (a dead agent never removed).
        self._stalled_at = (last if now >= self._stall_grace_until
                            else max(self._stalled_at, last - limit))
        self._stall_grace_until = now + limit
        log.warning("the master stood still: peers are not judged silent for it",
                    stalled_s=round(now - last, 3),
                    grace_s=round(self._stall_grace_until - now, 3))

    def _judged_at(self, now: float) -> float:
        """Up to when peers' silence (and deadlines) may be judged, everything that
        had arrived having been read at ``now``: ``now``, or the stall's start while
        its grace lasts (see :meth:`_note_stall`)."""
        return now if now >= self._stall_grace_until else min(now, self._stalled_at)

    def _drain(self, ready: Ready, now: float) -> bool:
        """Read and handle frames until MAX_BATCH messages; True if none was left unread."""
        read = 0
        while read < MAX_BATCH:
            try:
                identity, frames, user = self.server.recv_nowait()
            except zmq.Again:
                self._last_batch = read
                return True
            read += 1
            if (len(frames) == 1 and frames[0] == HEARTBEAT_FRAME
                    and (self.zap is None or (user and self.zap.still_valid(user)))
                    and self.core.heard(identity, now, principal_of(user))):
                # Heartbeats are most of what an idle cluster sends (5,000 a second at
                # 10,000 agents): a bound peer's is taken without decoding it.
                continue
            if len(frames) != 1:
                self.server.send(
                    identity,
                    error_frame(ProtocolError("malformed", "expected exactly one frame")),
                )
                continue
            frame = frames[0]
            if self.zap is not None and not (user and self.zap.still_valid(user)):
                # No ZAP verdict, or a key since removed from the credentials: one
                # answer per frame, before anything in it is decoded or validated.
                self.core.count("refused_unauthenticated")
                self.server.send(identity, error_frame(ProtocolError(
                    "unauthorized", "this connection's key is not (or no longer) in "
                    "the master's credentials: connect again with a valid key"),
                    peek_request_id(frame) if len(frame) <= self.config.max_frame_bytes
                    else ""))
                continue
            try:
                if len(frame) <= self.config.max_frame_bytes:
                    again = self._repeated(identity, frame, user, now)
                    if again is not None:
                        ready.extend(again)
                        continue
                items = decode_frame(frame, self.config.max_frame_bytes)
            except ProtocolError as exc:
                whole = Refused(exc, peek_request_id(frame) if exc.code != "oversized"
                                else "")
                self._count_refused(identity, [whole])
                self._answer_refused(identity, whole, ready)
                continue
            # A batch's messages are handled in order, each as if it had come alone: a
            # refusal goes out in its place among the replies (through ``ready``, as they
            # do), not ahead of the replies to what came before it.
            read += len(items) - 1
            refused = [item for item in items if isinstance(item, Refused)]
            if refused:
                self._count_refused(identity, refused)
            for item in items:
                if isinstance(item, Refused):
                    self._answer_refused(identity, item, ready)
                elif not self._handle(identity, item, user, ready, now):
                    return True
        return False

    def _count_refused(self, identity: bytes, refused: list[Refused]) -> None:
        """Messages of one frame that did not decode: each counted, the frame logged
        once; nothing changes."""
        exc = refused[0].error
        log.info("refused frame", code=exc.code, error=exc.message[:200],
                 refused=len(refused))
        for item in refused:
            code = item.error.code
            self.core.counters[f"refused_{code}"] = (
                self.core.counters.get(f"refused_{code}", 0) + 1)

    @staticmethod
    def _answer_refused(identity: bytes, item: Refused, ready: Ready) -> None:
        ready.messages.append((identity, refusal(item), item.request_id))

    def _handle(self, identity: bytes, envelope: Envelope, user: str | None, ready: Ready,
                now: float) -> bool:
        """One decoded message through the core; False when the master must stop."""
        try:
            result = self.core.handle(identity, envelope.message, envelope.request_id, now,
                                      principal_of(user))
        except Exception:
            # A bug in one handler must not take the cluster down, nor leave half of
            # its work behind: it commits nothing and sends nothing (see
            # _forget_failed_handler) and its sender gets ``internal``.
            log.exception("handler failed", type=envelope.message.TYPE,
                          principal=user or None)
            # after the replies to what came before it (the batch before it stands)
            self._answer_refused(identity, Refused(
                ProtocolError("internal", "the master failed to handle this message"),
                envelope.request_id), ready)
            if not self._forget_failed_handler(ready, now):
                self._stopping = True
                self.exit_code = 70  # EX_SOFTWARE: the service manager restarts us
                return False
            return True
        ready.extend(result)
        return True

    def _repeated(self, identity: bytes, frame: bytes, user: str | None,
                  now: float) -> Ready | None:
        """An agent's repeated re-registration, answered from its envelope and agent id
        alone (see MasterCore.reregistered_again); None for anything else."""
        peeked = peek_reregistration(frame)
        if peeked is None:
            return None
        if self.zap is not None and not (user and self.zap.still_valid(user)):
            return None
        request_id, agent_id = peeked
        return self.core.reregistered_again(identity, agent_id, request_id, now,
                                            principal_of(user))

    def _forget_failed_handler(self, ready: Ready, now: float) -> bool:
        """Undo what a failed handler did: rebuild the core from the log plus the records
        of this batch that came before it (as a restarted master would, so everyone
        re-registers). The state afterwards equals a replay of what is logged.

        A log that cannot be re-read while serving (ZooKeeper: a standby holds the same
        state and takes over) makes this master exit instead; returns False then.
        """
        if not getattr(self.log, "rereadable", False):
            log.error("a handler failed: leaving so that a standby or a restart takes "
                      "over from the log")
            return False
        recovered = self.log.recover()
        state = state_from(recovered.snapshot, recovered.records, self.config.history)
        for record in ready.records:
            state.apply(record)
        old = self.core
        self.core = MasterCore(old.config, old.new_id, state, now=now)
        self.core.wall_offset = old.wall_offset
        self.core.facts = old.facts
        self.core.counters = old.counters
        self.core.reregistered = old.reregistered  # agents back, not yet logged
        self.core.count("handler_failures")
        log.warning("the master core was rebuilt from its log after a handler failure; "
                    "agents and frameworks re-register")
        return True

    def _flush(self, ready: Ready) -> None:
        self._sweep_tracked()
        if ready.records:
            self.log.append([record_to_plain(r) for r in ready.records])
        now = time.monotonic()
        # Forked after the records above are appended: the child's state is what the
        # log holds up to its mark.
        self._snapshots.start(self.core.state.snapshot, now)
        for peer, frame, msg, request_id in turn_sends(self._encoded(ready.messages)):
            if msg is None:
                self._send(peer, frame, False, "batch", None)
            else:
                self._send(peer, frame, isinstance(msg, ASKED_REPLIES), msg.TYPE,
                           request_id)
        if ready.reads:
            # Answered (here or by a child forked) after the records above are durable:
            # a read shows nothing that could still be lost.
            self._answer_in_loop(*self._loop_reads.take(self.core, ready.reads, now,
                                                        self.epoch), now)

    def _encoded(self, messages: list[tuple[bytes, Message, str]],
                 ) -> Iterator[tuple[bytes, Message, str, bytes]]:
        # The same (frozen) message to many peers, heartbeats above all, is encoded once.
        last: tuple[Message | None, str, bytes] = (None, "", b"")
        for peer, msg, request_id in messages:
            if msg is last[0] and request_id == last[1]:
                frame = last[2]
            else:
                frame = encode(msg, request_id, self.epoch)
                last = (msg, request_id, frame)
            yield peer, msg, request_id, frame

    def _send(self, peer: bytes, frame: bytes, asked: bool, kind: str,
              request_id: str | None) -> None:
        """``request_id`` None: read from the frame if it must be answered otherwise."""
        if asked or len(frame) >= TRACKED_BYTES:
            unsent = self.server.unsent_bytes(peer)
            if unsent and unsent + len(frame) > MAX_UNSENT_BYTES:
                if request_id is None:
                    request_id = peek_request_id(frame)
                # A peer that asks and never reads would grow this process without
                # bound (300 unread 1 MiB file reads: +300-590 MB): it gets a short
                # error instead, and what it has not read stays at most the cap.
                self.core.count("replies_withheld")
                frame = error_frame(ProtocolError(
                    "unread_replies", f"a {kind} reply of {len(frame)} bytes was "
                    f"withheld: {unsent} bytes sent to this connection are still "
                    f"unread (at most {MAX_UNSENT_BYTES}): read them, then ask again"),
                    request_id)
        self.server.send(peer, frame, track=asked)

    # ----------------------------------------------------------------- reads off the loop
    def _answer_reads(self, reads: Sequence[DeferredRead]) -> list[tuple[bytes, bytes]]:
        """In a forked child: the frames answering ``reads``, from its image."""
        now = time.monotonic()
        frames = []
        for read in reads:
            ready = self.core.answer_read(read, now)
            frames += [(peer, encode(msg, rid, self.epoch)) for peer, msg, rid in ready.messages]
        return frames

    def _answer_in_loop(self, answers: list[tuple[bytes, bytes]],
                        forked: list[DeferredRead], now: float) -> None:
        """Send what the loop answered itself; hand the rest to a reader child."""
        for peer, frame in answers:
            self.core.count("reads_answered_in_loop")
            self._send(peer, frame, True, "read", None)
        if forked:
            for peer, frame in self._reads.submit(forked):
                self.server.send(peer, frame)
            self._reads.start(now)

    def _read_failed(self, read: DeferredRead, why: str) -> tuple[bytes, bytes]:
        return read.peer, error_frame(ProtocolError(
            "internal", f"the {read.message.TYPE} answer could not be built: {why}"),
            read.request_id)

    def _collect_children(self, poller: zmq.Poller, polled: set[int]) -> set[int]:
        """Send what a reader child has finished, install what a snapshot child built;
        keep the pipes of those still at work in the poller."""
        now = time.monotonic()
        for peer, frame in self._reads.collect(now):
            self.core.count("reads_answered_off_loop")
            self._send(peer, frame, True, "read", None)
        self._answer_in_loop(*self._loop_reads.turn(self.core, now, self.epoch), now)
        self._reads.start(now)
        if self._snapshots.collect(now):
            self.core.count("snapshots_written")
        fds = {fd for fd in (self._reads.fileno(), self._snapshots.fileno(),
                             self._loop_reads.fileno()) if fd is not None}
        for fd in polled - fds:
            poller.unregister(fd)
        for fd in fds - polled:
            poller.register(fd, zmq.POLLIN)
        return fds

    def _sweep_tracked(self) -> None:
        self._flushes += 1
        if self._flushes % 100 == 0:
            self.server.sweep()

    def request_reload(self) -> None:
        """From the SIGHUP handler: the loop re-reads the credentials on its next turn
        (nothing is read inside a signal handler, which may land in any handler)."""
        self._reload_asked = True

    def reload_credentials(self) -> None:
        """Re-read --credentials: connections are judged by the new file from now on; a
        file that does not load leaves the old one in force."""
        self._reload_asked = False
        if self.zap is None or not self.config.credentials:
            return
        try:
            credentials = Credentials.load(self.config.credentials)
        except Exception as exc:  # whatever is in the file, the master keeps serving
            log.error("credentials not reloaded", error=str(exc))
            return
        self.zap.reload(credentials)
        log.info("credentials reloaded", credentials=len(credentials))

    def close(self) -> None:
        self._reads.close()
        self._loop_reads.close()
        self._snapshots.close()
        self.server.close()
        self.log.close()
        if self.zap is not None:
            self.zap.stop()
        self.context.term()


def raise_descriptor_limit() -> int:
    """Take the hard limit on open files as the soft one, and return it.

    Every connected agent, framework and CLI holds one descriptor in this process, and
    the usual soft limit (1,024) would cap a cluster at about a thousand agents: the
    connections past it fail in ZeroMQ's I/O thread, out of sight. The hard limit is the
    operator's to set (the systemd units say LimitNOFILE=65536).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the limit on open files", soft=soft, hard=hard,
                        error=str(exc))
    if soft != resource.RLIM_INFINITY and soft < 65536:
        log.info("open files limited: at most about this many agents and frameworks "
                 "can connect (raise LimitNOFILE / ulimit -n for more)", limit=soft)
    return int(soft)


@contextlib.contextmanager
def building_long_lived() -> Iterator[None]:
    """Build what the master holds for good (its state, recovered from the log or
    handed over by a standby, and the core over it) without the cyclic garbage
    collector, then take it all out of the collector's sight.

    A full collection walks every tracked object: 0.2 to 0.4 s at 100,000 tasks. One
    ran while a new leader built its core (0.25 s became 0.48), and more would while
    the agents re-register. The state lives as long as the master, so frozen it costs
    nothing (and children forked for reads and snapshots copy fewer pages, since a
    collection no longer touches them). Only for the daemon's process: frozen objects
    are never collected, so a test process that builds many masters must not use this.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def run_master(config: MasterConfig) -> int:
    """Run a master until SIGINT/SIGTERM; returns the process exit code."""
    raise_descriptor_limit()
    tune_collector()
    with building_long_lived():
        server = MasterServer(config)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("master stopping", signal=signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, lambda signum, frame: server.request_reload())
    server.serve_forever()
    log.info("master stopped")
    return server.exit_code
