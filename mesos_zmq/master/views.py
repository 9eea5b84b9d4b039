"""The operator's view of the cluster: plain data built from the master core.

Kept apart from the core's rules: it only reads. Pure (no clock, no I/O).

Task listings
-------------
The master's tasks in one sequence: finished tasks in the order they ended, then active
ones in the order the master took them. ``asc`` is that order (oldest first); ``desc``
its reverse (newest first: active tasks, newest first, then the most recently
finished). :func:`task_page` cuts a page of it (``get_tasks``); ``describe_cluster``
with ``tasks_limit`` shows its first ``desc`` page, so that ``state`` stays small
however many tasks there are. What the reader may not see (``shows``) is left out
before anything is counted or cut.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mesos_zmq.master.state import AgentRecord, TaskRecord
from mesos_zmq.resources import Resources

if TYPE_CHECKING:
    from mesos_zmq.master.context import ClusterView

#: the orders of a task listing (see "Task listings")
TASK_ORDERS = ("asc", "desc")
#: which tasks a listing holds
TASK_SETS = ("all", "active", "completed")

Shows = Callable[[str, str], bool]


def remembered(shows: Shows | None) -> Shows | None:
    """``shows`` asked once per (action, framework): listings call it per task."""
    if shows is None:
        return None
    answers: dict[tuple[str, str], bool] = {}

    def show(action: str, framework_id: str) -> bool:
        answer = answers.get((action, framework_id))
        if answer is None:
            answer = answers[(action, framework_id)] = shows(action, framework_id)
        return answer

    return show


@dataclass(slots=True)
class TaskTotals:
    """Active tasks counted per framework and per agent, and what they use (resource
    texts, as ``state`` shows them): what the frameworks' and agents' views need of the
    tasks. :func:`count_tasks` counts them in one pass; the loop's read cache
    (:mod:`mesos_zmq.master.read_cache`) keeps them up to date change by change."""

    fw_tasks: dict[str, int] = field(default_factory=dict)
    agent_tasks: dict[str, int] = field(default_factory=dict)
    fw_used: dict[str, str] = field(default_factory=dict)
    agent_used: dict[str, str] = field(default_factory=dict)


def count_tasks(records: Iterable[TaskRecord]) -> TaskTotals:
    """The totals of ``records`` (the active tasks a reader may see)."""
    fw_tasks: dict[str, int] = {}
    agent_tasks: dict[str, int] = {}
    # Tasks come in a few shapes: count each resource text per agent and framework,
    # then add up counted shapes (Resources.total_of_texts; parses are cached).
    agent_shapes: dict[str, Counter[str]] = defaultdict(Counter)
    fw_shapes: dict[str, Counter[str]] = defaultdict(Counter)
    for rec in records:
        fw_tasks[rec.framework_id] = fw_tasks.get(rec.framework_id, 0) + 1
        agent_tasks[rec.agent_id] = agent_tasks.get(rec.agent_id, 0) + 1
        agent_shapes[rec.agent_id][rec.task.resources] += 1
        fw_shapes[rec.framework_id][rec.task.resources] += 1
    return TaskTotals(
        fw_tasks, agent_tasks,
        {fid: used_text(shapes) for fid, shapes in fw_shapes.items()},
        {aid: used_text(shapes) for aid, shapes in agent_shapes.items()})


def used_text(shapes: Mapping[str, int]) -> str:
    """What tasks of these counted shapes use, as ``state`` shows it."""
    return str(Resources.total_of_texts(shapes))


def describe_cluster(core: ClusterView, now: float, shows: Shows | None = None,
                     tasks_limit: int | None = None) -> dict[str, Any]:
    """Frameworks, agents, tasks (active, then recently completed), roles, counters.

    ``shows(action, framework_id)`` (the ACLs' view_frameworks and view_tasks) leaves
    out frameworks and tasks the reader may not see, and what they use from the agents'
    figures; roles show only those of frameworks it sees or an operator configured.
    ``tasks_limit`` caps the tasks shown: the newest ones (the first ``desc`` page of
    :func:`task_page`); ``task_counts`` counts them all."""
    state = core.state
    visible = remembered(shows)

    def show(action: str, framework_id: str) -> bool:
        return visible is None or visible(action, framework_id)

    totals = count_tasks(state.tasks.values() if visible is None else
                         (r for r in state.tasks.values() if show("view_tasks", r.framework_id)))
    completed = (len(state.completed) if visible is None else
                 sum(1 for r in state.completed.values() if show("view_tasks", r.framework_id)))
    if tasks_limit is None:
        tasks: Any = [active_task_view(core, rec) for rec in state.tasks.values()
                      if show("view_tasks", rec.framework_id)]
        tasks += [task_view(r) for r in state.completed.values()
                  if show("view_tasks", r.framework_id)]
    else:
        tasks, _ = task_page(core, visible, limit=tasks_limit)
    return cluster_view(core, now, shows, totals, completed, tasks)


def cluster_view(core: ClusterView, now: float, shows: Shows | None, totals: TaskTotals,
                 completed: int, tasks: Any, agents: Any = None) -> dict[str, Any]:
    """The ``state`` answer around its tasks: what :func:`describe_cluster` shows, from
    the visible tasks' ``totals`` and ``completed`` count. ``tasks`` (and ``agents``,
    None: built here) go in as given: the read cache passes placeholders for bytes it
    splices in (see :mod:`mesos_zmq.master.read_cache`)."""
    state = core.state
    visible = remembered(shows)

    def show(action: str, framework_id: str) -> bool:
        return visible is None or visible(action, framework_id)

    empty = str(Resources.empty())
    frameworks: list[dict[str, Any]] = []
    visible_roles: set[str] = set()
    for fid, info in state.frameworks.items():
        if not show("view_frameworks", fid):
            continue
        connected, offers = core.runtime_of_framework(fid)
        visible_roles.update(info.roles)
        frameworks.append(
            {
                "id": fid,
                "name": info.name,
                "user": info.user,
                "roles": list(info.roles),
                "connected": connected,
                "failover_timeout": info.failover_timeout,
                "used_resources": totals.fw_used.get(fid, empty),
                "offers": offers,
                "active_tasks": totals.fw_tasks.get(fid, 0),
            }
        )
    shares = core.allocator.role_shares()
    weights = core.allocator.weights()
    quotas = core.allocator.quotas()
    roles = [
        {
            "role": role,
            "weight": weights.get(role, 1.0),
            "dominant_share": round(shares.get(role, 0.0), 6),
            "allocated": core.allocator.role_allocation(role),
            "guarantee": dict(quotas[role].guarantee) if role in quotas else {},
            "limit": dict(quotas[role].limit) if role in quotas else {},
        }
        for role in sorted(set(shares) | set(weights) | set(quotas))
        if shows is None or role in visible_roles or role in weights or role in quotas
    ]
    return {
        "master": {
            "id": core.config.master_id,
            **core.facts,
            "started_at": core.wall(core.started_at),
            "now": core.wall(now),
            "heartbeat_interval": core.config.heartbeat_interval,
            # what agents beat at: longer in a large cluster (--max-agent-heartbeats)
            "agent_heartbeat_interval": core.agent_heartbeat_interval,
            "missed_heartbeats": core.config.missed_heartbeats,
        },
        "frameworks": frameworks,
        "agents": agent_views(core, totals) if agents is None else agents,
        "tasks": tasks,
        "task_counts": {"active": sum(totals.fw_tasks.values()), "completed": completed},
        "roles": roles,
        "counters": dict(core.counters),
    }


def agent_views(core: ClusterView, totals: TaskTotals) -> list[dict[str, Any]]:
    """Every agent's view, with the visible tasks it runs (``totals``)."""
    empty = str(Resources.empty())
    return [agent_view(core, totals, aid, agent, empty)
            for aid, agent in core.state.agents.items()]


