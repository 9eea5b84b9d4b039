"""Run the deterministic cluster simulator over many seeds (GitHub issue 9).

    python tools/simulate.py --seeds 10000 [--steps 200] [--jobs 2] [--start 0]
    python tools/simulate.py --seed 1234          # replay one seed, full trace

Every seed is an independent, fully deterministic run of
:mod:`mesos_zmq.testing.sim`; a failing seed is printed with its minimal trace (its
faults shrunk unless ``--no-shrink``). The last line is
``seeds=N failed=F steps=S seconds=T``; the exit status is 1 if any seed failed.

A seed runs 200 steps by default (50 simulated seconds: 100 with faults, then 100 of
quiescence), so that 10,000 seeds take under ten minutes on two cores (issue 9);
``--steps 300`` runs the longer scenario (and replays need the same ``--steps``).

The cores iterate sets of strings, whose order depends on Python's hash seed, so the
tool re-executes itself with ``PYTHONHASHSEED=0`` (workers inherit it): a seed
replays identically here, in a worker, and in ``--seed`` mode.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _quiet() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
                        cache_logger_on_first_use=True)


def _one(job: tuple[int, int]) -> tuple[int, int, str | None, str]:
    from mesos_zmq.testing.sim import SimConfig, run

    seed, steps = job
    result = run(SimConfig(seed=seed, steps=steps, quiesce=min(140, steps // 2)))
    if result.failure is None:
        return seed, result.steps, None, ""
    return seed, result.steps, result.failure.name, result.failure.report()


def _init_worker() -> None:
    _quiet()


def sweep(seeds: list[int], steps: int, jobs: int, shrink: bool) -> int:
    from mesos_zmq.testing.sim import SimConfig, run
    from mesos_zmq.testing.sim import shrink as shrink_seed

    started = time.monotonic()
    failed: list[tuple[int, str, str]] = []
    total_steps = 0
    done = 0
    with multiprocessing.Pool(jobs, initializer=_init_worker) as pool:
        for seed, ran, name, report in pool.imap_unordered(
                _one, [(s, steps) for s in seeds], chunksize=8):
            done += 1
            total_steps += ran
            if name is not None:
                failed.append((seed, name, report))
                print(f"seed {seed} FAILED: {name}", flush=True)
            if done % 500 == 0 or done == len(seeds):
                print(f"... {done}/{len(seeds)} seeds, {len(failed)} failed, "
                      f"{time.monotonic() - started:.0f}s", flush=True)
    for seed, _name, report in sorted(failed)[:10]:
        if shrink:
            config = SimConfig(seed=seed, steps=steps, quiesce=min(140, steps // 2))
            result = run(config)
            if result.failure is not None:
                _, smaller = shrink_seed(config, result.failure)
                if smaller.failure is not None:
                    report = smaller.failure.report()
        print(report, flush=True)
    by_kind: dict[str, list[int]] = {}
    for seed, name, _ in failed:
        by_kind.setdefault(name, []).append(seed)
    for name, found in sorted(by_kind.items()):
        print(f"{name}: {len(found)} seeds, e.g. {sorted(found)[:10]}")
    print(f"seeds={len(seeds)} failed={len(failed)} steps={total_steps} "
          f"seconds={time.monotonic() - started:.1f}")
    return 1 if failed else 0


def replay(seed: int, steps: int, shrink: bool) -> int:
    from mesos_zmq.testing.sim import SimConfig, run
    from mesos_zmq.testing.sim import shrink as shrink_seed

    config = SimConfig(seed=seed, steps=steps, quiesce=min(140, steps // 2), trace_limit=None)
    result = run(config)
    print("\n".join(result.trace))
    print(f"faults: {', '.join(result.faults) or 'none'}")
    if result.failure is None:
        print(f"seeds=1 failed=0 steps={result.steps}")
        return 0
    if shrink:
        smaller_config, smaller = shrink_seed(config, result.failure)
        if smaller.failure is not None:
            print(f"--- shrunk: faults kept {', '.join(smaller.faults)} "
                  f"(disabled random faults {sorted(smaller_config.disabled)})")
    print(result.failure.report())
    print(f"seeds=1 failed=1 steps={result.steps}")
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--steps", type=int, default=200, help="steps per seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=None, help="replay one seed, full trace")
    parser.add_argument("--no-shrink", action="store_true", help="print failures unshrunk")
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    _quiet()
    if args.seed is not None:
        return replay(args.seed, args.steps, not args.no_shrink)
    seeds = list(range(args.start, args.start + args.seeds))
    return sweep(seeds, args.steps, max(1, args.jobs), not args.no_shrink)


if __name__ == "__main__":
    sys.exit(main())
