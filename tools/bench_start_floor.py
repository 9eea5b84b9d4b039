"""The host's floor for starting tasks: what the kernel alone needs per start.

Why: ``tools/bench_launch.py`` measures offer-to-RUNNING through the whole cluster
(master, agent, launcher, supervisors, framework), all on one host. Whether a target
such as "p50 ≤ 1 s for 2,000 tasks offered at once" is a matter of design or out of
reach on a given host depends on what the system calls of a start cost there, with no
Python in the way: this measures that.

Each start does what an agent's start does, from one process with nothing else in
it: the container's cgroups made with limits (the agent's own isolator), its events
file, sandbox, stdout and stderr created, the cgroups joined, ``sh -c true`` spawned
(``vfork`` and ``exec``, as the supervisor does), the cgroups left; each end is waited
for and its cgroups destroyed, at most :data:`OUTSTANDING` tasks behind the starts.
``--starters 1,2`` runs the same number of starts from one process, then split across
two side by side (order not kept), and prints the rate of each, the CPU time per start
(the starter's, and the started shell's), and the least a burst's median start could
take at that rate. Nothing asserts: figures are for humans to compare.

    python tools/bench_start_floor.py [--tasks 2000] [--starters 1,2] [--dir DIR]
                                      [--isolation auto|posix]

``--dir``: where sandboxes go (by default a new directory under the system's temporary
directory). On ext4 a file created where many were removed in the last minutes costs
several times more (see ``file_cost`` in bench_launch.py), so the run prints that cost
first. Needs root for cgroups; without them (``--isolation posix``) it measures the
rest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_launch import file_cost  # noqa: E402

from mesos_zmq.agent.isolation import Isolator, Limits, detect_isolator, join_cgroups  # noqa: E402

#: ended tasks the starter lets wait before it reaps the oldest (a supervisor reaps
#: as tasks end; a burst of ``true`` ends about as fast as it starts)
OUTSTANDING = 32
#: what each container is limited to (the limits are written, as the agent writes them)
LIMITS = Limits(cpus=0.01, mem_bytes=64 << 20, pids_max=64)


def start_many(isolator: Isolator, directory: Path, count: int, tag: str) -> dict[str, float]:
    """Start and reap ``count`` tasks; CPU seconds of this process and of its children."""
    homes = list(isolator.homes().values())
    before, kids_before = (resource.getrusage(resource.RUSAGE_SELF),
                           resource.getrusage(resource.RUSAGE_CHILDREN))
    waiting: list[tuple[subprocess.Popen[bytes], int, str]] = []

    def reap_oldest() -> None:
        proc, events, container = waiting.pop(0)
        proc.wait()
        os.write(events, b'{"event": "exited"}\n')
        os.close(events)
        isolator.destroy(container)

    for n in range(count):
        container = f"floor-{tag}-{n}"
        procs = isolator.prepare(container, LIMITS)
        sandbox = directory / container
        sandbox.mkdir()
        events = os.open(directory / f"{container}.events",
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        out = os.open(sandbox / "stdout", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        err = os.open(sandbox / "stderr", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            join_cgroups(procs)
            proc = subprocess.Popen(["sh", "-c", "true"], cwd=sandbox,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, close_fds=True)
        finally:
            join_cgroups(homes)
            os.close(out)
            os.close(err)
        os.write(events, b'{"event": "started"}\n')
        waiting.append((proc, events, container))
        if len(waiting) > OUTSTANDING:
            reap_oldest()
    while waiting:
        reap_oldest()
    after, kids_after = (resource.getrusage(resource.RUSAGE_SELF),
                         resource.getrusage(resource.RUSAGE_CHILDREN))
    return {"own": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
            "shells": (kids_after.ru_utime + kids_after.ru_stime
                       - kids_before.ru_utime - kids_before.ru_stime)}


def run(isolator: Isolator, directory: Path, tasks: int, starters: int) -> dict[str, float]:
    """``tasks`` starts split across ``starters`` forked processes side by side."""
    began = time.perf_counter()
    children: list[tuple[int, int]] = []
    for k in range(starters):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(read_end)
                share = tasks // starters + (1 if k < tasks % starters else 0)
                cpu = start_many(isolator, directory, share, f"{os.getpid()}")
                os.write(write_end, json.dumps(cpu).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        children.append((pid, read_end))
    own = shells = 0.0
    for pid, read_end in children:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not data:
            raise SystemExit(f"a starter failed (status {status}): see its traceback above")
        cpu = json.loads(data)
        own += cpu["own"]
        shells += cpu["shells"]
    wall = time.perf_counter() - began
    return {"wall": wall, "rate": tasks / wall, "own_ms": own / tasks * 1000,
            "shell_ms": shells / tasks * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--starters", default="1,2",
                        help="comma-separated numbers of starters side by side")
    parser.add_argument("--dir", default=None, help="where sandboxes go (default: a new "
                        "temporary directory)")
    parser.add_argument("--isolation", default="auto", choices=["auto", "posix"])
    args = parser.parse_args()
    counts = [int(c) for c in args.starters.split(",") if c.strip()]
    isolator = detect_isolator("mesos-zmq-floor", args.isolation)
    base = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-start-floor-", dir=base))
    print(f"tasks: {args.tasks} `sh -c true` starts; isolator {type(isolator).__name__}; "
          f"sandboxes under {work}")
    results: dict[int, dict[str, float]] = {}
    try:
        print(f"creating a file there cost {file_cost(work):.3f} ms just before the run")
        for count in counts:
            directory = work / f"starters-{count}"
            directory.mkdir()
            r = run(isolator, directory, args.tasks, count)
            results[count] = r
            print(f"[{count} starter(s)] {r['rate']:.0f} starts/s ({r['wall']:.2f} s); "
                  f"CPU a start: starter {r['own_ms']:.2f} ms + shell {r['shell_ms']:.2f} ms; "
                  f"a burst of {args.tasks}'s median start at this rate: "
                  f"{args.tasks / 2 / r['rate']:.2f} s after the first")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for parent in isolator.homes():  # the directories that held the containers
            with contextlib.suppress(OSError):
                os.rmdir(parent)
    best = max(results.values(), key=lambda r: r["rate"])
    print(f"reproduce: python tools/bench_start_floor.py --tasks {args.tasks} "
          f"--starters {args.starters} --isolation {args.isolation}")
    print(" ".join([f"tasks={args.tasks}",
                    *(f"starts_per_s_{c}={r['rate']:.0f}" for c, r in results.items()),
                    f"cpu_ms_per_start={best['own_ms'] + best['shell_ms']:.2f}",
                    f"median_start_floor_s={args.tasks / 2 / best['rate']:.2f}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
