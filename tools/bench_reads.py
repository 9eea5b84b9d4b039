"""What a ``state`` read costs the master's loop, the old way and from the read cache
(core only: no sockets, no fork), in the same process and run.

Builds a core with ``--agents`` agents and ``--tasks`` active tasks (``--completed``
more finished, a usage figure for every third), then prints, best of a few: building
and encoding the whole state and the summary with 100 tasks as the forked child does
(``describe_cluster`` + ``encode``); the same from the read cache once caught up;
catching up after ``--churn`` tasks started, ran and finished (and a tenth as many
agents changed); reads back to back with ``--churn`` tasks started and finished
between each two (``reads_*``: the median catching up and whole state, as a
dashboard's reads of a busy master find them); a cold cache filled by a forked child
(``fill_*``: what the loop spends to fork it, when the first answer is ready, the
longest loop turn until the cache is taken in, and the next read from it); and checks
that both ways give the same bytes. Then, with ``--steady`` seconds of a steady churn
(``--rate`` short tasks a second, each ending ``--latency`` seconds after it started,
as the benchmark's framework keeps ~5,000 in flight): what catching up costs the loop
a second (``steady_*_ms_per_s``) in the background every 1.2 s, all of it or leaving
what changed since (``defer``), and for reads every 0.2 s (back to back) or 0.6 s (as
they are paced), catching up and building each whole state.
Nothing here asserts beyond that check: figures are for humans to compare (issue 13).

    python tools/bench_reads.py [--agents 10000] [--tasks 100000] [--completed 1000]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import select
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

from mesos_zmq.master import loop_reads  # noqa: E402
from mesos_zmq.master import records as r  # noqa: E402
from mesos_zmq.master.core import DeferredRead, MasterCore, MasterCoreConfig  # noqa: E402
from mesos_zmq.master.loop_reads import LoopReads  # noqa: E402
from mesos_zmq.master.operator_api import shows_of  # noqa: E402
from mesos_zmq.master.read_cache import ReadCache  # noqa: E402
from mesos_zmq.master.runtime import AgentRuntime  # noqa: E402
from mesos_zmq.master.state import MasterState  # noqa: E402
from mesos_zmq.master.views import describe_cluster, remembered  # noqa: E402
from mesos_zmq.protocol import (  # noqa: E402
    FrameworkInfo,
    GetState,
    State,
    TaskInfo,
    TaskUsage,
    encode,
)

LONG = "cpus:0.1;mem:32"
SHORT = "cpus:0.01;mem:8"


def build(agents: int, tasks: int, completed: int) -> MasterCore:
    state = MasterState()
    state.apply(r.FrameworkAdded(framework=FrameworkInfo(name="f", framework_id="f"), time=1.0))
    for a in range(agents):
        state.apply(r.AgentAdded(agent_id=f"a{a:06d}", hostname=f"h{a}",
                                 resources="cpus:16;mem:65536", time=1.0))
    for t in range(tasks + completed):
        state.apply(r.TaskAdded(framework_id="f", task=TaskInfo(
            task_id=f"L{t}", agent_id=f"a{t % agents:06d}", resources=LONG,
            env={"SIM_SECONDS": "-1"}, role="*"), state="TASK_RUNNING", time=2.0))
    for t in range(tasks, tasks + completed):
        state.apply(r.TaskUpdated(framework_id="f", task_id=f"L{t}", state="TASK_FINISHED",
                                  exit_code=0, time=3.0))
    counter = itertools.count()
    core = MasterCore(MasterCoreConfig(), lambda: f"id{next(counter)}", state, now=10.0)
    for i, key in enumerate(list(state.tasks)[::3]):
        core.usage[key] = TaskUsage(key[0], key[1], 1.5 * i, 1000 + i, 2000 + i)
    return core


def churn(core: MasterCore, start: int, count: int, agents: int) -> None:
    """``count`` short tasks started, run and finished, as a busy framework's."""
    for t in range(start, start + count):
        core.state.apply(r.TaskAdded(framework_id="f", task=TaskInfo(
            task_id=f"s{t}", agent_id=f"a{t % agents:06d}", resources=SHORT, role="*"),
            state="TASK_STAGING", time=4.0))
        core.state.apply(r.TaskUpdated(framework_id="f", task_id=f"s{t}",
                                       state="TASK_RUNNING", time=4.5))
        core.state.apply(r.TaskUpdated(framework_id="f", task_id=f"s{t}",
                                       state="TASK_FINISHED", exit_code=0, time=5.0))