def agent_view(core: ClusterView, totals: TaskTotals, aid: str, agent: AgentRecord,
               empty: str) -> dict[str, Any]:
    """One agent's view (``empty``: ``str(Resources.empty())``). What it shows comes
    from the agent's record, its reservations and drain, whether it is connected, and
    ``totals``: the read cache keeps each agent's view encoded, and redoes it when one
    of these changes (:class:`~mesos_zmq.master.read_cache._AgentViews`): whatever is
    shown here must be watched there too."""
    state = core.state
    return {
        "id": aid,
        "hostname": agent.hostname,
        "resources": agent.resources,
        "attributes": agent.attributes,
        "used_resources": totals.agent_used.get(aid, empty),
        "reserved": state.reservations.get(aid, ""),
        "drain": ("" if aid not in state.draining
                  else "DRAINED" if state.draining[aid]["drained"] else "DRAINING"),
        "connected": core.agent_connected(aid),
        "active_tasks": totals.agent_tasks.get(aid, 0),
    }


def task_page(core: ClusterView, shows: Shows | None, *, limit: int, offset: int = 0,
              order: str = "desc", framework_id: str = "",
              which: str = "all") -> tuple[list[dict[str, Any]], int]:
    """A page of the task listing (see "Task listings") and how many tasks it has in
    all: at most ``limit`` views from ``offset`` on, of ``which`` tasks (all, active,
    completed), of one framework if ``framework_id`` is given, of those ``shows``
    lets the reader see. Values are the caller's to check (``TASK_ORDERS``...)."""
    state = core.state
    active: list[TaskRecord] = []
    done: list[TaskRecord] = []
    if which != "completed":
        active = list(state.tasks.values())
        if framework_id:
            active = [r for r in active if r.framework_id == framework_id]
    if which != "active":
        done = (state.completed_of(framework_id) if framework_id
                else list(state.completed.values()))
    if shows is not None:
        # asked once per framework, then a set lookup per task
        seen = {r.framework_id for r in active} | {r.framework_id for r in done}
        allowed = {fid for fid in seen if shows("view_tasks", fid)}
        if len(allowed) < len(seen):
            active = [r for r in active if r.framework_id in allowed]
            done = [r for r in done if r.framework_id in allowed]
    total = len(active) + len(done)
    start = min(offset, total)
    end = min(start + limit, total)
    if order == "desc":
        # newest first: active ones from the last taken, then finished from the last
        sequence = (active[::-1] + done[::-1])[start:end]
    else:
        sequence = (done + active)[start:end]
    views = [task_view(r) if r.terminal else active_task_view(core, r) for r in sequence]
    return views, total


def active_task_view(core: ClusterView, rec: TaskRecord) -> dict[str, Any]:
    """An active task's view, with what its agent last reported it used."""
    view = task_view(rec)
    usage = core.usage.get((rec.framework_id, rec.task_id))
    if usage is not None:
        view["usage"] = {"cpu_seconds": round(usage.cpu_seconds, 3),
                         "rss_bytes": usage.rss_bytes, "peak_bytes": usage.peak_bytes}
    return view


def task_view(rec: TaskRecord) -> dict[str, Any]:
    return {
        "id": rec.task_id,
        "name": rec.task.name,
        "framework_id": rec.framework_id,
        "agent_id": rec.agent_id,
        "state": rec.state.value,
        "exit_code": rec.exit_code,
        "message": rec.message,
        "reason": rec.reason,
        "resources": rec.task.resources,
        "role": rec.task.role,
        "updated_at": rec.updated_at,
    }
