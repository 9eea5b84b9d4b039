"""Which operator reads the master's loop answers itself, and when.

Reads the core defers (``Ready.reads``) used to go to a forked child each
(:mod:`mesos_zmq.master.forked_reads`). Measured at 10,000 agents and 100,000 tasks
(master RSS ~800 MB), a child costs the loop a 35-75 ms fork, then copy-on-write faults
on 130-400 MB in the parent while the child lives, and its answer came back 64 KB per
loop turn: a ``state`` summary took 0.8-1.4 s for 0.1 s of work, and back-to-back full
reads cut a framework's rate by a quarter. :class:`LoopReads` answers in the loop what
is cheap there, and leaves the rest to the child:

- ``get_tasks``: a page is at most ``MAX_TASKS_PAGE`` views; finding it copies and
  filters lists of the tasks in C (a few ms at 100,000 tasks).
- ``get_state`` (summary or whole), for a reader who sees every task: from the
  :class:`~mesos_zmq.master.read_cache.ReadCache`. The cache catches up with what
  changed when a read comes, and in the background at most every ``KEEP_WARM_EVERY``
  seconds (see "a cache kept warm" below; a task that starts and ends between two
  catch-ups is then redone once, not at each of its updates): at once if at most
  ``IN_LOOP_PENDING`` tasks changed; otherwise the read waits while the loop
  catches up ``SLICE`` seconds a turn (``WAIT_SLICE`` from its second turn on: a busy
  turn brought as many changes as a short slice took in, and reads waited ``MAX_WAIT``
  with the cache 7,000-18,000 changes behind, then went to the child: 2.5-5 s), and is
  answered on the turn whose slice leaves at most ``AFTER_SLICE``. A turn so spends on
  reads at most a slice and the answers
  (~55 ms in a quiet process; 45-100 ms on the benchmark's two busy cores), or the
  catching up of ``IN_LOOP_PENDING`` changes and the answers. A read that waited ``MAX_WAIT``
  seconds, or that finds more than ``PARK_LIMIT`` changes (a cold cache: the first read
  of a large cluster), goes to the child; the loop then catches up a slice a turn
  (``COLD_SLICE`` while that far behind) so that the next one need not, as it does
  whenever more than ``HIGH_WATER`` changes pile up. The cache starts at the leader's
  first turn (kept warm), or else at any state read, and is then dropped
  ``IDLE_AFTER`` seconds after the last one.
- A cold cache (more than ``PARK_LIMIT`` changes behind: the first read of a large
  cluster) is filled by a child forked for it (:meth:`LoopReads._start_fill`): the
  child catches the cache up (0.6 s at 100,000 tasks, which the loop would have spent
  in slices while another child built the answer the old way, 0.85 s), answers the
  reads that wait from it, and sends back the cache's views and totals with the
  answers; the loop sends those, decodes the views and totals the next turn and takes
  them in (:meth:`~mesos_zmq.master.read_cache.ReadCache.install`) the one after (each
  turn 30-65 ms at 100,000 tasks), and then catches up only with what changed since
  the fork. State reads that come
  meanwhile wait for it. A fill that fails sends its reads to the reader child as
  before, and no fill is tried again for ``FILL_RETRY`` seconds (the cache then warms
  in slices); so does one whose views the cache refuses (it moved since the fork, or
  a sample of them is not what the loop makes of those tasks).

A cache kept warm (``keep_warm``, the master's way): a cold cache is what made the
first read of a large cluster slow. Its fill is 0.6 s of work at 100,000 tasks, and the
filling child, forked when the read came, was starved of CPU on two busy cores: the
first read took 2.0-4.1 s. So the cache is not cold when a read comes: it is attached
at the leader's first turn, while the cluster is still small or empty, grows with it
change by change, and is caught up in the background at most every
``KEEP_WARM_EVERY`` seconds (a slice a turn), so that a read finds at most that much
to catch up with. Its cost is that of the reads' own catching up, spread out: the
views of the tasks that changed (3-9 µs each; a short task that starts and ends
between two catch-ups costs next to nothing), the journal's notes, and ~40 MB of
views at 100,000 tasks; under the benchmark's churn (4,000-5,500 tasks/s, 5,000 in
flight) measured 8-9 % of the master's loop while nobody reads (py-spy), most of it
the views and counts of the ~5,000 short tasks in flight at each catch-up, counted out
again at the next. So a background catch-up under churn (more than ``DEFER_FROM``
changes since the last, at most ``DEFER_LIMIT`` pending) leaves for the next what
changes while it runs (:meth:`~mesos_zmq.master.read_cache.ReadCache.catch_up`,
``defer``): a short task that starts and ends between two of them is only forgotten
(in-process at 6,000 tasks/s, one every 1.2 s: 55 ms a second of catching up before,
17 after); a read takes in everything, the rest a catch-up due after
``KEEP_WARM_EVERY``. It is never dropped while kept warm (``IDLE_AFTER`` applies only
otherwise). A leader
that starts with a large cluster (a failover: more than ``PARK_LIMIT`` tasks) lets
the agents and frameworks re-register first: ``COLD_FILL_AFTER`` seconds after its
first turn that saw that core it attaches the cache and forks a child to fill it,
with no reads to answer (a read that comes earlier forks it at once, as above).

State reads are paced: an answer built in the loop costs it 45-100 ms on the
benchmark's two busy cores at 100,000 tasks (catching up with what changed since the
last, and the 20 MB frame), and a dashboard that asks again as soon as it is answered
(4-5 reads a second) took a quarter of the loop from the agents and frameworks: their
rate fell to 0.68-0.75 of what it was without reads. So the state reads that come
within ``spent / READ_SHARE`` seconds of the last answered (``spent``: the loop's time
on those, from their coming to their answers; at most ``MAX_PACE`` seconds, and none
if it was below ``PACE_FROM``) wait until then, and are answered together, from the
state of that instant (a read is built when it is answered: it shows every change
committed before, never one that is not). A read so waits at most ``MAX_PACE``
seconds more, and the cache catches up with the changes of that wait once (a short
task that came and went meanwhile is only forgotten), a slice a turn from ``PREWARM``
seconds before their turn. Pages (``get_tasks``, a few ms) are not paced.

``READ_SHARE`` is the loop's share for reads back to back, but not all they cost: each
whole state is also 20 MB for ZeroMQ's I/O thread and the kernel to send, on the same
two cores. At a tenth (answers of ~50 ms, so paced ``MAX_PACE`` apart) a framework's
rate fell to 0.85 of its rate without reads; answers now cost less (an agent's view is
patched, not built again, where only its tasks changed: see
:class:`~mesos_zmq.master.read_cache._AgentViews`), and the share is a twentieth, so
that reads come no more often than they did but cost the loop less each.

Whole states and summaries (``tasks_limit`` set: at most ``MAX_TASKS_PAGE`` tasks,
every agent) are paced apart, each by what its own reads spent (``_lane``): a summary
does not wait for the turn of whole states (under pacing it took 0.46 s, against 0.10 s
before), nor they for its. A summary's lane counts what its answers cost (a few ms:
below ``PACE_FROM`` at 10,000 agents, so not paced), not the catching up before them,
which the cache does anyway (in the background, or for whichever read comes next) and
whose cost follows the changes, not the reads: a summary that catches up a second of
changes is not held back for it.

Anything else, and any read the cache fails on (logged), goes to the child as before.
"""

