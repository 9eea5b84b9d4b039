"""What a takeover costs the new leader's own thread, core and codec only (no sockets,
no ZooKeeper, no other process): a steadier figure than ``bench_cluster.py --zk``'s
failover, which shares two cores with 10,000 simulated agents reconnecting at once.

From a replicated state as a standby holds it (``--agents`` agents, ``--tasks`` running
tasks spread over them, one framework with an offer outstanding on every agent), it
times the three things the new leader's main thread does before every agent is back:
building its core from that state, handling each agent's first re-registration (its
frame decoded, handled, the answer encoded, the records of the turn packed as the log
would), and answering ``--repeats`` retries per agent (the agents' back-off sends them
while the new leader works through the first ones). Run with ``--log-level info`` to
count the per-agent log lines a daemon at its default level writes (to /dev/null here).
Prints milliseconds per step and microseconds per agent; asserts nothing (issue 13).

    python tools/bench_takeover.py [--agents 10000] [--tasks 100000] [--repeats 1]

``--profile N`` adds a run under cProfile and prints the N functions that took the most
of its first re-registrations (the profiler inflates small calls: it says where to
look, the runs without it say how long it takes).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402

from mesos_zmq.collector import tune_collector  # noqa: E402
from mesos_zmq.logs import configure_logging  # noqa: E402
from mesos_zmq.master import records as r  # noqa: E402
from mesos_zmq.master.core import MasterCore, MasterCoreConfig, Ready  # noqa: E402
from mesos_zmq.master.records import record_to_plain  # noqa: E402
from mesos_zmq.master.state import MasterState  # noqa: E402
from mesos_zmq.protocol import (  # noqa: E402
    FrameworkInfo,
    ReregisterAgent,
    TaskInfo,
    TaskReport,
    decode,
    encode,
    peek_reregistration,
)

AGENT = "cpus:16;mem:65536"
LONG = "cpus:0.5;mem:256"


def replicated(agents: int, tasks: int) -> MasterState:
    """The state a standby holds: agents, running tasks, an offer on each agent."""
    state = MasterState()
    state.apply(r.FrameworkAdded(framework=FrameworkInfo(
        name="f", framework_id="f", roles=["*"], failover_timeout=3600.0), time=1.0))
    for a in range(agents):
        state.apply(r.AgentAdded(agent_id=f"a{a:06d}", hostname=f"h{a}", resources=AGENT,
                                 time=1.0))
    for t in range(tasks):
        state.apply(r.TaskAdded(framework_id="f", task=TaskInfo(
            task_id=f"L{t}", agent_id=f"a{t % agents:06d}", resources=LONG, role="*",
            command="sleep 3600"), state="TASK_RUNNING", time=2.0))
    for a in range(agents):
        state.apply(r.OfferMade(offer_id=f"o{a}", framework_id="f", agent_id=f"a{a:06d}",
                                role="*", resources="cpus:1;mem:1024", time=3.0))
    return state


def reregistrations(state: MasterState, agents: int) -> list[tuple[bytes, bytes]]:
    """Each agent's re-registration frame, reporting the tasks the state says it runs."""
    frames = []
    for a in range(agents):
        agent_id = f"a{a:06d}"
        reports = [TaskReport(task=rec.task, framework_id=rec.framework_id,
                              state="TASK_RUNNING")
                   for rec in state.active_tasks_on(agent_id)]
        frames.append((b"peer%06d" % a, encode(ReregisterAgent(
            agent_id=agent_id, hostname=f"h{a}", resources=AGENT, tasks=reports),
            uuid.uuid4().hex[:12])))
    return frames


def flush(out: Ready) -> None:
    """What the server does with a turn's result: pack its records, encode its frames."""
    if out.records:
        msgpack.packb([record_to_plain(rec) for rec in out.records], use_bin_type=True)
    for _peer, msg, rid in out.messages:
        encode(msg, rid, 1)


def run(agents: int, tasks: int, repeats: int, turn: int,
        profile: cProfile.Profile | None = None) -> dict[str, float]:
    """One takeover; with ``profile``, the first re-registrations are profiled (their
    times then include the profiler's cost: compare the times of runs without it)."""
    state = replicated(agents, tasks)
    frames = reregistrations(state, agents)
    gc.collect()
    gc.freeze()  # as building_long_lived(): what the standby holds is out of sight
    counter = itertools.count()
    started = time.process_time()
    core = MasterCore(MasterCoreConfig(), lambda: f"id{next(counter)}", state, now=10.0)
    built = time.process_time()
    now = 10.0
    # first attempts, in turns of ``turn`` frames as the loop reads them
    if profile is not None:
        profile.enable()
    for i in range(0, len(frames), turn):
        out = Ready()
        for peer, frame in frames[i:i + turn]:
            envelope = decode(frame)
            out.extend(core.handle(peer, envelope.message, envelope.request_id, now))
        out.extend(core.tick(now))
        flush(out)
        now += 0.01
    if profile is not None:
        profile.disable()
    first = time.process_time()
    back = sum(1 for rt in core.agent_runtimes.values() if rt.peer)
    for _ in range(repeats):
        for i in range(0, len(frames), turn):
            out = Ready()
            for peer, frame in frames[i:i + turn]:
                peeked = peek_reregistration(frame)
                if peeked is not None:
                    again = core.reregistered_again(peer, peeked[1], peeked[0], now, None)
                    if again is not None:
                        out.extend(again)
                        continue
                envelope = decode(frame)
                out.extend(core.handle(peer, envelope.message, envelope.request_id, now))
            flush(out)
            now += 0.01
    done = time.process_time()
    gc.unfreeze()
    return {"core_ms": (built - started) * 1000, "first_ms": (first - built) * 1000,
            "repeats_ms": (done - first) * 1000, "back": back}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=1,
                        help="retries per agent after its first re-registration")
    parser.add_argument("--turn", type=int, default=2_000, help="frames per loop turn")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--log-level", default="warning",
                        help="the daemon's level; its lines go to /dev/null")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after the runs, one more under cProfile: the N functions "
                             "that took the most time of the first re-registrations")
    args = parser.parse_args()
    sink = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
    configure_logging("master", "json", args.log_level, stream=sink)
    tune_collector()
    results = [run(args.agents, args.tasks, args.repeats, args.turn)
               for _ in range(args.runs)]
    if args.profile:
        profile = cProfile.Profile()
        run(args.agents, args.tasks, args.repeats, args.turn, profile)
        stats = pstats.Stats(profile, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(args.profile)
    best = {key: min(res[key] for res in results) for key in results[0]}
    for res in results:
        print(f"core {res['core_ms']:.0f} ms, first re-registrations {res['first_ms']:.0f} ms "
              f"({res['first_ms'] * 1000 / args.agents:.0f} us an agent), "
              f"{args.repeats} repeat(s) each {res['repeats_ms']:.0f} ms; "
              f"{res['back']:.0f} agents back", flush=True)
    total = best["core_ms"] + best["first_ms"] + best["repeats_ms"]
    print("reproduce: python tools/bench_takeover.py " + " ".join(sys.argv[1:]))
    print(f"agents={args.agents} tasks={args.tasks} repeats={args.repeats} "
          f"log_level={args.log_level} core_ms={best['core_ms']:.0f} "
          f"first_ms={best['first_ms']:.0f} "
          f"first_us_per_agent={best['first_ms'] * 1000 / args.agents:.0f} "
          f"repeats_ms={best['repeats_ms']:.0f} total_ms={total:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
