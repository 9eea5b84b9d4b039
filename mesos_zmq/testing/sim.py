"""A deterministic, seeded simulation of a whole cluster (GitHub issue 9).

Theory of operation
-------------------
One thread, one seeded :class:`random.Random`, one simulated clock. The REAL cores
run inside step functions that copy their shells (:mod:`mesos_zmq.testing.sim_procs`):
2-3 master replicas (``MasterCore`` + the real ``ZooKeeperLog`` and ``Contender`` on an
in-memory ZooKeeper, :mod:`mesos_zmq.testing.fakezk`, each replica its own session),
agents (``AgentCore`` + a fake containerizer whose tasks run for a random time and
exit) and frameworks (``DriverCore`` + a scripted scheduler). Messages cross a
simulated ZeroMQ network (:mod:`mesos_zmq.testing.sim_net`, whose docstring states the
fault model) as real msgpack envelopes, so the real codec is exercised.

A run is ``steps`` steps of ``dt`` simulated seconds. Each step: advance the clock,
expire ZooKeeper sessions not heard from, let task supervisors finish tasks, inject
faults (a separate random stream, so that disabling one fault does not reshuffle the
others), step every live process in a seeded random order, run the queued ZooKeeper
watch callbacks, check the invariants. The last ``quiesce`` steps inject no fault and
the schedulers stop launching; the run ends with the quiescence checks.

Faults, each with a seeded probability per step: crash of any master (between steps,
or after its log append but before it sends), of an agent (its checkpoints and its
tasks survive), of a framework (it re-subscribes with its id); a PAUSE of the leader
past its session timeout (it then resumes on its stale view); a forced snapshot and
compaction by the leader; a standby that stops tailing for a while; a connection
break (in-flight messages lost); a partition of one client.

Invariants, judged from the simulator's own :class:`~mesos_zmq.testing.sim_net.Ledger`:

(a) no agent runs tasks whose resources exceed its total, and the serving leader's
    own accounting (outstanding offers + active tasks per agent) fits the agent;
(b) no task is started twice by any agent;
(c) no task is reported to its scheduler with two different terminal states;
(d) no update reaches one driver twice, and every acknowledgement an agent or the
    master receives is for an update some scheduler was given;
(e) after quiescence: every task ended, every launched task's scheduler heard a
    terminal state, the leader holds no active task, and every offer the leader holds
    was delivered to its framework and not declined or used (no leaked offers);
(f) the serving leader's durable state equals a replay of the log in ZooKeeper
    (checked after its flushes);
(g) after quiescence a leader record exists, names the serving leader, and every
    live agent and framework has found it.

A violation raises :class:`~mesos_zmq.testing.sim_net.Violation`; :func:`run` turns it
into a :class:`Failure` with the seed and the last events of the trace, and
:func:`shrink` replays the seed with faults disabled one by one, keeping only those
needed for the same violation. Set ``PYTHONHASHSEED`` for replays across processes
(the cores iterate sets of strings); ``tools/simulate.py`` does.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from mesos_zmq.detector import LEADER_NODE
from mesos_zmq.master.records import PlainRecord
from mesos_zmq.master.state import MasterState, replay, state_from
from mesos_zmq.master.zk_log import RETAIN, ZooKeeperLog
from mesos_zmq.resources import Resources
from mesos_zmq.tasks import TERMINAL, TaskState
from mesos_zmq.testing.fakezk import FakeZooKeeper
from mesos_zmq.testing.sim_net import (
    CLUSTER_PATH,
    Ledger,
    Network,
    TraceEntry,
    Violation,
    World,
)
from mesos_zmq.testing.sim_procs import (
    AgentProc,
    FrameworkProc,
    MasterReplica,
    MasterTuning,
)

_P = TypeVar("_P", MasterReplica, AgentProc)

#: fault kind -> probability per step during the fault phase
FAULTS: dict[str, float] = {
    "master_crash": 0.008,
    "crash_after_commit": 0.004,
    "leader_pause": 0.004,
    "agent_crash": 0.006,
    "agent_shrink": 0.003,
    "agent_stop": 0.004,
    "framework_crash": 0.006,
    "compact": 0.015,
    "slow_standby": 0.01,
    "conn_break": 0.01,
    "partition": 0.004,
}
AGENT_RESOURCES = ("cpus:4;mem:1024", "cpus:2;mem:2048", "cpus:3;mem:512", "cpus:2;mem:1024")


@dataclass(frozen=True, slots=True)
class Scripted:
    """A fault forced at time ``at`` (targeted scenarios)."""

    at: float
    kind: str  # a FAULTS kind, or leader_crash / kill_next_leader / decline_then_crash


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int = 0
    steps: int = 300
    dt: float = 0.25
    #: the last ``quiesce`` steps inject no fault and launch no task
    quiesce: int = 140
    masters: int | None = None  # None: 2 or 3, chosen by the seed
    agents: int = 3
    frameworks: int = 2
    tasks_per_framework: int = 12
    #: how often the scripted scheduler holds an offer for a while
    hold_probability: float = 0.15
    faults: frozenset[str] = frozenset(FAULTS)
    #: multiplies every fault probability
    intensity: float = 1.0
    scripted: tuple[Scripted, ...] = ()
    #: numbers of random faults to skip (for shrinking)
    disabled: frozenset[int] = frozenset()
    trace_limit: int | None = 200
    #: check invariant (f) after every n-th flush of the leader
    verify_every: int = 1
    session_timeout: float = 2.0


@dataclass(slots=True)
class Failure:
    seed: int
    name: str
    message: str
    time: float
    step: int
    trace: list[str]
    faults: list[str] = field(default_factory=list)

    def report(self) -> str:
        head = [f"seed={self.seed} FAILED {self.name} at t={self.time:.2f} (step {self.step})",
                f"  {self.message}", f"  faults injected: {', '.join(self.faults) or 'none'}",
                "  trace (last events):"]
        return "\n".join(head + [f"    {line}" for line in self.trace])


@dataclass(slots=True)
class Result:
    seed: int
    steps: int
    failure: Failure | None
    trace: list[str]
    faults: list[str]

    @property
    def ok(self) -> bool:
        return self.failure is None


def format_entry(entry: TraceEntry) -> str:
    at, who, what, detail = entry
    text = f"{at:8.2f} {who:>4} {what}"
    return f"{text} {detail}" if detail != "" else text


def _pick_up(procs: Sequence[_P], pick: int) -> _P | None:
    """The ``pick``-th (modulo) of the processes that are up, or None when none is."""
    live = [p for p in procs if p.phase != "down"]
    return live[pick % len(live)] if live else None


class Simulation:
    """One seeded run; see the module docstring."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.fault_rng = random.Random(config.seed * 7919 + 17)
        rng = random.Random(config.seed)
        self.world = World(config.seed, rng, FakeZooKeeper(lambda: self.world.now),
                           trace=deque(maxlen=config.trace_limit))
        self.world.net = Network(self.world)
        self.ledger = Ledger()
        # How many compacted entries the log keeps: few, so that lagging standbys
        # meet compaction (the reload path), or the product's default (the read-on path).
        tuning = MasterTuning(session_timeout=config.session_timeout,
                              retain=rng.choice((0, 2, RETAIN)))
        count = config.masters or rng.choice((2, 3))
        self.masters = [MasterReplica(self.world, f"m{i}", tuning) for i in range(count)]
        for master in self.masters:
            master.on_flush = self._after_flush
            master.on_leader = self._after_take_over
            master.on_snapshot = self._after_snapshot
        self.agents = [AgentProc(self.world, f"a{i}", AGENT_RESOURCES[i % 4],
                                 config.session_timeout, self.ledger)
                       for i in range(config.agents)]
        self.frameworks = [FrameworkProc(self.world, f"f{i}", config.session_timeout,
                                         self.ledger, config.tasks_per_framework)
                           for i in range(config.frameworks)]
        for fw in self.frameworks:
            fw.workload.hold_probability = config.hold_probability
        self.step_no = 0
        self.fault_no = 0
        self.faults: list[str] = []
        self.kill_next_leader = False
        self.verifier = self.world.client(60.0)
        self.log_reader: LogReader | None = None
        self._scripted = sorted(config.scripted, key=lambda s: s.at)
        self._parsed: dict[str, Resources] = {}

    # ----------------------------------------------------------------- running
    @property
    def now(self) -> float:
        return self.world.now

    def run(self) -> Result:
        failure = None
        # ZooKeeperLog names batches and snapshots with uuid4: make those seeded too,
        # or a seed would not replay exactly.
        real_uuid4 = uuid.uuid4
        ids = random.Random(self.config.seed ^ 0x5EED)
        uuid.uuid4 = lambda: uuid.UUID(int=ids.getrandbits(128), version=4)
        try:
            for _ in range(self.config.steps):
                self.step()
            self.check_quiescent()
        except Violation as exc:
            failure = Failure(self.config.seed, exc.name, exc.message, self.now, self.step_no,
                              [format_entry(e) for e in self.world.trace], list(self.faults))
        finally:
            uuid.uuid4 = real_uuid4
        return Result(self.config.seed, self.step_no, failure,
                      [format_entry(e) for e in self.world.trace], list(self.faults))

    @property
    def quiescent(self) -> bool:
        return self.step_no > self.config.steps - self.config.quiesce

    def step(self) -> None:
        self.step_no += 1
        world = self.world
        world.now = round(world.now + self.config.dt, 6)
        for sid in world.zk.expire_due():
            world.log("zk", "session expired", hex(sid))
        for agent in self.agents:
            agent.advance()
        if self.quiescent:
            for fw in self.frameworks:
                fw.workload.active = False
        else:
            self._random_faults()
        self._scripted_faults()
        self._restart_due()
        procs: list[Any] = [*self.masters, *self.agents, *self.frameworks]
        world.rng.shuffle(procs)
        for proc in procs:
            if proc.phase in ("down", "aborted") or getattr(proc, "paused_until", 0) > world.now:
                continue
            proc.step()
        world.zk.run_pending()
        self.check_step()

    def _restart_due(self) -> None:
        procs: list[Any] = [*self.masters, *self.agents, *self.frameworks]
        for proc in procs:
            if proc.phase == "down" and proc.restart_at is not None \
                    and proc.restart_at <= self.now:
                proc.restart_at = None
                proc.boot()

    # ----------------------------------------------------------------- faults
    def _random_faults(self) -> None:
        for kind, probability in FAULTS.items():
            roll = self.fault_rng.random()
            pick = self.fault_rng.randrange(1_000_000)
            if kind not in self.config.faults or roll >= probability * self.config.intensity:
                continue
            self.fault_no += 1
            if self.fault_no in self.config.disabled:
                continue
            self._inject(kind, pick, f"#{self.fault_no}")

    def _scripted_faults(self) -> None:
        while self._scripted and self._scripted[0].at <= self.now:
            fault = self._scripted.pop(0)
            if fault.kind == "leader_crash":
                leader = self.leader()
                if leader is not None:
                    leader.crash()
                    self._note(f"crash leader {leader.name}", "scripted")
            elif fault.kind == "kill_next_leader":
                self.kill_next_leader = True
                self._note("kill_next_leader", "scripted")
            elif fault.kind == "decline_then_crash":
                self._decline_then_crash()
            else:
                self._inject(fault.kind, 0, "scripted")

    def _note(self, what: str, tag: str) -> None:
        self.faults.append(f"{what}@{self.now:.2f}({tag})")
        self.world.log("SIM", "FAULT", f"{what} {tag}")

    def leader(self) -> MasterReplica | None:
        """The serving leader: the leader-phase replica with the highest epoch."""
        leaders = [m for m in self.masters if m.phase == "leader"]
        return max(leaders, key=lambda m: m.epoch) if leaders else None

    def _inject(self, kind: str, pick: int, tag: str) -> None:
        handler = getattr(self, f"_fault_{kind}")
        what = handler(pick)
        if what:
            self._note(what, tag)

    def _fault_master_crash(self, pick: int) -> str:
        victim = _pick_up(self.masters, pick)
        if victim is None:
            return ""
        victim.crash()
        return f"crash {victim.name}"

    def _fault_crash_after_commit(self, pick: int) -> str:
        leader = self.leader()
        if leader is None:
            return ""
        leader.kill_after_commit = True
        return f"crash-after-commit {leader.name}"

    def _fault_leader_pause(self, pick: int) -> str:
        leader = self.leader()
        if leader is None or leader.paused_until > self.now:
            return ""
        length = self.config.session_timeout + 0.5 + (pick % 300) / 100
        leader.paused_until = self.now + length
        return f"pause {leader.name} for {length:.2f}s"

    def _fault_agent_crash(self, pick: int) -> str:
        victim = _pick_up(self.agents, pick)
        if victim is None:
            return ""
        victim.crash()
        return f"crash {victim.name}"

    def _fault_agent_stop(self, pick: int) -> str:
        """A planned restart (SIGTERM): the agent says it stops, then exits; its tasks
        keep running and it comes back on the same checkpoints."""
        victim = _pick_up(self.agents, pick)
        if victim is None:
            return ""
        victim.stop()
        return f"stop {victim.name}"

    def _fault_agent_shrink(self, pick: int) -> str:
        """An operator restarts an agent with fewer cpus under its running tasks: the
        master must then offer nothing the tasks still hold (over-commitment)."""
        victim = _pick_up(self.agents, pick)
        if victim is None:
            return ""
        cpus = victim.resources.scalar("cpus")
        if cpus <= 1:
            return ""
        smaller = Resources.parse(f"cpus:{cpus - 1:g};mem:{victim.resources.scalar('mem'):g}")
        victim.crash()
        victim.resources = smaller
        return f"shrink {victim.name} to {smaller}"

    def _fault_framework_crash(self, pick: int) -> str:
        live = [f for f in self.frameworks if f.phase not in ("down", "aborted")]
        if not live:
            return ""
        victim = live[pick % len(live)]
        victim.crash()
        return f"crash {victim.name}"

    def _fault_compact(self, pick: int) -> str:
        leader = self.leader()
        if leader is None or leader.paused_until > self.now:
            return ""
        leader.compact()
        return f"compact {leader.name}"

    def _fault_slow_standby(self, pick: int) -> str:
        standbys = [m for m in self.masters if m.phase == "standby"]
        if not standbys:
            return ""
        victim = standbys[pick % len(standbys)]
        victim.lag_until = self.now + 3.0 + (pick % 700) / 100
        return f"slow {victim.name} until {victim.lag_until:.2f}"

    def _fault_conn_break(self, pick: int) -> str:
        conns = self.world.network.open_conns()
        if not conns:
            return ""
        conn = conns[pick % len(conns)]
        lost = self.world.network.break_conn(conn)
        return f"break {conn.identity.decode()} lost={lost}"

    def _fault_partition(self, pick: int) -> str:
        conns = self.world.network.open_conns()
        if not conns:
            return ""
        conn = conns[pick % len(conns)]
        until = self.now + 1.0 + (pick % 400) / 100
        self.world.network.partition(conn, until)
        return f"partition {conn.identity.decode()} until {until:.2f}"

    def _decline_then_crash(self) -> None:
        """Every framework declines what it holds; the leader dies before reading it."""
        for fw in self.frameworks:
            if fw.phase == "up":
                for offer_id in list(fw.held):
                    del fw.held[offer_id]
                    fw.decline(offer_id, 5.0)
        leader = self.leader()
        if leader is not None:
            self.world.network.master_died(leader.address)  # the declines are in flight
            for conn in self.world.network.conns.values():
                if conn.address == leader.address:
                    conn.up.clear()
            leader.crash()
        self._note("decline-then-crash", "scripted")

    def _after_take_over(self, master: MasterReplica) -> None:
        self._after_snapshot(master)  # (f) at once: a standby's hot copy must be the log
        if self.kill_next_leader:
            self.kill_next_leader = False
            self._note(f"crash new leader {master.name}", "scripted")
            master.crash()

    # ----------------------------------------------------------------- invariants
    def _res(self, text: str) -> Resources:
        parsed = self._parsed.get(text)
        if parsed is None:
            parsed = self._parsed[text] = Resources.parse(text)
        return parsed

    def check_step(self) -> None:
        started_on = self.ledger.started_on
        for agent in self.agents if started_on else ():
            if agent.name not in started_on:
                continue
            used = Resources.empty()
            for resources in self.ledger.running.get(agent.name, {}).values():
                used = used + self._res(resources)
            if agent.resources.contains(used):
                continue
            # Over its total: legitimate only if the agent shrank under tasks it already
            # ran; a task started since must not use any resource that is short.
            short = {n for n, v in used.scalar_totals().items()
                     if v > agent.resources.scalar(n) + 1e-9}
            for key in self.ledger.started_since_check.get(agent.name, ()):
                needs = self._res(self.ledger.running.get(agent.name, {}).get(key, ""))
                if short & {n for n, v in needs.scalar_totals().items() if v > 0}:
                    raise Violation("agent_overbooked",
                                    f"{agent.name} started {key[1]} ({needs}) and now runs "
                                    f"{used}, more than its {agent.resources}")
        started_on.clear()
        self.ledger.started_since_check.clear()
        leader = self.leader()
        if leader is not None and leader.core is not None:
            self._check_leader_accounting(leader)

    def _check_leader_accounting(self, leader: MasterReplica) -> None:
        core = leader.core
        assert core is not None
        held: dict[str, Resources] = {}
        for offer in core.offers.values():
            held[offer.agent_id] = held.get(offer.agent_id, Resources.empty()) + offer.resources
        for agent_id, record in core.state.agents.items():
            offered = held.get(agent_id, Resources.empty())
            tasks = Resources.empty()
            for rec in core.state.active_tasks_on(agent_id):
                if rec.state != TaskState.UNREACHABLE:
                    tasks = tasks + self._res(rec.task.resources)
            total = self._res(record.resources)
            # Tasks may exceed a total that shrank under them; offers may only be made
            # of what the tasks leave.
            if not total.subtract_available(tasks).contains(offered):
                raise Violation("leader_overcommitted",
                                f"{leader.name} offers {offered} on {agent_id} where tasks "
                                f"hold {tasks} of its {total}")

    def _after_flush(self, master: MasterReplica) -> None:
        """(f), cheaply: a tailing reader of the log must hold the leader's state."""
        if self.leader() is not master or master.core is None:
            return
        if self.log_reader is None:
            self.log_reader = LogReader(self.world)
        records = self.log_reader.catch_up()
        self._check_acks(records)
        if master.flushes % self.config.verify_every == 0:
            self._compare(master, self.log_reader.state, "a reader tailing the log")

    def _after_snapshot(self, master: MasterReplica) -> None:
        """(f), fully: recover the log (snapshot + records) and replay it."""
        if self.leader() is not master or master.core is None:
            return
        recovered = ZooKeeperLog(self.verifier, CLUSTER_PATH).recover()
        self._compare(master, state_from(recovered.snapshot, recovered.records),
                      "a recovery of the log")

    def _compare(self, master: MasterReplica, replayed: MasterState, how: str) -> None:
        assert master.core is not None
        live = durable_view(master.core.state)
        other = durable_view(replayed)
        if live != other:
            diff = sorted(k for k in live if live[k] != other.get(k))
            raise Violation("state_differs_from_log",
                            f"{master.name}'s state differs from {how} in: "
                            f"{', '.join(diff)}; " + _first_difference(live, other, diff))

    def _check_acks(self, records: list[PlainRecord]) -> None:
        for record in records:
            if record.get("op") == "update_acked" \
                    and record["uuid"] not in self.ledger.delivered_uuids:
                raise Violation("acked_never_delivered",
                                f"the master logged an ack of {record['uuid']} "
                                "that no scheduler was given")

    def check_quiescent(self) -> None:
        for agent_name, running in self.ledger.running.items():
            if running:
                raise Violation("task_never_ended", f"{agent_name} still runs {sorted(running)}")
        leader = self.leader()
        if leader is None or leader.core is None:
            raise Violation("no_leader", "no master leads after quiescence")
        self._check_leader_record(leader)
        self._check_tasks_told(leader)
        self._check_offers(leader)

    def _check_leader_record(self, leader: MasterReplica) -> None:
        try:
            data, _ = self.verifier.get(f"{CLUSTER_PATH}/{LEADER_NODE}")
        except Exception:
            raise Violation("leader_record_missing",
                            f"{leader.name} serves epoch {leader.epoch} but "
                            f"{CLUSTER_PATH}/{LEADER_NODE} does not exist") from None
        info = json.loads(data)
        if info.get("id") != leader.member_id or info.get("epoch") != leader.epoch:
            raise Violation("leader_record_wrong",
                            f"the leader record names {info}, the leader is "
                            f"{leader.member_id} epoch {leader.epoch}")
        procs: list[AgentProc | FrameworkProc] = [*self.agents, *self.frameworks]
        for proc in procs:
            if proc.phase in ("aborted",):
                continue
            found = proc.detector.current() if proc.detector is not None else None
            if proc.phase != "up" or proc.conn is None or proc.conn.address != leader.address \
                    or found != leader.address:
                raise Violation("leader_not_found",
                                f"{proc.name} ({proc.phase}) talks to "
                                f"{proc.conn.address if proc.conn else None}, detector says "
                                f"{found}; the leader is {leader.address}")

    def _check_tasks_told(self, leader: MasterReplica) -> None:
        assert leader.core is not None
        for fw in self.frameworks:
            if fw.phase == "aborted":
                continue
            for task_id in sorted(fw.launched):
                if (fw.framework_id, task_id) not in self.ledger.terminal:
                    rec = leader.core.state.task(fw.framework_id, task_id)
                    raise Violation("task_not_terminal",
                                    f"{fw.name} never heard a terminal state for {task_id} "
                                    f"(leader has {rec.state if rec else 'no record'})")
        active = [k for k, r in leader.core.state.tasks.items() if r.state not in TERMINAL]
        if active:
            raise Violation("task_not_terminal", f"{leader.name} still has active {active[:5]}")

    def _check_offers(self, leader: MasterReplica) -> None:
        assert leader.core is not None
        by_fid = {fw.framework_id: fw for fw in self.frameworks}
        for offer in leader.core.offers.values():
            if offer.created > self.now - 3.0:
                continue  # may still be in flight
            fw = by_fid.get(offer.framework_id)
            if fw is None or offer.offer_id not in fw.received:
                raise Violation("offer_leaked",
                                f"{leader.name} holds offer {offer.offer_id} "
                                f"({offer.resources} on {offer.agent_id}) since "
                                f"{offer.created:.2f}, never delivered to {offer.framework_id}")
            if offer.offer_id in fw.answered:
                raise Violation("offer_leaked",
                                f"{leader.name} holds offer {offer.offer_id} "
                                f"({offer.resources} on {offer.agent_id}) that {fw.name} "
                                "already declined or used")