def agent_churn(core: MasterCore, count: int, agents: int) -> None:
    """``count`` agents changed: connected, drained, reserved on, registered again."""
    for a in range(0, agents, max(1, agents // count)):
        aid = f"a{a:06d}"
        kind = a % 4
        if kind == 0:
            core.agent_runtimes.setdefault(aid, AgentRuntime()).peer = aid.encode()
        elif kind == 1:
            core.state.apply(r.AgentDraining(agent_id=aid, time=5.0))
        elif kind == 2:
            core.state.apply(r.ReservationsSet(agent_id=aid, reserved="cpus(r):1", time=5.0))
        else:
            core.state.apply(r.AgentAdded(agent_id=aid, hostname=f"h{a}",
                                          resources="cpus:8;mem:32768", time=5.0))


def fill(core: MasterCore, shows: Any) -> dict[str, Any]:
    """A cold cache filled by a forked child, as the master's loop drives it."""
    reads = LoopReads()
    started = time.perf_counter()
    reads.take(core, [DeferredRead(b"r", GetState(), "r", None)], 22.0, 1)
    forked = time.perf_counter() - started
    expected = encode(State(state=describe_cluster(core, 22.0, shows, None)), "r", 1)
    answered_at = None
    longest = 0.0
    got = b""
    while reads.filling:
        fd = reads.fileno()
        if fd is not None:
            select.select([fd], [], [], 0.5)
        turn = time.perf_counter()
        answers, _ = reads.turn(core, 22.0, 1)
        longest = max(longest, time.perf_counter() - turn)
        if answers:
            answered_at = time.perf_counter() - started
            got = answers[0][1]
    # once the reads that came before it were paced (see loop_reads): its turn
    later = 22.0 + loop_reads.MAX_PACE
    next_ms, (answers, _) = best(lambda: reads.take(
        core, [DeferredRead(b"r", GetState(), "r", None)], later, 1), 1)
    assert answers, "the next read was not answered at its turn"
    reads.cache.detach()
    return {"fill_loop_fork_ms": round(forked * 1000, 1),
            "fill_answered_ms": round((answered_at or 0.0) * 1000),
            "fill_longest_turn_ms": round(longest * 1000, 1),
            "fill_next_read_ms": round(next_ms, 1), "fill_same_bytes": got == expected,
            "fill_taken": core.counters["read_cache_filled"] == 1}


def steady(core: MasterCore, shows: Any, seconds: float, rate: int, latency: float,
           agents: int) -> dict[str, Any]:
    """A steady churn, and what the cache costs the loop a second under it (see the
    module docstring)."""
    figures: dict[str, Any] = {}
    step = 0.01
    per = max(1, int(rate * step))
    serial = itertools.count()
    for name, every, read, defer in (("bg", 1.2, False, False),
                                     ("bg_defer", 1.2, False, True),
                                     ("reads_0.2s", 0.2, True, False),
                                     ("reads_0.6s", 0.6, True, False)):
        cache = ReadCache()
        cache.attach(core)
        cache.catch_up(core)
        started: list[tuple[float, str, bool]] = []
        t = last = 0.0
        spent = 0.0
        counted = 0
        while t < seconds:
            t += step
            for _ in range(per):
                n = next(serial)
                tid = f"y{n}"
                core.state.apply(r.TaskAdded(framework_id="f", task=TaskInfo(
                    task_id=tid, agent_id=f"a{n % agents:06d}",
                    resources=SHORT, role="*"), state="TASK_STAGING", time=t))
                started.append((t, tid, False))
            while started and started[0][0] + latency <= t:
                _, tid, _ = started.pop(0)
                core.state.apply(r.TaskUpdated(framework_id="f", task_id=tid,
                                               state="TASK_FINISHED", exit_code=0, time=t))
            if t - last >= every:
                last = t
                began = time.perf_counter()
                cache.catch_up(core, defer=defer)
                if read:
                    cache.state_frame(core, t, shows, None, "r", 1)
                if t > 1.0:  # once in flight
                    spent += time.perf_counter() - began
                    counted += 1
        figures[f"steady_{name}_ms_per_s"] = round(spent * 1000 / (seconds - 1.0), 1)
        if read:
            figures[f"steady_{name}_ms_per_read"] = round(spent * 1000 / max(counted, 1), 1)
        for _, tid, _ in started:
            core.state.apply(r.TaskUpdated(framework_id="f", task_id=tid,
                                           state="TASK_FINISHED", exit_code=0, time=t))
        cache.detach()
    return figures


def best(work: Callable[[], Any], times: int = 5) -> tuple[float, Any]:
    seconds, out = float("inf"), None
    for _ in range(times):
        started = time.perf_counter()
        out = work()
        seconds = min(seconds, time.perf_counter() - started)
    return seconds * 1000, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--completed", type=int, default=1_000)
    parser.add_argument("--churn", type=int, default=1_000)
    parser.add_argument("--steady", type=float, default=6.0,
                        help="seconds of steady churn (0: none)")
    parser.add_argument("--rate", type=int, default=6_000)
    parser.add_argument("--latency", type=float, default=0.8)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    core = build(args.agents, args.tasks, args.completed)
    shows = remembered(shows_of(core))
    assert shows is not None

    def child(limit: int | None) -> bytes:
        return encode(State(state=describe_cluster(core, 20.0, shows, limit)), "r", 1)

    cache = ReadCache()
    attach_ms, _ = best(lambda: cache.attach(core), 1)
    cold_ms, _ = best(lambda: cache.catch_up(core), 1)
    figures: dict[str, Any] = {"agents": args.agents, "tasks": args.tasks,
                               "attach_ms": round(attach_ms, 1), "cold_catch_up_ms": round(
                                   cold_ms)}
    for name, limit in (("full", None), ("summary", 100)):
        old_ms, old = best(lambda limit=limit: child(limit), 2)
        new_ms, new = best(lambda limit=limit: cache.state_frame(core, 20.0, shows, limit,
                                                                 "r", 1))
        figures[f"{name}_child_ms"] = round(old_ms)
        figures[f"{name}_cached_ms"] = round(new_ms, 1)
        figures[f"{name}_same_bytes"] = old == new
    churn(core, 0, args.churn, args.agents)
    agent_churn(core, args.churn // 10, args.agents)
    pending = cache.pending
    catch_ms, _ = best(lambda: cache.catch_up(core), 1)
    figures["churn_changes"] = pending
    figures["churn_catch_up_ms"] = round(catch_ms, 1)
    after_ms, after = best(lambda: cache.state_frame(core, 21.0, shows, None, "r", 1), 1)
    figures["after_churn_full_cached_ms"] = round(after_ms, 1)
    figures["after_churn_same_bytes"] = after == encode(
        State(state=describe_cluster(core, 21.0, shows, None)), "r", 1)
    catches, frames = [], []
    for round_ in range(1, 11):
        churn(core, round_ * args.churn, args.churn, args.agents)
        started = time.perf_counter()
        cache.catch_up(core)
        caught = time.perf_counter()
        frame = cache.state_frame(core, 21.0, shows, None, "r", 1)
        catches.append(caught - started)
        frames.append(time.perf_counter() - caught)
    figures["reads_catch_up_ms"] = round(statistics.median(catches) * 1000, 1)
    figures["reads_full_cached_ms"] = round(statistics.median(frames) * 1000, 1)
    figures["reads_same_bytes"] = frame == encode(
        State(state=describe_cluster(core, 21.0, shows, None)), "r", 1)
    cache.detach()
    # as the master's own: what it built at start is out of the collector's sight
    gc.freeze()
    figures.update(fill(core, shows))
    if args.steady:
        figures.update(steady(core, shows, args.steady, args.rate, args.latency, args.agents))
    print(f"reproduce: python tools/bench_reads.py --agents {args.agents} --tasks "
          f"{args.tasks} --completed {args.completed} --churn {args.churn} --steady "
          f"{args.steady} --rate {args.rate} --latency {args.latency}")
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
