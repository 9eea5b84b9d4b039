"""What a master core tick costs with many idle agents (core only: no sockets, no log).

Registers ``--agents`` agents, then runs ``--seconds`` of ticks at 20 a second while
each agent sends a heartbeat every ``--heartbeat-interval`` seconds (spread evenly), as
connected idle agents do, and prints the mean and p99 tick time. Nothing here asserts:
figures are for humans to compare (issue 13 wants the tick independent of the number of
agents).

    python tools/bench_tick.py [--agents 10000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

from mesos_zmq.master.core import MasterCore, MasterCoreConfig  # noqa: E402
from mesos_zmq.protocol import Heartbeat, RegisterAgent  # noqa: E402

TICKS_PER_SECOND = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--heartbeat-interval", type=float, default=2.0)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    counter = itertools.count()
    core = MasterCore(MasterCoreConfig(heartbeat_interval=args.heartbeat_interval,
                                       missed_heartbeats=5),
                      lambda: f"id{next(counter):08d}")
    for i in range(args.agents):
        core.handle(f"a{i}".encode(), RegisterAgent(hostname=f"h{i}", resources="cpus:1"),
                    "", 0.0)
    slots = max(1, int(args.heartbeat_interval * TICKS_PER_SECOND))
    times = []
    for step in range(int(args.seconds * TICKS_PER_SECOND)):
        now = (step + 1) / TICKS_PER_SECOND
        for i in range(step % slots, args.agents, slots):
            core.handle(f"a{i}".encode(), Heartbeat(), "", now)
        started = time.perf_counter()
        core.tick(now)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"reproduce: python tools/bench_tick.py --agents {args.agents} "
          f"--seconds {args.seconds:g} --heartbeat-interval {args.heartbeat_interval:g}")
    print(f"agents={args.agents} ticks={len(times)} mean_ms={statistics.mean(times):.2f} "
          f"p99_ms={p99:.2f} connected={len(core.peers)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