from __future__ import annotations

import struct
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack
import structlog

from mesos_zmq.master.forked import ForkedJob
from mesos_zmq.master.operator_api import shows_of
from mesos_zmq.master.read_cache import FillBase, ReadCache
from mesos_zmq.master.views import remembered
from mesos_zmq.protocol import GetState, GetTasks, encode

if TYPE_CHECKING:
    from mesos_zmq.master.core import DeferredRead, MasterCore

log = structlog.get_logger()

#: changed tasks a state read catches up with at once (3-9 µs each: with the answer's
#: own 20-35 ms, this bounds the loop's time on a read to ~50 ms in a quiet process)
IN_LOOP_PENDING = 3_000
#: changed tasks a turn that caught up a slice may still catch up with to answer (~4 ms)
AFTER_SLICE = 750
#: changed tasks beyond which a read goes to the child at once (a cold cache: catching
#: up would take more turns than it may wait)
PARK_LIMIT = 60_000
#: changed tasks the cache lets pile up between reads before it catches up a slice a
#: turn anyway (so that the next read waits a few turns at most)
HIGH_WATER = 20_000
#: changes since the last catch-up beyond which a background one leaves for later what
#: changes while it runs (churn: at 6,000 tasks/s, ~12,000 a second; with fewer, each
#: costs too little to matter)
DEFER_FROM = 5_000
#: changes beyond which a background catch-up takes in everything, not leaving for
#: later what changes while it runs. What it leaves, plus HIGH_WATER fresh changes,
#: must stay well below PARK_LIMIT: past it a burst (a framework torn down) would fork
#: a fill of the whole master rather than catch up in the loop. Under steady churn what
#: a catch-up leaves is what changed while it ran (hundreds), far below this.
DEFER_LIMIT = PARK_LIMIT // 4
#: seconds of catching up per loop turn while reads wait or the cache is far behind: a
#: busy master turns 4-9 times a second and changes ~2,000 tasks a turn (10,000 agents,
#: 3,000 tasks/s), so a slice must redo more than that
SLICE = 0.02
#: seconds of catching up per loop turn for reads that waited a turn already
WAIT_SLICE = 0.05
#: seconds a read waits for the cache before it goes to the child
MAX_WAIT = 2.0
#: seconds of catching up per loop turn while the cache is too far behind for reads to
#: wait (they go to the child meanwhile): a cold cache at 100,000 tasks is 0.6 s of work
COLD_SLICE = 0.05
#: at most this share of the loop's time goes to state reads that come back to back, in
#: each lane (see "paced" in the module docstring)
READ_SHARE = 0.05
#: seconds a state read waits for its turn, at most
MAX_PACE = 0.5
#: seconds before their turn when the cache catches up a slice a turn for reads that
#: wait for it (so that they are answered then, not turns later)
PREWARM = 0.25
#: seconds of the loop's time below which state reads are not paced (a small cluster)
PACE_FROM = 0.02
#: seconds after the last state read when the cache is dropped (while it is kept, each
#: change of a task costs the master a few microseconds more, once)
IDLE_AFTER = 60.0

