"""The ``state`` answer built in the loop from what it held at the last read.

Building and encoding the whole state (:func:`~mesos_zmq.master.views.describe_cluster`)
takes about 0.6 s at 100,000 tasks, and a forked child that does it (the old way, still
the fallback) costs the master a 35-75 ms fork, copy-on-write faults on hundreds of
megabytes in both processes, and the pipe to drain. Most of that work is the same from
one read to the next: the tasks that did not change have the same views, and the agents
the same totals.

So :class:`ReadCache` keeps, between reads, each task's view encoded as msgpack bytes
and the per-agent and per-framework totals (:class:`~mesos_zmq.master.views.TaskTotals`)
that the frameworks' and agents' views need. It learns which tasks changed from the
maps it reads (:mod:`mesos_zmq.master.journal`), and :meth:`ReadCache.catch_up` redoes
only those: a few microseconds each. The agents' views are kept encoded too, each
redone when something it shows changed, or patched when only its tasks' count and use
did (:class:`_AgentViews` says how that is found out); building them all took 11-17 ms
a read at 10,000 agents, and redoing the ~7,000 that the benchmark's churn touches
between two reads 17 of a read's 27 ms. A full state is then the
frame of :func:`~mesos_zmq.master.views.cluster_view` with placeholders, and the
agents' and tasks' bytes spliced in their place: the bytes ``encode`` would have made
of the same views, in the same order (each mirror follows its dict's order from the
journal, against 40-55 ms for looking each task up in the dict's order; before each
answer the mirrors' lengths and newest keys are checked against the dicts', and their
whole order at most every ``ORDER_CHECK_EVERY`` seconds: listing 100,000 keys of each
side costs 3-4 ms once they are out of the CPU's caches). The long lists (the active
tasks', the agents') are joined from blocks of views reused while they stay the same
(:class:`_Blocks`): the join of 110,000 small bytes was half of a read's cost. A
summary's page of the newest tasks is cut from the same bytes.

Measured in-process at 10,000 agents, 100,000 active and 1,000 completed tasks (one
process, nothing else running; ``tools/bench_reads.py``): a whole state (19 MB)
16-18 ms in the loop (28-39 ms when every agent's view was built at each read) against
0.85 s to build and encode it, the summary with 100 tasks 5-6 ms (19-21 ms) against
0.13 s; catching up costs 3-9 µs per changed task. With 1,000 tasks started and
finished between reads, a whole state from blocks 14 ms against 18-19 ms from views.
Later, on a faster run of the same machine (``--churn 7000``: 7,000 tasks started and
finished between two reads, on 7,000 agents), with the agents' views patched and the
whole order checked every few seconds, against each agent's view built again and the
whole order checked at each read: a whole state caught up 5.1-5.6 ms (8.1-8.9), the
summary 0.8-0.9 ms (3.1-3.5), and after each 7,000 tasks 9.2-9.4 ms (15.1-15.4) plus
10-11 ms of catching up.

The master keeps the cache warm from its first turn (:mod:`mesos_zmq.master.loop_reads`).
A cold cache (a leader that took over a large cluster) is filled by a child forked for
it, which catches up its copy and sends back the views and totals
(:meth:`ReadCache.fill_base`, :meth:`ReadCache.export`, :meth:`ReadCache.install`).

It answers for readers who see every task (no ACLs, or ACLs that hide none of the
frameworks with tasks); what a reader may not see changes every total, and such reads
go to the forked child as before.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

import msgpack
import structlog

from mesos_zmq.master.journal import JournaledDict, JournaledOrderedDict
from mesos_zmq.master.views import (
    Shows,
    TaskTotals,
    active_task_view,
    agent_view,
    cluster_view,
    remembered,
    task_page,
    task_view,
    used_text,
)
from mesos_zmq.protocol import State, encode
from mesos_zmq.resources import Resources

if TYPE_CHECKING:
    from mesos_zmq.master.context import MasterContext
    from mesos_zmq.master.state import AgentRecord, TaskKey, TaskRecord

log = structlog.get_logger()

#: stand-ins for the spliced lists: bytes (msgpack bin), which no view holds, random so
#: that no value can be mistaken for them; the splice also checks each occurs once
_AGENTS = b"\x00read-cache-agents:" + os.urandom(16)
_TASKS = b"\x00read-cache-tasks:" + os.urandom(16)
#: mixes of task shapes whose resource texts are remembered, at most
USED_TEXTS = 10_000
#: views of a child's fill compared with this process's own before it is taken, of
#: the active tasks and of the finished ones
FILL_SAMPLE = 64
#: views in a block of :class:`_Blocks`, at most
BLOCK = 512
#: blocks a changed one's place is looked for among (see :meth:`_Blocks.pieces`)
LOOKAHEAD = 4
#: seconds (the reads' clock) between whole checks of the views' order (see
#: :meth:`_Mirror.in_order`); the reads between check the newest ``ORDER_TAIL`` keys
ORDER_CHECK_EVERY = 5.0
ORDER_TAIL = 16


class _Mirror:
    """One of the state's task dicts as encoded views, in the same order: the dict's
    journal says what changed (see :mod:`mesos_zmq.master.journal`); :meth:`order`
    takes out what went and appends what came, at once (cheap), and leaves the views
    to redo in ``todo`` (the costly part, done in slices)."""

    def __init__(self, source: Mapping[TaskKey, TaskRecord],
                 journal: JournaledDict | JournaledOrderedDict) -> None:
        # through a plain copy: fromkeys and set take a plain dict's keys with their
        # hashes (30 ms at 100,000 tasks from the journaled dict, 15 ms so)
        plain = dict(source)
        self.views: dict[TaskKey, bytes | None] = dict.fromkeys(plain)
        self.todo: set[TaskKey] = set(plain)
        self.dirty: set[TaskKey] = set()
        #: keys of ``todo`` that changed since a background catch-up began, which it
        #: leaves for later (see :meth:`ReadCache.catch_up`)
        self.young: set[TaskKey] = set()
        #: what the journal appended (each key in the dict) and what left its place
        self.inserted: dict[TaskKey, None] = {}
        self.gone: set[TaskKey] = set()
        journal.dirty, journal.inserted, journal.gone = self.dirty, self.inserted, self.gone

    @property
    def pending(self) -> int:
        return len(self.dirty) + len(self.todo)

    def order(self, source: Mapping[TaskKey, TaskRecord]) -> None:
        """Follow ``source``'s order: drop what left it (or was inserted again), append
        what it appended, in its order; every key noted is to be redone."""
        dirty, inserted, gone, views = self.dirty, self.inserted, self.gone, self.views
        if not dirty:
            return
        # the journal noted, while each key was at hand, what left its place (``gone``)
        # and what the dict appended and still holds (``inserted``): the views lose
        # those of ``gone`` they have and gain ``inserted`` at the end, in C with the
        # hashes the set and dict keep (a task's key is a tuple, whose hash is worked
        # out afresh at each look-up, its objects out of the CPU's caches by now:
        # looking each changed key up here was ~1/3 of catching up, 20-40 ms a read at
        # 10,000 changes); only the views that go are looked up, to delete them
        if gone:
            for key in gone - gone.difference(views):
                del views[key]
            gone.clear()
        views.update(inserted)
        self.todo |= dirty
        dirty.clear()
        inserted.clear()

    def reorder(self, source: Mapping[TaskKey, TaskRecord]) -> None:
        """Take the whole order afresh (a key was moved to the front of ``source``):
        what the journal holds is then in place already, its values still to redo."""
        views = self.views
        self.views = {key: views.get(key) for key in source}
        self.todo |= self.dirty
        self.todo.update(key for key, view in self.views.items() if view is None)
        self.dirty.clear()
        self.inserted.clear()
        self.gone.clear()

    def in_order(self, source: dict[TaskKey, TaskRecord], whole: bool) -> bool:
        """Whether the views are in ``source``'s order: a check that the journal missed
        nothing of the order, before any answer is built. ``whole``: key by key (1 ms
        at 100,000 keys in a quiet process, 3-4 ms once the keys are out of the CPU's
        caches: each is touched to list it); else the length and the newest
        ``ORDER_TAIL`` keys (where the journal appends)."""
        views = self.views
        if len(views) != len(source):
            return False
        if whole:
            return list(views) == list(source)
        return list(islice(reversed(views), ORDER_TAIL)) == \
            list(islice(reversed(source), ORDER_TAIL))


class _AgentViews:
    """The agents' views encoded, in the order of ``state.agents``, each redone when
    something it shows changed, or patched when only its tasks' totals did. What an
    agent's view shows (see :func:`~mesos_zmq.master.views.agent_view`), and how a
    change of it is found at each read, in C for the most part (~1-2 ms at 10,000
    agents, against 11 ms to build and encode every view):

    - its record (hostname, resources, attributes; records are frozen, replaced whole
      on re-registration) and its place: the state's map compared with a copy of it
      and its keys with the views' (identical records compare at once);
    - its reservations and its drain: the state's maps compared with copies (a drain's
      ``drained`` flag changes in place: its text is taken afresh from the few drains);
    - whether it is connected: the set of agents whose runtime has a peer, compared
      with the last one (the runtime's peer changes in place);
    - its tasks' count and what they use (``active_tasks``, ``used_resources``): the
      agents the cache's totals touched (:meth:`ReadCache._total_up` adds them to
      ``touched``).

    A change of any but the last redoes the view (``agent_view``, encoded). Under
    churn the last is nearly all there is (every task that starts or ends touches its
    agent: ~7,000 of 10,000 agents between two reads), and redoing those views was
    two thirds of a read's cost (17 of 27 ms). So each view is also kept cut around
    those two values (:func:`_cut`): the bytes before the first, between them, after
    the second; a view whose agent only the totals touched is those pieces joined with
    its new values, encoded (each text and count encoded once: they are few), the
    bytes ``encode`` makes of the whole view (msgpack encodes a map as its header and
    each key and value in turn, each alone).
    """

    def __init__(self) -> None:
        self.views: dict[str, bytes | None] = {}
        #: each agent's view cut around its totals (see :func:`_cut`)
        self.cuts: dict[str, tuple[bytes, bytes, bytes]] = {}
        self.records: dict[str, AgentRecord] = {}
        self.reserved: dict[str, str] = {}
        self.drains: dict[str, str] = {}
        self.connected: set[str] = set()
        #: agents whose totals changed since the last read
        self.touched: set[str] = set()
        #: totals' values (texts, counts) encoded
        self.packed: dict[str | int, bytes] = {}

    def encoded(self, core: MasterContext, totals: TaskTotals,
                pack: Callable[[Any], bytes]) -> list[bytes | None]:
        """The encoded views, in order, once what changed is redone."""
        state = core.state
        agents = state.agents
        touched, self.touched = self.touched, set()
        changed: set[str] = set()
        views, records, cuts = self.views, self.records, self.cuts
        if agents != records:
            changed.update(aid for aid, agent in agents.items()
                           if records.get(aid) is not agent)
        # afresh each time (0.1 ms): a record replaced by an equal one is compared
        # field by field once, not at every read
        self.records = dict(agents)
        if len(views) != len(agents) or list(views) != list(agents):
            views = self.views = {aid: views.get(aid) for aid in agents}
            changed.update(aid for aid, view in views.items() if view is None)
            if len(cuts) > len(views):
                cuts = self.cuts = {aid: cut for aid, cut in cuts.items() if aid in views}
        reserved = state.reservations
        if reserved != self.reserved:
            changed.update(aid for aid, _ in set(reserved.items()) ^ set(self.reserved.items()))
            self.reserved = dict(reserved)
        drains = {aid: "DRAINED" if drain["drained"] else "DRAINING"
                  for aid, drain in state.draining.items()}
        if drains != self.drains:
            changed.update(aid for aid, _ in set(drains.items()) ^ set(self.drains.items()))
            self.drains = drains
        # as MasterCore.agent_connected: a runtime with a peer
        connected = {aid for aid, rt in core.agent_runtimes.items() if rt.peer is not None}
        if connected != self.connected:
            changed |= connected ^ self.connected
            self.connected = connected
        packed = self.packed
        if len(packed) > USED_TEXTS:
            packed.clear()
        empty = str(Resources.empty())
        used, counts = totals.agent_used, totals.agent_tasks
        join = b"".join
        if touched:
            touched -= changed
            for aid in touched:
                cut = cuts.get(aid)
                if cut is None or aid not in views:
                    changed.add(aid)
                    continue
                text = used.get(aid, empty)
                count = counts.get(aid, 0)
                text_b = packed.get(text)
                if text_b is None:
                    text_b = packed[text] = pack(text)
                count_b = packed.get(count)
                if count_b is None:
                    count_b = packed[count] = pack(count)
                views[aid] = join((cut[0], text_b, cut[1], count_b, cut[2]))
        for aid in changed:
            agent = agents.get(aid)
            if agent is not None:
                cut = cuts[aid] = _cut(agent_view(core, totals, aid, agent, empty), pack)
                views[aid] = join((cut[0], pack(used.get(aid, empty)), cut[1],
                                   pack(counts.get(aid, 0)), cut[2]))
        return list(views.values())


#: the values of an agent's view that follow its tasks' totals, in the view's order
_TOTALS = ("used_resources", "active_tasks")
#: encodes a map's header (as the cache's packer: it alone has no ``pack`` to pass)
_HEADERS = msgpack.Packer(use_bin_type=True)


def _cut(view: dict[str, Any], pack: Callable[[Any], bytes]) -> tuple[bytes, bytes, bytes]:
    """An agent's view encoded, less the values of ``_TOTALS``: the bytes before the
    first, between the two, after the second (the view is these with each value's
    encoding in its place)."""
    if [key for key in view if key in _TOTALS] != list(_TOTALS):
        raise ValueError(f"an agent's view has not {_TOTALS} in this order")
    pieces: list[bytes] = [_HEADERS.pack_map_header(len(view))]
    cut: list[bytes] = []
    for key, value in view.items():
        pieces.append(pack(key))
        if key in _TOTALS:
            cut.append(b"".join(pieces))
            pieces = []
        else:
            pieces.append(pack(value))
    cut.append(b"".join(pieces))
    return cut[0], cut[1], cut[2]


class _Blocks:
    """A long list of encoded views (the active tasks', the agents') as fewer, longer
    pieces for the join that makes a full state's frame.

    Joining 20 MB out of 110,000 small bytes took 13-19 ms of the loop a read on the
    benchmark's busy cores (cache misses on every view; half the cost of a read from
    the cache). From one read to the next most of the list is the same: long-running
    tasks keep their views, and the list only loses views where they are and gains
    them at its end (both follow a dict's order). So the list is cut into blocks of
    ``BLOCK`` views; a block found again as it was, in its place, is joined once and
    its bytes are reused while it stays so; the views of a block that changed are
    passed on one by one and make new blocks. A block counts as found when the views
    in its place compare equal to its own (list equality: the same objects at once,
    else the same bytes), so what is joined is always the list's bytes, in order,
    whatever the blocks were."""

    def __init__(self) -> None:
        #: the last read's blocks, in order: their views, and their bytes once joined
        self._blocks: list[list[Any]] = []

    def pieces(self, views: list[bytes | None]) -> list[Any]:
        """Pieces whose concatenation is that of ``views`` (all bytes by then)."""
        old: list[list[Any]] = self._blocks
        blocks: list[list[Any]] = []
        out: list[Any] = []
        pos, i, size = 0, 0, len(views)
        while pos < size:
            until = size
            if i < len(old):
                block = old[i]
                run = block[0]
                end = pos + len(run)
                if views[pos:end] == run:
                    if block[1] is None:
                        block[1] = b"".join(run)  # found twice: joined once
                    out.append(block[1])
                    blocks.append(block)
                    pos, i = end, i + 1
                    continue
                # changed: the views up to where a later block starts are taken one by
                # one (views only go away before it, so it starts no later than it did)
                span = len(run)
                for j in range(i + 1, min(i + 1 + LOOKAHEAD, len(old))):
                    try:
                        until = views.index(old[j][0][0], pos, min(size, pos + span + 1))
                        break
                    except ValueError:
                        span += len(old[j][0])
                else:
                    j = min(i + 1 + LOOKAHEAD, len(old))
                    until = min(size, pos + span)
                i = j
            for at in range(pos, until, BLOCK):
                run = views[at:min(at + BLOCK, until)]
                blocks.append([run, None])
                out += run
            pos = until
        # views that go away everywhere leave small blocks: start over when too many
        self._blocks = blocks if len(blocks) <= 4 * (size // BLOCK) + 16 else []
        return out


@dataclass(frozen=True, slots=True)
class FillBase:
    """What the cache was when a child was forked to fill it (see
    :meth:`ReadCache.fill_base`)."""

    generation: int
    #: the active tasks of that instant: what the child's totals count
    tasks: dict[TaskKey, TaskRecord]
    #: the finished ones
    completed: set[TaskKey]


class ReadCache:
    """Encoded task views and task totals of one master core, kept up to date from
    what changed. Use: :meth:`attach`, :meth:`catch_up`, then :meth:`state_frame`."""

    def __init__(self) -> None:
        self._packer = msgpack.Packer(use_bin_type=True)
        self._attached: tuple[Any, Any, Any, Any] | None = None
        #: bumped by whatever moves the cache (attach, detach, catch_up): a child's
        #: fill is installed only into the cache it was forked from, unmoved
        self.generation = 0
        self._reset()

    def _reset(self) -> None:
        self.generation += 1
        self._active: _Mirror | None = None
        self._done: _Mirror | None = None
        #: the records the totals count, to take each out again when it changes
        self._counted: dict[TaskKey, TaskRecord] = {}
        self._done_counted: set[TaskKey] = set()
        self._done_by_framework: Counter[str] = Counter()
        #: agent or framework id -> resource text -> tasks of that shape (plain dicts:
        #: a child's fill comes back as such, see install)
        self._fw_shapes: dict[str, dict[str, int]] = {}
        self._agent_shapes: dict[str, dict[str, int]] = {}
        self._dirty_agents: set[str] = set()
        self._dirty_frameworks: set[str] = set()
        #: resource texts of mixes of task shapes (see _total_up)
        self._used_texts: dict[frozenset[tuple[str, int]], str] = {}
        #: the last catch-up was not cut short (a background one then begins afresh)
        self._round_done = True
        self.totals = TaskTotals()
        self._agents = _AgentViews()
        self._task_blocks = _Blocks()
        self._agent_blocks = _Blocks()
        #: when a read last checked the whole order of the views (see state_frame)
        self._order_checked_at: float | None = None

    # ------------------------------------------------------------------ attaching
    @property
    def attached(self) -> bool:
        """Whether it listens to some core's maps."""
        return self._attached is not None

    def attached_to(self, core: MasterContext) -> bool:
        """Whether this cache listens to ``core``'s maps as they are now (a core rebuilt,
        a state restored, or a map replaced needs :meth:`attach` again)."""
        state = core.state
        return self._attached is not None and (
            self._attached[0] is state and self._attached[1] is state.tasks
            and self._attached[2] is state.completed and self._attached[3] is core.usage)

    def attach(self, core: MasterContext) -> None:
        """Listen to ``core``'s tasks and usage (swapped for journaled copies of the same
        content) and start over: every task is to be redone."""
        self.detach()
        state = core.state
        tasks = state.tasks if isinstance(state.tasks, JournaledDict) \
            else JournaledDict(state.tasks)
        completed = state.completed if isinstance(state.completed, JournaledOrderedDict) \
            else JournaledOrderedDict(state.completed)
        usage = core.usage if isinstance(core.usage, JournaledDict) else JournaledDict(core.usage)
        state.tasks, state.completed, core.usage = tasks, completed, usage
        self._active = _Mirror(tasks, tasks)
        self._done = _Mirror(completed, completed)
        completed.reordered = False
        # a usage figure changes the view of its task, not the order of tasks
        usage.dirty, usage.inserted, usage.gone = self._active.dirty, None, None
        self._attached = (state, tasks, completed, usage)

    def detach(self) -> None:
        """Stop listening and forget everything (the maps stay journaled, silent)."""
        if self._attached is not None:
            for journal in self._attached[1:]:
                journal.dirty = journal.inserted = journal.gone = None
        self._attached = None
        self._reset()

    @property
    def pending(self) -> int:
        """Changes still to catch up with."""
        if self._active is None or self._done is None:
            return 0
        return self._active.pending + self._done.pending

    @property
    def fresh(self) -> int:
        """Changes noted since the last catch-up (not counting those it left for later)."""
        if self._active is None or self._done is None:
            return 0
        return len(self._active.dirty) + len(self._done.dirty)

    # ------------------------------------------------------------------ catching up
    def catch_up(self, core: MasterContext, deadline: float | None = None,
                 defer: bool = False) -> bool:
        """Take in what changed: the order of tasks at once, then their views and the
        totals until done or ``deadline`` (``time.perf_counter``); True when nothing is
        left. Only while attached to ``core``.

        ``defer`` (a background catch-up, with no read to answer): the tasks that
        changed since the last one began are left for the next (or for a read, which
        takes in everything). Under churn most of them are short tasks in flight, gone
        by then: each is then counted out of nothing and viewed never, where it was
        viewed, counted in and counted out again (at 6,000 tasks/s, 5,000 in flight,
        a background catch-up every 1.2 s: ~4,500 views and 9,000 counts a time, most
        of its cost). True then when only those are left."""
        active, done = self._active, self._done
        assert active is not None and done is not None, "catch_up before attach"
        for mirror in (active, done):
            if not defer:
                mirror.young = set()
            elif self._round_done:
                mirror.young = set(mirror.dirty)
            else:  # a background catch-up cut short goes on: what changed meanwhile waits
                mirror.young |= mirror.dirty
        self._round_done = False
        self._order(core)
        self.generation += 1
        state = core.state
        tasks, completed = state.tasks, state.completed
        pack = self._packer.pack
        views, counted = active.views, self._counted
        todo = _work(active)
        # tasks counted in (1) and out (-1) per (agent, framework, resources), taken
        # into the totals at once (the framework's side adds up to a few moves)
        moves: dict[tuple[str, str, str], int] = {}
        steps = 0
        while todo:
            steps += 1
            if deadline is not None and steps % 256 == 0 and time.perf_counter() > deadline:
                active.todo |= todo
                self._move(moves)
                return False
            key = todo.pop()
            rec = tasks.get(key)
            old = counted.get(key)
            if rec is None:
                if old is not None:
                    del counted[key]
                    shape = (old.agent_id, old.framework_id, old.task.resources)
                    moves[shape] = moves.get(shape, 0) - 1
                continue
            views[key] = pack(active_task_view(core, rec))
            if old is not rec:
                counted[key] = rec
                shape = (rec.agent_id, rec.framework_id, rec.task.resources)
                if old is None:
                    moves[shape] = moves.get(shape, 0) + 1
                else:
                    was = (old.agent_id, old.framework_id, old.task.resources)
                    if was != shape:
                        moves[was] = moves.get(was, 0) - 1
                        moves[shape] = moves.get(shape, 0) + 1
        self._move(moves)
        views, seen = done.views, self._done_counted
        todo = _work(done)
        by_framework = self._done_by_framework
        while todo:
            steps += 1
            if deadline is not None and steps % 256 == 0 and time.perf_counter() > deadline:
                done.todo |= todo
                return False
            key = todo.pop()
            rec = completed.get(key)
            if rec is None:
                if key in seen:
                    seen.discard(key)
                    by_framework[key[0]] -= 1
                    if not by_framework[key[0]]:
                        del by_framework[key[0]]
                continue
            views[key] = pack(task_view(rec))
            if key not in seen:
                seen.add(key)
                by_framework[key[0]] += 1
        self._total_up()
        self._round_done = True
        return True

    def _order(self, core: MasterContext) -> None:
        """Take in the order of tasks (cheap): what is left to redo is then in ``todo``."""
        active, done = self._active, self._done
        assert active is not None and done is not None, "catch_up before attach"
        state = core.state
        completed = state.completed
        if isinstance(completed, JournaledOrderedDict) and completed.reordered:
            # moved to the front (nothing in the master does): take the order afresh
            completed.reordered = False
            done.reorder(completed)
        active.order(state.tasks)
        done.order(completed)

    # ------------------------------------------------------------------ filled by a child
    def fill_base(self, core: MasterContext) -> FillBase:
        """Before forking a child that fills the cache (:meth:`export` there,
        :meth:`install` here): the order taken in, so that the child's views line up
        with this cache's keys, and what the child's totals will count (the tasks of
        this instant: records are frozen, a shallow copy is their picture)."""
        self._order(core)
        self.generation += 1
        state = core.state
        return FillBase(self.generation, dict(state.tasks), set(state.completed))

    def export(self, core: MasterContext) -> list[Any]:
        """In the child: the cache caught up, as plain data for :meth:`install`."""
        active = self._active
        tasks = core.state.tasks
        if active is not None and not self._counted and active.todo.issuperset(tasks):
            self._count_afresh(tasks)
        self.catch_up(core)
        active, done = self._active, self._done
        assert active is not None and done is not None
        totals = self.totals
        return [list(active.views.values()), list(done.views.values()), self._agent_shapes,
                self._fw_shapes, dict(self._done_by_framework), totals.fw_tasks,
                totals.agent_tasks, totals.fw_used, totals.agent_used]

    def install(self, core: MasterContext, base: FillBase, parts: list[Any]) -> bool:
        """Take what a child forked after :meth:`fill_base` made of this cache
        (:meth:`export`): every view and total as of the fork, so that only what changed
        since is left to catch up with. False (nothing taken) unless the cache is as it
        was at the fork (attached to the same maps, not caught up since) and a sample of
        the views it brings is what they are here."""
        active, done = self._active, self._done
        completed = core.state.completed
        if (active is None or done is None or base.generation != self.generation
                or not self.attached_to(core) or getattr(completed, "reordered", False)):
            return False
        (active_views, done_views, agent_shapes, fw_shapes, done_by_framework, fw_tasks,
         agent_tasks, fw_used, agent_used) = parts
        # the keys of the mirrors are those of the fork (only catching up moves them),
        # and the totals count every task of it
        if len(active_views) != len(active.views) or len(done_views) != len(done.views) \
                or len(base.tasks) != len(active.views) \
                or sum(agent_tasks.values()) != len(base.tasks) \
                or sum(fw_tasks.values()) != len(base.tasks) \
                or sum(done_by_framework.values()) != len(base.completed):
            return False
        views = dict(zip(active.views, active_views, strict=True))
        finished = dict(zip(done.views, done_views, strict=True))
        if not self._same_views(core, base, views, finished):
            log.warning("a child's fill of the read cache differs from the master's views: "
                        "it is not taken")
            return False
        active.views, done.views = views, finished
        active.todo.clear()
        done.todo.clear()
        active.young, done.young = set(), set()
        self._counted = base.tasks
        self._done_counted = base.completed
        self._done_by_framework = Counter(done_by_framework)
        self._agent_shapes, self._fw_shapes = agent_shapes, fw_shapes
        self._dirty_agents.clear()
        self._dirty_frameworks.clear()
        self.totals = TaskTotals(fw_tasks, agent_tasks, fw_used, agent_used)
        self._agents = _AgentViews()  # made at the next read (~15 ms at 10,000 agents)
        self.generation += 1
        return True

    def _same_views(self, core: MasterContext, base: FillBase, views: dict[TaskKey, Any],
                    finished: dict[TaskKey, Any], sample: int = FILL_SAMPLE) -> bool:
        """Whether a sample of the views a child brings, of tasks unchanged since the
        fork, is what this process makes of them."""
        assert self._active is not None and self._done is not None
        state, pack = core.state, self._packer.pack
        for mine, dirty, records, make in (
                (views, self._active.dirty, state.tasks,
                 lambda rec: active_task_view(core, rec)),
                (finished, self._done.dirty, state.completed, task_view)):
            keys = list(mine)
            step = max(1, len(keys) // sample)
            for key in keys[::step]:
                rec = records.get(key)
                if key in dirty or rec is None:
                    continue
                if key in base.tasks and base.tasks[key] is not rec:
                    continue
                if mine[key] != pack(make(rec)):
                    return False
        return True

    def _count_afresh(self, tasks: Mapping[TaskKey, TaskRecord]) -> None:
        """Count every task of an empty count at once (each is then found counted as it
        is caught up with): 60 ms at 100,000 tasks, against 0.2 s one by one."""
        groups = Counter((rec.task.agent_id, rec.framework_id, rec.task.resources)
                         for rec in tasks.values())
        totals = self.totals
        for (agent_id, framework_id, resources), n in groups.items():
            for ident, counts, shapes, touched in (
                    (agent_id, totals.agent_tasks, self._agent_shapes, self._dirty_agents),
                    (framework_id, totals.fw_tasks, self._fw_shapes, self._dirty_frameworks)):
                counts[ident] = counts.get(ident, 0) + n
                mine = shapes.get(ident)
                if mine is None:
                    mine = shapes[ident] = {}
                mine[resources] = mine.get(resources, 0) + n
                touched.add(ident)
        self._counted = dict(tasks)

    def _move(self, moves: dict[tuple[str, str, str], int]) -> None:
        """Take tasks counted in (n > 0) or out (n < 0) into their agents' and
        frameworks' totals: ``moves`` maps (agent, framework, resources) to n."""
        totals = self.totals
        by_framework: dict[tuple[str, str], int] = {}
        agent_tasks, agent_shapes, touched = (totals.agent_tasks, self._agent_shapes,
                                              self._dirty_agents)
        for (agent_id, framework_id, resources), n in moves.items():
            if n:
                _add(agent_tasks, agent_shapes, agent_id, resources, n)
                touched.add(agent_id)
                key = (framework_id, resources)
                by_framework[key] = by_framework.get(key, 0) + n
        for (framework_id, resources), n in by_framework.items():
            if n:
                _add(totals.fw_tasks, self._fw_shapes, framework_id, resources, n)
                self._dirty_frameworks.add(framework_id)
        moves.clear()

    def _total_up(self) -> None:
        """What the touched agents and frameworks use, as text (as count_tasks says it).

        Agents run tasks of a few shapes in a few numbers: the text of each mix is
        remembered (9 µs to work out, a task's arrival and end each touch an agent)."""
        texts = self._used_texts
        if len(texts) > USED_TEXTS:
            texts.clear()
        for touched, shapes, used in (
                (self._dirty_agents, self._agent_shapes, self.totals.agent_used),
                (self._dirty_frameworks, self._fw_shapes, self.totals.fw_used)):
            for ident in touched:
                mine = shapes.get(ident)
                if mine is None:
                    used.pop(ident, None)
                    continue
                mix = frozenset(mine.items())
                text = texts.get(mix)
                if text is None:
                    text = texts[mix] = used_text(mine)
                used[ident] = text
        self._agents.touched |= self._dirty_agents
        self._dirty_agents.clear()
        self._dirty_frameworks.clear()

    # ------------------------------------------------------------------ answering
    def sees_every_task(self, shows: Shows) -> bool:
        """Whether a reader's ``shows`` hides none of the frameworks with tasks (it then
        sees what an unrestricted reader sees of the tasks and totals)."""
        return all(shows("view_tasks", fid)
                   for fid in set(self.totals.fw_tasks) | set(self._done_by_framework))

    def state_frame(self, core: MasterContext, now: float, shows: Shows,
                    tasks_limit: int | None, request_id: str, epoch: int) -> bytes | None:
        """The frame answering ``get_state`` for a reader who sees every task (see
        :meth:`sees_every_task`), caught up (see :meth:`catch_up`): the bytes
        ``encode(State(describe_cluster(...)))`` would be. None if the views are found
        out of order (then nothing is to be trusted: the cache starts over)."""
        state = core.state
        active, done = self._active, self._done
        assert active is not None and done is not None, "state_frame before attach"
        checked = self._order_checked_at
        whole = checked is None or not 0 <= now - checked < ORDER_CHECK_EVERY
        if not (active.in_order(state.tasks, whole) and done.in_order(state.completed, whole)):
            log.warning("the read cache lost the order of tasks: starting over")
            self.attach(core)
            return None
        if whole:
            self._order_checked_at = now
        visible = remembered(shows)
        view = cluster_view(core, now, visible, self.totals, len(state.completed), _TASKS,
                            agents=_AGENTS)
        frame = encode(State(state=view), request_id, epoch)
        pack = self._packer.pack
        agents = self._agents.encoded(core, self.totals, pack)
        parts: dict[bytes, Iterable[Any]] = {
            _AGENTS: chain((self._packer.pack_array_header(len(agents)),),
                           self._agent_blocks.pieces(agents))}
        if tasks_limit is None:
            header = self._packer.pack_array_header(len(active.views) + len(done.views))
            parts[_TASKS] = chain((header,), self._task_blocks.pieces(list(active.views.values())),
                                  done.views.values())
        else:
            page = self._first_page(core, tasks_limit)
            if page is None:
                tasks, _ = task_page(core, visible, limit=tasks_limit)
                page = [pack(task) for task in tasks]
            parts[_TASKS] = chain((self._packer.pack_array_header(len(page)),), page)
        return _splice(frame, parts, pack)

    def _first_page(self, core: MasterContext, limit: int) -> list[bytes | None] | None:
        """The first ``desc`` page of the task listing (as :func:`task_page` shows it to
        a reader who sees every task) from the encoded views: the newest active tasks,
        then the most recently finished. None where :func:`task_page` would view a task
        otherwise than its mirror does (an active task in a final state, or a finished
        one not: none such are kept)."""
        assert self._active is not None and self._done is not None
        state = core.state
        page: list[bytes | None] = []
        for views, records, final in ((self._active.views, state.tasks, False),
                                      (self._done.views, state.completed, True)):
            for key, view in islice(reversed(views.items()), limit - len(page)):
                if records[key].terminal is not final:
                    return None
                page.append(view)
        return page


def _add(counts: dict[str, int], shapes: dict[str, dict[str, int]], ident: str,
         resources: str, n: int) -> None:
    """``n`` tasks of ``resources`` more (or fewer) for an agent's or framework's count
    and shapes (a count or shape that falls to 0 is taken out)."""
    left = counts.get(ident, 0) + n
    if left:
        counts[ident] = left
    else:
        counts.pop(ident, None)
    mine = shapes.get(ident)
    if mine is None:
        mine = shapes[ident] = {}
    left = mine.get(resources, 0) + n
    if left:
        mine[resources] = left
    else:
        del mine[resources]
    if not mine:
        del shapes[ident]


def _work(mirror: _Mirror) -> set[TaskKey]:
    """The keys of ``mirror.todo`` a catch-up redoes now: all of them, or those not
    ``young`` (then taken out of ``todo``, and put back if the catch-up is cut short)."""
    todo, young = mirror.todo, mirror.young
    if not young:
        return todo
    work = todo - young
    todo &= young
    return work


def _splice(frame: bytes, parts: dict[bytes, Iterable[Any]],
            pack: Callable[[Any], bytes]) -> bytes:
    """``frame`` with each placeholder's encoding replaced by its pieces, joined once."""
    cuts = []
    for placeholder, pieces in parts.items():
        marker = pack(placeholder)
        if frame.count(marker) != 1:
            raise ValueError("a read cache placeholder is not in the frame exactly once")
        at = frame.index(marker)
        cuts.append((at, at + len(marker), pieces))
    cuts.sort(key=lambda cut: cut[0])
    out: list[Iterable[Any]] = []
    start = 0
    for at, end, pieces in cuts:
        out += [(frame[start:at],), pieces]
        start = end
    out.append((frame[start:],))
    return b"".join(chain.from_iterable(out))
