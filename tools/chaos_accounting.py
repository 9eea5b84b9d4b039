"""The chaos run's own accounting, from the tasks' side (pure: text and numbers in, counts out).

The master's state and the framework's updates can both be wrong in the same way after a
failover (the new leader forgot a launch, so nobody knows the task ran). What the tasks
themselves wrote cannot be: every task of ``tools/chaos.py`` appends a ``start`` line when
it begins and an ``end`` line when it is about to exit, to one shared file, each with a
wall-clock timestamp, the agent id the agent gave it and its resources::

    start chaos-000042 1712345678.123456789 a1b2c3-S0 0.1 16
    end chaos-000042 1712345678.431234567 a1b2c3-S0 0.1 16

Each line is one short ``echo`` to a file opened with O_APPEND, so lines never interleave.
From these lines this module counts tasks started twice, instants where an agent ran more
than it has (overbooking), and disagreements with what the framework heard. Kept apart
from ``chaos.py`` so the rules can be read (and checked) without starting a cluster.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from dataclasses import dataclass, field

#: slack for float sums of task resources (0.1 + 0.2 ...)
EPSILON = 1e-6


@dataclass
class Marker:
    kind: str  # "start" | "end"
    task_id: str
    at: float  # seconds since the epoch
    agent_id: str
    cpus: float
    mem: float


@dataclass
class TaskSide:
    """What the marker file says about every task."""

    starts: dict[str, list[Marker]] = field(default_factory=dict)
    ends: dict[str, list[Marker]] = field(default_factory=dict)
    malformed: int = 0


def marker_command(path: str, cpus: float, mem: float, sleep: float) -> str:
    """The task's shell command: start line, a short sleep, end line.

    ``$MESOS_TASK_ID`` and ``$MESOS_AGENT_ID`` are set by the agent's containerizer, so
    a task relaunched somewhere else by mistake still names where it really ran.
    """
    target = shlex.quote(path)
    fields = f'$MESOS_TASK_ID $(date +%s.%N) $MESOS_AGENT_ID {cpus:g} {mem:g}'
    return (f'echo "start {fields}" >> {target}; sleep {sleep:g}; '
            f'echo "end {fields}" >> {target}')


def parse_markers(text: str) -> TaskSide:
    side = TaskSide()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 6 or parts[0] not in ("start", "end"):
            side.malformed += 1
            continue
        try:
            marker = Marker(parts[0], parts[1], float(parts[2]), parts[3], float(parts[4]),
                            float(parts[5]))
        except ValueError:
            side.malformed += 1
            continue
        bucket = side.starts if marker.kind == "start" else side.ends
        bucket.setdefault(marker.task_id, []).append(marker)
    return side


def started_twice(side: TaskSide) -> list[str]:
    return sorted(t for t, starts in side.starts.items() if len(starts) > 1)


@dataclass
class Overbooking:
    agent_id: str
    begin: float
    end: float
    cpus: float
    mem: float


def overbooked(side: TaskSide, totals: dict[str, tuple[float, float]],
               run_end: float) -> list[Overbooking]:
    """Intervals where the tasks running on one agent needed more than the agent has.

    Each start line opens a run on its agent until the first end line of the same task
    after it (a task that never wrote ``end`` runs until ``run_end``). A sweep over the
    sorted events yields maximal intervals where the running cpus or mem exceed the
    agent's total. The lines are written after the task began and before it exited, so
    the intervals are inside the real ones: what is found is real overbooking, never an
    artefact of the agent freeing resources late.
    """
    events: dict[str, list[tuple[float, int, float, float]]] = defaultdict(list)
    for task_id, starts in side.starts.items():
        ends = sorted(m.at for m in side.ends.get(task_id, []))
        for start in starts:
            finish = next((e for e in ends if e >= start.at), run_end)
            # ends sort before starts at the same instant: back to back is no overlap
            events[start.agent_id].append((start.at, 1, start.cpus, start.mem))
            events[start.agent_id].append((finish, 0, -start.cpus, -start.mem))
    found: list[Overbooking] = []
    for agent_id, evs in events.items():
        total_cpus, total_mem = totals.get(agent_id, (float("inf"), float("inf")))
        cpus = mem = 0.0
        open_at: float | None = None
        peak = (0.0, 0.0)
        for at, _, d_cpus, d_mem in sorted(evs):
            cpus += d_cpus
            mem += d_mem
            over = cpus > total_cpus + EPSILON or mem > total_mem + EPSILON
            if over and open_at is None:
                open_at, peak = at, (cpus, mem)
            elif over:
                peak = (max(peak[0], cpus), max(peak[1], mem))
            elif open_at is not None:
                found.append(Overbooking(agent_id, open_at, at, *peak))
                open_at = None
        if open_at is not None:
            found.append(Overbooking(agent_id, open_at, run_end, *peak))
    return found


def finished_without_end(side: TaskSide, finished: list[str]) -> list[str]:
    """Tasks the framework heard FINISHED that never wrote their end line."""
    return sorted(t for t in finished if t not in side.ends)


def started_unheard(side: TaskSide, heard_running: set[str]) -> list[str]:
    """Tasks that ran (start line) but whose framework never heard them RUNNING or done."""
    return sorted(t for t in side.starts if t not in heard_running)