#: seconds between background catch-ups of a cache kept warm. A read finds at most this
#: much of changes to catch up with (the benchmark's master changes ~8,000 tasks a
#: second: a slice or two). The longer, the less a change costs: a short task that
#: started and ended meanwhile costs next to nothing, and only the finished ones still
#: in the bounded history are viewed (in-process, with churn only: 5.4 µs a finished
#: task caught up every 1,000, 2.8-3.3 every 4,000, 2.0 every 12,000)
KEEP_WARM_EVERY = 2.0
#: seconds after a leader's first turn before a cache kept warm is attached to a large
#: cluster and filled by a child (a failover; as the first snapshot's hold: agents and
#: frameworks re-register meanwhile)
COLD_FILL_AFTER = 15.0

#: seconds a child filling a cold cache may take before its reads go to a reader child
FILL_TIMEOUT = 60.0
#: seconds after a failed fill before the next is tried
FILL_RETRY = 60.0

#: (connection, frame) to send
Answer = tuple[bytes, bytes]


#: what a filling child's answer opens with: the length of its frames (then its cache)
_FILL_HEAD = struct.Struct("!Q")

#: the lanes in which state reads are paced (see "paced" in the module docstring):
#: whole states, and summaries (``tasks_limit`` set: at most ``MAX_TASKS_PAGE`` tasks)
_WHOLE, _SUMMARY = 0, 1


def _lane(read: DeferredRead) -> int:
    msg = read.message
    return _SUMMARY if isinstance(msg, GetState) and msg.tasks_limit is not None else _WHOLE


@dataclass(slots=True)
class _Fill:
    """A child at work filling the cache: the reads it answers, the cache as it was
    when it was forked; then what it sent back, and that decoded, turn by turn."""

    reads: list[tuple[DeferredRead, float]]
    base: FillBase
    data: memoryview | None = None
    #: where in ``data`` the cache starts
    cache_at: int = 0
    parts: list[Any] | None = None