def durable_view(state: MasterState) -> dict[str, Any]:
    """Everything durable in a state, for comparison (derived indexes left out)."""
    return {k: v for k, v in vars(state).items()
            if not k.startswith("_") and k != "tasks_by_agent"}


class LogReader:
    """An independent reader that tails the log after every leader flush (for (f))."""

    def __init__(self, world: World) -> None:
        self.log = ZooKeeperLog(world.client(60.0), CLUSTER_PATH)
        recovered = self.log.recover()
        self.state = state_from(recovered.snapshot, recovered.records)

    def catch_up(self) -> list[PlainRecord]:
        result: Any = self.log.tail()
        if isinstance(result, list):
            records: list[PlainRecord] = result
        else:
            if result.snapshot is not None:
                self.state = MasterState.restore(result.snapshot)
            records = list(result.records)
        replay(self.state, records)
        return records


def _first_difference(live: dict[str, Any], replayed: dict[str, Any], keys: list[str]) -> str:
    if not keys:
        return ""
    key = keys[0]
    a, b = live[key], replayed.get(key)
    if isinstance(a, list) and isinstance(b, list):
        return f"{key}: only live {[x for x in a if x not in b][:2]}; only in log " \
               f"{[x for x in b if x not in a][:2]}"
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() != b.keys():
        return f"{key}: only live {sorted(set(a) - set(b))[:3]}; only in log " \
               f"{sorted(set(b) - set(a))[:3]}"
    if isinstance(a, dict) and isinstance(b, dict):
        changed = [k for k in a if a.get(k) != b.get(k)][:2]
        return f"{key}: live {[(k, a.get(k)) for k in changed]}; log " \
               f"{[(k, b.get(k)) for k in changed]}"
    return f"{key}: live {a!r}; log {b!r}"


def run(config: SimConfig) -> Result:
    """Run one seed; never raises for a violation (see ``Result.failure``)."""
    return Simulation(config).run()


def shrink(config: SimConfig, failure: Failure, budget: int = 40) -> tuple[SimConfig, Result]:
    """Disable random faults one by one while the same violation still happens."""
    best = run(config)
    total = Simulation(config)
    for _ in range(config.steps):
        try:
            total.step()
        except Violation:
            break
    disabled = set(config.disabled)
    tried = 0
    for number in range(1, total.fault_no + 1):
        if tried >= budget:
            break
        if number in disabled:
            continue
        tried += 1
        candidate = replace(config, disabled=frozenset(disabled | {number}))
        result = run(candidate)
        if result.failure is not None and result.failure.name == failure.name:
            disabled.add(number)
            best = result
    return replace(config, disabled=frozenset(disabled)), best
