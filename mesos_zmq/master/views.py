"""The operator's view of the cluster: plain data built from the master core.

Kept apart from the core's rules: it only reads. Pure (no clock, no I/O).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mesos_zmq.errors import ResourceError
from mesos_zmq.master.state import TaskRecord
from mesos_zmq.resources import Resources

if TYPE_CHECKING:
    from mesos_zmq.master.context import ClusterView


def describe_cluster(core: ClusterView, now: float,
                     shows: Callable[[str, str], bool] | None = None) -> dict[str, Any]:
    """Frameworks, agents, tasks (active, then recently completed), roles, counters.

    ``shows(action, framework_id)`` (the ACLs' view_frameworks and view_tasks) leaves
    out frameworks and tasks the reader may not see, and what they use from the agents'
    figures; roles show only those of frameworks it sees or an operator configured."""
    state = core.state

    def show(action: str, framework_id: str) -> bool:
        return shows is None or shows(action, framework_id)

    used: dict[str, Resources] = {}
    fw_used: dict[str, Resources] = {}
    fw_tasks: dict[str, int] = {}
    agent_tasks: dict[str, int] = {}
    for rec in state.tasks.values():
        if not show("view_tasks", rec.framework_id):
            continue
        fw_tasks[rec.framework_id] = fw_tasks.get(rec.framework_id, 0) + 1
        agent_tasks[rec.agent_id] = agent_tasks.get(rec.agent_id, 0) + 1
        try:
            res = Resources.parse(rec.task.resources)
        except ResourceError:
            continue
        used[rec.agent_id] = used.get(rec.agent_id, Resources.empty()) + res
        fw_used[rec.framework_id] = fw_used.get(rec.framework_id, Resources.empty()) + res
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
                "used_resources": str(fw_used.get(fid, Resources.empty())),
                "offers": offers,
                "active_tasks": fw_tasks.get(fid, 0),
            }
        )
    agents = [
        {
            "id": aid,
            "hostname": agent.hostname,
            "resources": agent.resources,
            "attributes": agent.attributes,
            "used_resources": str(used.get(aid, Resources.empty())),
            "reserved": state.reservations.get(aid, ""),
            "drain": ("" if aid not in state.draining
                      else "DRAINED" if state.draining[aid]["drained"] else "DRAINING"),
            "connected": core.agent_connected(aid),
            "active_tasks": agent_tasks.get(aid, 0),
        }
        for aid, agent in state.agents.items()
    ]
    tasks = []
    for rec in state.tasks.values():
        if not show("view_tasks", rec.framework_id):
            continue
        view = task_view(rec)
        usage = core.usage.get((rec.framework_id, rec.task_id))
        if usage is not None:
            view["usage"] = {"cpu_seconds": round(usage.cpu_seconds, 3),
                             "rss_bytes": usage.rss_bytes, "peak_bytes": usage.peak_bytes}
        tasks.append(view)
    tasks += [task_view(r) for r in state.completed.values()
              if show("view_tasks", r.framework_id)]
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
            "missed_heartbeats": core.config.missed_heartbeats,
        },
        "frameworks": frameworks,
        "agents": agents,
        "tasks": tasks,
        "roles": roles,
        "counters": dict(core.counters),
    }


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