class LoopReads:
    """Answers the reads that are cheap in the loop; see the module docstring."""

    def __init__(self, idle_after: float = IDLE_AFTER, keep_warm: bool = True) -> None:
        """``keep_warm``: attach the cache at the first turn and keep it caught up
        (see the module docstring); else it starts at the first state read and is
        dropped ``idle_after`` seconds after the last."""
        self.cache = ReadCache()
        self.idle_after = idle_after
        self.keep_warm = keep_warm
        #: the core the turns last saw, and when the cache may be attached to it (a
        #: weak reference: a core replaced must not be kept alive by this)
        self._seen: tuple[weakref.ref[MasterCore], float] | None = None
        #: when the background last caught up
        self._kept_at = -KEEP_WARM_EVERY
        self._wanted_at = 0.0
        #: state reads waiting for the cache to catch up, with when they came
        self._waiting: list[tuple[DeferredRead, float]] = []
        #: the cache is behind by more than a read may wait for: catch up each turn
        self._warming = False
        #: per lane (``_WHOLE``, ``_SUMMARY``): state reads that come are not answered
        #: before then (``now``'s clock), and what the loop spent on those waiting
        #: meanwhile (seconds: see "paced")
        self._paced_until = [0.0, 0.0]
        self._spent = [0.0, 0.0]
        #: seconds of the last :meth:`_answer_waiting` spent catching up
        self._caught_up = 0.0
        #: the background catch-up under way leaves for later what changed since it
        #: began (see "a cache kept warm" in the module docstring)
        self._deferring = False
        self._filler = ForkedJob(FILL_TIMEOUT, "read cache filler")
        self._fill: _Fill | None = None
        self._fill_failed_at = -FILL_RETRY

    @property
    def filling(self) -> bool:
        """Whether a child is filling the cache."""
        return self._fill is not None

    def fileno(self) -> int | None:
        """The pipe of the child filling the cache, for the loop's poller (None: no
        child; the loop's turns come back for it anyway, at least every 50 ms)."""
        return self._filler.fileno()

    def close(self) -> None:
        self._filler.close()
        self._fill = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def take(self, core: MasterCore, reads: Sequence[DeferredRead], now: float,
             epoch: int) -> tuple[list[Answer], list[DeferredRead]]:
        """Answers built now, and the reads for a child; reads that wait for the cache
        are answered by a later :meth:`turn`."""
        answers: list[Answer] = []
        forked: list[DeferredRead] = []
        for read in reads:
            msg = read.message
            if isinstance(msg, GetState):
                self._wanted_at = now
                self._waiting.append((read, now))
                continue
            frame = self._guarded(core, read, now, epoch)
            if frame is None:
                forked.append(read)
            else:
                answers.append((read.peer, frame))
        more, later = self._answer_waiting(core, now, epoch)
        return answers + more, forked + later

    def turn(self, core: MasterCore, now: float, epoch: int
             ) -> tuple[list[Answer], list[DeferredRead]]:
        """Once a loop turn: catch up a slice if reads wait (or the cache is far behind,
        or kept warm and due) and answer those that can be; start the cache if kept
        warm, else drop it once state reads stop."""
        if self._fill is not None:
            answers, forked = self._collect_fill(core, now, epoch)
            return answers, forked + self._overdue(core, now)
        if self._waiting:
            return self._answer_waiting(core, now, epoch)
        cache = self.cache
        if not cache.attached_to(core):
            if cache.attached:
                cache.detach()  # the core was replaced: let go of the old one's maps
            if self.keep_warm:
                self._warm_start(core, now, epoch)
            return [], []
        if not self.keep_warm and now - self._wanted_at > self.idle_after:
            cache.detach()
            self._warming = False
        elif self._warming or cache.fresh > HIGH_WATER or (
                self.keep_warm and cache.pending and now - self._kept_at >= KEEP_WARM_EVERY):
            self._kept_at = now
            # (decided as a catch-up begins; one cut short goes on as it began, unless
            # what it left grew past DEFER_LIMIT meanwhile)
            self._deferring = (self._deferring if self._warming else
                               cache.fresh > DEFER_FROM) and cache.pending <= DEFER_LIMIT
            if self.keep_warm and cache.pending > PARK_LIMIT and self._may_fill(now):
                self._fill_in_background(core, now, epoch)
                return [], []
            try:
                slice_ = COLD_SLICE if cache.pending > PARK_LIMIT else SLICE
                self._warming = not cache.catch_up(core, time.perf_counter() + slice_,
                                                   defer=self._deferring) \
                    and cache.pending > IN_LOOP_PENDING
                self._deferring = self._deferring and self._warming
            except Exception:  # the cache's fault must not be the master's
                log.exception("the read cache failed to catch up; it starts over")
                self._failed(core, now)
        return [], []

    def _failed(self, core: MasterCore, now: float) -> None:
        """The cache failed: let it go, and start it again (kept warm) no sooner than
        ``FILL_RETRY`` seconds from now; a fault that comes back must not make the
        master rebuild it, and log why, turn after turn."""
        self.cache.detach()
        self._warming = False
        self._seen = (weakref.ref(core), now + FILL_RETRY)

    def _overdue(self, core: MasterCore, now: float) -> list[DeferredRead]:
        """While a child fills the cache, the reads that came after it was forked wait
        for it, but no longer than ``MAX_WAIT``: then a reader child answers them (a
        fill the master began on its own, with no read waiting, may take up to
        ``FILL_TIMEOUT`` on busy cores)."""
        if self._fill is None or not self._waiting:
            return []
        late = [read for read, since in self._waiting if now - since > MAX_WAIT]
        if late:
            for _ in late:
                core.count("state_reads_forked_fill_slow")
            self._waiting = [(read, since) for read, since in self._waiting
                             if now - since <= MAX_WAIT]
        return late

    def _warm_start(self, core: MasterCore, now: float, epoch: int) -> None:
        """A turn with the cache not attached to ``core`` while kept warm: attach it at
        once to a small cluster (it then grows change by change); to a large one (a
        new leader that took over a cluster) ``COLD_FILL_AFTER`` seconds after the
        first turn that saw this core, and fill it by a child."""
        state = core.state
        large = len(state.tasks) + len(state.completed) > PARK_LIMIT
        seen = self._seen
        if seen is None or seen[0]() is not core:
            seen = self._seen = (weakref.ref(core), now + (COLD_FILL_AFTER if large else 0.0))
        if now < seen[1]:
            return
        try:
            core.count("read_cache_started")
            self.cache.attach(core)
        except Exception:  # the cache's fault must not be the master's
            log.exception("the read cache failed to start; it is tried again later")
            self.cache.detach()
            self._seen = (seen[0], now + FILL_RETRY)
            return
        if large and self._may_fill(now):
            self._fill_in_background(core, now, epoch)
        else:
            self._warming = large  # slices, a turn at a time

    def _fill_in_background(self, core: MasterCore, now: float, epoch: int) -> None:
        """Fork a child to fill the cache with no read waiting; if none can be forked,
        the cache warms in slices and no child is tried for ``FILL_RETRY`` seconds."""
        self._warming = True  # (once the child's fill is taken: what changed since)
        try:
            self._start_fill(core, now, epoch)
        except Exception:
            log.exception("no child could be forked to fill the read cache; it warms in "
                          "slices")
            core.count("read_cache_fills_failed")
            self._fill_failed_at = now

    def _may_fill(self, now: float) -> bool:
        """Whether a child may be forked to fill the cache (none failed lately)."""
        return now - self._fill_failed_at >= FILL_RETRY

    # ------------------------------------------------------------------ state reads
    def _answer_waiting(self, core: MasterCore, now: float, epoch: int
                        ) -> tuple[list[Answer], list[DeferredRead]]:
        """Answer the state reads that wait, once it is their lane's turn (see "paced"
        in the module docstring): what the loop spent on a lane's reads, catching up
        and building answers, sets when its next may be answered."""
        if not self._waiting or self._fill is not None:
            return [], []  # none, or they wait for the fill
        started = time.perf_counter()
        paced_until, spent = self._paced_until, self._spent
        self._caught_up = 0.0
        lanes = {_lane(read) for read, _ in self._waiting}
        due = {lane for lane in lanes if now >= paced_until[lane]}
        if not due:  # they wait for their turn
            cache = self.cache
            if now >= min(paced_until[lane] for lane in lanes) - PREWARM \
                    and cache.attached_to(core) and cache.pending > AFTER_SLICE:
                # so that they need not wait turns for the cache then
                try:
                    cache.catch_up(core, started + WAIT_SLICE)
                except Exception:  # the cache's fault must not be the master's
                    log.exception("the read cache failed to catch up; it starts over")
                    self._failed(core, now)
                if _WHOLE in lanes:  # (a summary's lane does not count catching up)
                    spent[_WHOLE] += time.perf_counter() - started
            return [], []
        held = [(read, since) for read, since in self._waiting if _lane(read) not in due]
        if held:
            self._waiting = [(read, since) for read, since in self._waiting
                             if _lane(read) in due]
        answers, forked = self._answer_now(core, now, epoch)
        self._waiting += held
        elapsed = time.perf_counter() - started
        left = {_lane(read) for read, _ in self._waiting}
        for lane in due:
            # a summary's lane counts what its answers cost, not the catching up
            spent[lane] += elapsed if lane == _WHOLE else elapsed - self._caught_up
            if lane not in left:  # all answered (or forked): the next wait for their turn
                if spent[lane] >= PACE_FROM:
                    paced_until[lane] = now + min(MAX_PACE, spent[lane] / READ_SHARE)
                spent[lane] = 0.0
        return answers, forked

    def _answer_now(self, core: MasterCore, now: float, epoch: int
                    ) -> tuple[list[Answer], list[DeferredRead]]:
        cache = self.cache
        behind = False
        began = time.perf_counter()
        try:
            if not cache.attached_to(core):
                core.count("read_cache_started")
                cache.attach(core)
            if cache.pending > PARK_LIMIT and self._may_fill(now):
                self._start_fill(core, now, epoch)
                return [], []
            if cache.pending > IN_LOOP_PENDING:
                # a slice; the answers too if it left next to nothing (a busy master
                # changes 1,500-3,000 tasks a turn: few turns start with few changes)
                waited = any(since < now for _, since in self._waiting)
                cache.catch_up(core, time.perf_counter() + (WAIT_SLICE if waited else SLICE))
                behind = cache.pending > AFTER_SLICE
            if not behind:
                cache.catch_up(core)  # what the answers show (each then finds it done)
        except Exception:  # the cache's fault must not be the master's: the child answers
            log.exception("the read cache failed to catch up; reads go to a reader process")
            self._failed(core, now)
            self._fill_failed_at = now  # (or a fork to fill it failed)
            waiting, self._waiting = self._waiting, []
            return [], [read for read, _ in waiting]
        self._caught_up += time.perf_counter() - began
        waiting, self._waiting = self._waiting, []
        if behind:
            # reads wait a few turns, unless it is too far behind for that
            self._warming = cache.pending > IN_LOOP_PENDING
            self._deferring = False
            forked = []
            for read, since in waiting:
                if cache.pending > PARK_LIMIT or now - since > MAX_WAIT:
                    core.count("state_reads_forked_cache_behind")
                    forked.append(read)
                else:
                    self._waiting.append((read, since))
            return [], forked
        answers: list[Answer] = []
        forked = []
        for read, _ in waiting:
            frame = self._guarded(core, read, now, epoch)
            if frame is None:
                forked.append(read)
            else:
                answers.append((read.peer, frame))
        return answers, forked

    # ------------------------------------------------------------------ a cold cache
    def _start_fill(self, core: MasterCore, now: float, epoch: int) -> None:
        """Fork a child that fills the cache and answers the waiting reads from it."""
        cache = self.cache
        reads = list(self._waiting)
        base = cache.fill_base(core)

        def work() -> bytes:  # in the child: the answers, then the cache
            frames = msgpack.packb([self._in_child(core, read, now, epoch)
                                    for read, _ in reads], use_bin_type=True)
            return b"".join((_FILL_HEAD.pack(len(frames)), frames,
                             msgpack.packb(cache.export(core), use_bin_type=True)))

        core.count("read_cache_fills")  # before the fork: the answers show it
        # a fork that fails raises: the reads still wait, and go to a reader child
        self._filler.start(work, now)
        self._waiting = []
        self._fill = _Fill(reads, base)
        log.info("a child fills the read cache", changes=cache.pending, reads=len(reads))

    def _in_child(self, core: MasterCore, read: DeferredRead, now: float,
                  epoch: int) -> bytes | None:
        """A read's frame from the child's cache, or else built as a reader child does."""
        frame = self._guarded(core, read, now, epoch)
        if frame is None:
            frame = self._built(core, read, now, epoch)
        return frame

    def _collect_fill(self, core: MasterCore, now: float, epoch: int
                      ) -> tuple[list[Answer], list[DeferredRead]]:
        """Once the filling child is done, over three turns (each ~30-60 ms at 100,000
        tasks, against 100-150 ms at once): send its answers; decode its cache; take
        it in and answer the reads that came meanwhile. Its reads go to a reader child
        if it failed."""
        fill = self._fill
        assert fill is not None
        if fill.data is None:
            outcome = self._filler.collect(now)
            if outcome is None:
                return [], []
            return self._fill_answers(core, fill, outcome.data, outcome.error, now)
        try:
            if fill.parts is None:
                fill.parts = msgpack.unpackb(fill.data[fill.cache_at:])
                return [], []
            self._fill = None
            if self.cache.install(core, fill.base, fill.parts):
                core.count("read_cache_filled")
            else:  # not the cache it was forked from, or not the same views
                core.count("read_cache_fills_refused")
                self._fill_failed_at, self._warming = now, True
        except Exception:  # the cache's fault must not be the master's
            log.exception("the read cache failed to take a filler's views; it starts over")
            self._fill = None
            self._failed(core, now)
            self._fill_failed_at = now
        return self._answer_waiting(core, now, epoch)

    def _fill_answers(self, core: MasterCore, fill: _Fill, data: bytes | None, error: str,
                      now: float) -> tuple[list[Answer], list[DeferredRead]]:
        """The answers of a filling child that is done (or its reads for a reader child,
        if it failed); what it made of the cache is taken in the next turns."""
        frames: list[bytes | None] | None = None
        if data is not None:
            try:
                (size,) = _FILL_HEAD.unpack_from(data)
                fill.data = memoryview(data)
                fill.cache_at = _FILL_HEAD.size + size
                frames = msgpack.unpackb(fill.data[_FILL_HEAD.size:fill.cache_at])
            except Exception:  # what it sent cannot be read: as if it failed
                log.exception("a read cache filler's answer is unreadable")
                frames = None
        if frames is None or len(frames) != len(fill.reads):
            log.warning("the read cache filler failed: its reads go to a reader process",
                        error=error)
            core.count("read_cache_fills_failed")
            self._fill = None
            self._fill_failed_at, self._warming = now, True
            return [], [read for read, _ in fill.reads]
        answers: list[Answer] = []
        forked: list[DeferredRead] = []
        for (read, _), frame in zip(fill.reads, frames, strict=True):
            if frame is None:
                forked.append(read)
            else:
                answers.append((read.peer, frame))
        return answers, forked

    def _guarded(self, core: MasterCore, read: DeferredRead, now: float,
                 epoch: int) -> bytes | None:
        """The frame answering ``read``, built here; None: leave it to the child."""
        msg = read.message
        try:
            if isinstance(msg, GetTasks):
                return self._built(core, read, now, epoch)
            if isinstance(msg, GetState):
                return self._state(core, read, msg, now, epoch)
        except Exception:  # a fault here must cost this read its fast path, not the master
            log.exception("a read failed in the loop; it goes to a reader process",
                          kind=msg.TYPE)
            self.cache.detach()
        return None

    def _built(self, core: MasterCore, read: DeferredRead, now: float, epoch: int
               ) -> bytes | None:
        """The answer the child would build, built here (cheap: see the module docstring)."""
        saved = core.principal
        try:
            messages = core.answer_read(read, now).messages
        finally:
            core.principal = saved
        if len(messages) != 1:
            return None
        _, reply, request_id = messages[0]
        return encode(reply, request_id, epoch)

    def _state(self, core: MasterCore, read: DeferredRead, msg: GetState, now: float,
               epoch: int) -> bytes | None:
        cache = self.cache
        if not cache.attached_to(core):
            return None  # the core was replaced while it waited: the child answers it
        cache.catch_up(core)
        saved = core.principal
        core.principal = read.principal  # what shows_of asks the ACLs about
        try:
            shows = remembered(shows_of(core))
            assert shows is not None
            if not cache.sees_every_task(shows):
                core.count("state_reads_forked_tasks_hidden")
                return None
            return cache.state_frame(core, now, shows, msg.tasks_limit, read.request_id,
                                     epoch)
        finally:
            core.principal = saved
