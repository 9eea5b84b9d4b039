"""The master's per-task shortcuts change nothing that is logged, replayed or read.

Under churn the master builds a few records per task, applies them, logs them and
keeps the read cache's journal of what changed. Shortcuts there: records and task
records built by generated ``__init__`` (``records.fast_init``), copied by generated
code (``records.copier``: a launched task), not stamped again when they carry the
time ``commit`` stamps (``stamped``), logged through generated maps
(``record_to_plain``); the state skips moves and removals that change nothing
(``MasterState._complete``, ``_forget_completed``), and the journal notes changes
inline. Checked here:

- every record class logs the map ``{"op": ..., **to_plain(record)}`` it logged
  before, keys in the same order, and builds, copies and stamps as the dataclass
  machinery did;
- a churn through the real handlers (launches on reserved and unreserved resources,
  updates, ends, a task id used again after it ended, a late update of an ended task,
  history trimmed), with the read cache listening: the log replays to the same state,
  the cache answers byte for byte what ``describe_cluster`` says, and once everything
  ended the allocator holds nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from mesos_zmq.master import records as r
from mesos_zmq.master.core import MasterCore, MasterCoreConfig
from mesos_zmq.master.operator_api import shows_of
from mesos_zmq.master.read_cache import ReadCache
from mesos_zmq.master.records import copier, fast_init, record_to_plain, stamped
from mesos_zmq.master.state import HistoryLimits, MasterState, TaskRecord, state_from
from mesos_zmq.master.views import describe_cluster
from mesos_zmq.protocol import (
    Accept,
    Acknowledge,
    FrameworkInfo,
    HealthCheck,
    Offers,
    Operation,
    RegisterAgent,
    RunTasks,
    State,
    StatusUpdate,
    Subscribe,
    TaskInfo,
    TaskStatus,
    encode,
    to_plain,
)
from mesos_zmq.resources import Resources
from mesos_zmq.tasks import TaskState

TASK = TaskInfo(task_id="t1", agent_id="a1", resources="cpus(eng):1;mem:64", command="x",
                argv=["a", "b"], shell=False, env={"K": "V"}, kill_grace_period=2.5,
                role="eng", health_check=HealthCheck(kind="command", command="true"),
                user="nobody")
STATUS = TaskStatus(task_id="t1", framework_id="f1", agent_id="a1", state="TASK_LOST",
                    uuid="u1", timestamp=3.5, source="master", reason="R", message="m",
                    exit_code=2, healthy=False)
FRAMEWORK = FrameworkInfo(name="fw", framework_id="f1", roles=["eng", "*"],
                          suppressed_roles=["eng"], failover_timeout=9.0)

#: one record of every class, no field at its default
SAMPLES: list[Any] = [
    r.FrameworkAdded(framework=FRAMEWORK, time=1.5),
    r.FrameworkRemoved(framework_id="f1", reason="gone", time=1.5),
    r.AgentAdded(agent_id="a1", hostname="h", resources="cpus:2", attributes="rack:1",
                 time=1.5),
    r.AgentRemoved(agent_id="a1", reason="lost", time=1.5),
    r.AgentDraining(agent_id="a1", grace=3.0, time=1.5),
    r.AgentDrained(agent_id="a1"),
    r.AgentReactivated(agent_id="a1", time=1.5),
    r.TaskAdded(framework_id="f1", task=TASK, state="TASK_RUNNING", time=1.5),
    r.TaskUpdated(framework_id="f1", task_id="t1", state="TASK_FAILED", exit_code=3,
                  message="boom", reason="REASON_X", time=1.5),
    r.WeightsSet(weights={"eng": 2.0}, time=1.5),
    r.QuotaSet(role="eng", guarantee="cpus:1", limit="cpus:2", time=1.5),
    r.QuotaRemoved(role="eng", time=1.5),
    r.ReservationsSet(agent_id="a1", reserved="cpus(eng):1", time=1.5),
    r.OfferMade(offer_id="o1", framework_id="f1", agent_id="a1", role="eng",
                resources="cpus:1", time=1.5),
    r.OfferRemoved(offer_id="o1"),
    r.RequestDone(request_id="f1/r1"),
    r.UpdatePending(status=STATUS),
    r.UpdateAcked(uuid="u1"),
    r.FilterSet(framework_id="f1", agent_id="a1", seconds=5.0, time=1.5),
    r.FiltersCleared(framework_id="f1"),
    r.OwnerSet(kind="framework", ident="f1", principal="p"),
    r.SchedulerChanged(framework_id="f1", instance="s2", previous="s1", time=1.5),
]


def test_every_record_class_has_a_sample() -> None:
    assert {type(s) for s in SAMPLES} == set(r.RECORD_TYPES.values())


@pytest.mark.parametrize("record", SAMPLES, ids=lambda s: type(s).__name__)
def test_a_record_is_logged_as_the_map_it_was(record: Any) -> None:
    plain = record_to_plain(record)
    before = {"op": record.OP, **to_plain(record)}
    assert plain == before and list(plain) == list(before)
    assert r.record_from_plain(plain) == record


@pytest.mark.parametrize("record", SAMPLES, ids=lambda s: type(s).__name__)
def test_a_record_is_built_as_the_dataclass_built_it(record: Any) -> None:
    cls = type(record)
    fields = dataclasses.fields(cls)
    values = {f.name: getattr(record, f.name) for f in fields}
    by_keyword = cls(**values)
    by_position = cls(*values.values())
    assert by_keyword == record == by_position
    assert repr(by_keyword) == repr(record)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(by_keyword, fields[0].name, None)
    required = [f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if required:
        with pytest.raises(TypeError):
            cls()
    with pytest.raises(TypeError):
        cls(*values.values(), "one too many")
    with pytest.raises(TypeError):
        cls(**values, not_a_field=1)
    # defaults: a factory's value is made anew for each record
    kept = {name: values[name] for name in required}
    bare = cls(**kept)
    for f in fields:
        if f.default is not dataclasses.MISSING:
            assert getattr(bare, f.name) == f.default
        elif f.default_factory is not dataclasses.MISSING:
            assert getattr(bare, f.name) == f.default_factory()
            assert getattr(bare, f.name) is not getattr(cls(**kept), f.name)


def test_a_task_record_is_built_as_the_dataclass_built_it() -> None:
    rec = TaskRecord("f1", TASK, TaskState.RUNNING, 2.0, 1, "m", "R")
    assert rec == TaskRecord(framework_id="f1", task=TASK, state=TaskState.RUNNING,
                             updated_at=2.0, exit_code=1, message="m", reason="R")
    assert TaskRecord("f1", TASK, TaskState.RUNNING, 2.0) == dataclasses.replace(
        rec, exit_code=None, message="", reason="")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.state = TaskState.FAILED  # type: ignore[misc]
    with pytest.raises(TypeError):
        TaskRecord("f1", TASK, TaskState.RUNNING)  # type: ignore[call-arg]


def test_fast_init_leaves_classes_it_cannot_speed_up_alone() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("negative")

    for cls in (NoSlots, Checked):
        init = cls.__init__
        assert fast_init(cls) is cls and cls.__init__ is init
    with pytest.raises(ValueError):
        Checked(-1)


def test_a_copy_is_the_one_replace_makes() -> None:
    launched = copier(TaskInfo, "agent_id", "role", "resources", "user")
    copy = launched(TASK, "a2", "*", "cpus:1", "")
    assert copy == dataclasses.replace(TASK, agent_id="a2", role="*", resources="cpus:1",
                                       user="")
    assert type(copy) is TaskInfo and copy.env is TASK.env  # a shallow copy, as replace
    assert TASK.agent_id == "a1"
    with pytest.raises(TypeError):
        copier(TaskInfo, "no_such_field")


def test_a_record_stamped_with_its_own_time_is_itself() -> None:
    record = r.TaskUpdated("f1", "t1", "TASK_RUNNING", time=5.0)
    assert stamped(record, 5.0) is record
    other = stamped(record, 6.0)
    assert other == dataclasses.replace(record, time=6.0) and record.time == 5.0
    unstamped = r.TaskUpdated("f1", "t1", "TASK_RUNNING")
    assert stamped(unstamped, 5.0) == record


# ---------------------------------------------------------------------------- churn
FW_PEER = b"framework"


class Churn:
    """A master core driven as a framework and agents would, its log kept."""

    def __init__(self, agents: int) -> None:
        ids = itertools.count()
        self.state = MasterState(HistoryLimits(per_framework=7, total=9))
        self.core = MasterCore(MasterCoreConfig(), lambda: f"id{next(ids)}", self.state)
        self.cache = ReadCache()
        self.cache.attach(self.core)  # the journal listens from the start
        self.log: list[Any] = []
        self.now = 1.0
        self.inbox: list[tuple[bytes, Any]] = []
        self.offers: list[Any] = []
        self.updates: dict[bytes, dict[str, list[TaskStatus]]] = {}
        self.agent_ids: dict[bytes, str] = {}
        self.fid = ""
        self.seq = 0
        for i in range(agents):
            peer = b"agent%d" % i
            self.handle(peer, RegisterAgent(hostname=f"h{i}", resources="cpus:4;mem:1024"))
        self.handle(FW_PEER, Subscribe(framework=FrameworkInfo(
            name="fw", roles=["eng"], failover_timeout=60.0)))

    def handle(self, peer: bytes, msg: Any) -> None:
        self.deliver(self.core.handle(peer, msg, f"r{len(self.log)}", self.now))

    def deliver(self, ready: Any) -> None:
        self.log.extend(record_to_plain(rec) for rec in ready.records)
        for peer, msg, _ in ready.messages:
            if peer == FW_PEER:
                if type(msg).__name__ == "Subscribed":
                    self.fid = msg.framework_id
                elif isinstance(msg, Offers):
                    self.offers.extend(msg.offers)
                elif isinstance(msg, StatusUpdate) and msg.status.uuid:
                    s = msg.status
                    self.inbox.append((FW_PEER, Acknowledge(
                        framework_id=self.fid, agent_id=s.agent_id, task_id=s.task_id,
                        uuid=s.uuid)))
            elif type(msg).__name__ == "AgentRegistered":
                self.agent_ids[peer] = msg.agent_id
            elif isinstance(msg, RunTasks):
                for task in msg.tasks:
                    end = "TASK_FAILED" if self.seq % 5 == 0 else "TASK_FINISHED"
                    queue = [TaskStatus(task_id=task.task_id, framework_id=msg.framework_id,
                                        agent_id=self.agent_ids[peer], state=state,
                                        uuid=f"u{self.seq}-{state}", timestamp=self.now)
                             for state in ("TASK_RUNNING", end)]
                    self.updates.setdefault(peer, {})[task.task_id] = queue
                    self.inbox.append((peer, StatusUpdate(status=queue[0])))
            elif isinstance(msg, Acknowledge):
                queue = self.updates.get(peer, {}).get(msg.task_id)
                if queue and queue[0].uuid == msg.uuid:
                    queue.pop(0)
                    if queue:
                        self.inbox.append((peer, StatusUpdate(status=queue[0])))

    def launch(self, reserve: bool, reuse: str | None) -> None:
        offer = self.offers.pop(0)
        operations = []
        resources = "cpus:0.5;mem:64"
        if "cpus(eng):" in offer.resources:
            resources = "cpus(eng):0.5;mem:64"  # on what an accept reserved before
        elif reserve:
            operations = [Operation(kind="RESERVE", resources="cpus(eng):1")]
            resources = "cpus(eng):0.5;mem:64"  # on what this accept reserves
        tasks = []
        for _ in range(2):
            self.seq += 1
            task_id = reuse if reuse is not None and not tasks else f"t{self.seq}"
            tasks.append(TaskInfo(task_id=task_id, agent_id=offer.agent_id,
                                  resources=resources, command="true"))
        self.handle(FW_PEER, Accept(framework_id=self.fid, offer_ids=[offer.offer_id],
                                    tasks=tasks, refuse_seconds=0, operations=operations))

    def turn(self) -> None:
        self.now += 0.5
        while self.inbox:
            peer, msg = self.inbox.pop(0)
            self.handle(peer, msg)
        self.deliver(self.core.tick(self.now))

    def picture(self) -> dict[str, Any]:
        return self.state.snapshot()


def same_reads(churn: Churn) -> None:
    """The read cache, fed by the journal, answers what ``describe_cluster`` says."""
    core = churn.core
    churn.cache.catch_up(core)
    shows = shows_of(core)
    frame = churn.cache.state_frame(core, churn.now, shows, None, "rid", 3)
    assert frame == encode(State(state=describe_cluster(core, churn.now, shows)), "rid", 3)


def test_a_churn_replays_reads_and_releases_as_it_ran() -> None:
    churn = Churn(agents=4)
    churn.turn()
    ended: list[str] = []
    for step in range(60):
        if churn.offers:
            # now and then a task id used again after its task ended
            reuse = ended.pop(0) if step % 7 == 3 and ended else None
            churn.launch(reserve=step % 4 == 1, reuse=reuse)
        churn.turn()
        ended = [key[1] for key in churn.state.completed]
        if step % 9 == 5 and ended:
            # a late word of a task that ended: refused (an illegal move), changes nothing
            churn.handle(next(iter(churn.agent_ids)), StatusUpdate(status=TaskStatus(
                task_id=ended[0], framework_id=churn.fid, agent_id="nobody",
                state="TASK_LOST", uuid="late", timestamp=churn.now)))
        if step % 10 == 9:
            same_reads(churn)
    while churn.inbox:
        churn.turn()
    assert churn.seq > 60 and len(churn.state.completed) == 7  # history was trimmed
    assert any("(eng)" in rec.task.resources for rec in churn.state.completed.values())
    # the log replays to the state the master holds
    assert state_from(None, churn.log, HistoryLimits(per_framework=7, total=9)).snapshot() \
        == churn.picture()
    same_reads(churn)
    # every task ended: the allocator holds only the offers outstanding
    core = churn.core
    assert not churn.state.tasks
    offered: dict[str, Resources] = {}
    for rec in core.offers.values():
        offered[rec.agent_id] = offered.get(rec.agent_id, Resources.empty()) + rec.resources
    for agent_id, agent in churn.state.agents.items():
        total = core.agent_total(agent_id, Resources.parse(agent.resources))
        assert core.allocator.free(agent_id) + offered.get(agent_id, Resources.empty()) \
            == total
    held = sum(res.scalar("cpus") for res in offered.values())
    assert core.allocator.role_allocation("eng").get("cpus", 0.0) == pytest.approx(held)
