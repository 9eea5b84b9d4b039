"""Checks of what agents and frameworks ask for; each returns a problem or None.

A returned problem becomes an error reply (or a TASK_ERROR update) that names what is
wrong, and nothing changes. Pure functions, so the rules are testable on their own.
"""

from __future__ import annotations

import re

from mesos_zmq.agent.health_policy import check_health_check
from mesos_zmq.attributes import parse_attributes
from mesos_zmq.errors import AttributeParseError, ResourceError
from mesos_zmq.protocol import FrameworkInfo, TaskInfo
from mesos_zmq.resources import Resources, validate_role

_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
MAX_KILL_GRACE = 3600.0


def valid_id(value: str) -> bool:
    """Ids become directory names on agents: keep them to a safe alphabet."""
    return bool(_ID_RE.match(value)) and value not in (".", "..")


def check_agent(resources: str, attributes: str) -> str | None:
    try:
        total = Resources.parse(resources)
    except ResourceError as exc:
        return str(exc)
    if not total:
        return "agent offers no resources"
    try:
        parse_attributes(attributes)
    except AttributeParseError as exc:
        return str(exc)
    return None


def check_framework(info: FrameworkInfo, allowed_roles: tuple[str, ...] | None) -> str | None:
    if not info.name.strip():
        return "framework name must not be empty"
    if info.framework_id and not valid_id(info.framework_id):
        return f"invalid framework id {info.framework_id[:64]!r}"
    if not info.roles:
        return "a framework needs at least one role"
    for role in info.roles:
        try:
            validate_role(role)
        except ResourceError as exc:
            return str(exc)
        if allowed_roles is not None and role not in allowed_roles and role != "*":
            allowed = ", ".join(allowed_roles)
            return f"role {role!r} is not allowed (allowed roles: {allowed})"
    if not 0 <= info.failover_timeout < 10**9:
        return "failover_timeout must be between 0 and 1e9 seconds"
    return None


def check_task(task: TaskInfo, agent_id: str, seen: set[str], id_in_use: bool) -> str | None:
    """``seen``: ids earlier in the same accept; ``id_in_use``: known to the framework."""
    if not valid_id(task.task_id):
        return f"invalid task id {task.task_id[:64]!r} (use letters, digits, '_', '.', '-')"
    if task.task_id in seen:
        return f"task id {task.task_id} appears twice in one accept"
    if id_in_use:
        return f"task id {task.task_id} is already in use by this framework"
    if task.agent_id and task.agent_id != agent_id:
        return f"task {task.task_id} names agent {task.agent_id} but the offers are on {agent_id}"
    if task.shell and not task.command.strip():
        return f"task {task.task_id} has an empty command"
    if not task.shell and not task.argv:
        return f"task {task.task_id} has no argv"
    if task.kill_grace_period is not None and not 0 <= task.kill_grace_period <= MAX_KILL_GRACE:
        return f"task {task.task_id}: kill_grace_period must be within 0..3600 seconds"
    if task.health_check is not None:
        problem = check_health_check(task.health_check)
        if problem is not None:
            return f"task {task.task_id}: {problem}"
    return None


def quota_amounts(text: str, what: str) -> dict[str, float]:
    """Scalar amounts of a quota (``cpus:4;mem:4096``); raises ValueError to reply with."""
    try:
        res = Resources.parse(text)
    except ResourceError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if res.roles() - {"*"}:
        raise ValueError(f"{what}: quota is counted in amounts; drop the (role) parts")
    kinds = {kind for _, _, kind, _ in res.entries()}
    if kinds - {"scalar"}:
        raise ValueError(f"{what}: quota takes scalar resources only (cpus, mem, disk, gpus)")
    return res.scalar_totals()


def check_weights(weights: dict[str, float]) -> str | None:
    if not weights:
        return "no weights given"
    for role, weight in weights.items():
        try:
            validate_role(role)
        except ResourceError as exc:
            return str(exc)
        if not 0 < weight < 1e9:
            return f"weight of role {role!r} must be a positive number, got {weight}"
    return None


def reservation_problem(res: Resources, offer_role: str | None) -> str | None:
    """What is wrong with resources to (un)reserve, if anything.

    Every entry must name a role (``cpus(eng):2``); through an offer, that role must be
    the offer's role, since a framework reserves for the role it was offered in.
    """
    if not res:
        return "no resources given"
    if "*" in res.roles():
        return "name the role each resource is reserved for, e.g. cpus(eng):2"
    if offer_role is not None and res.roles() != {offer_role}:
        return f"resources can only be reserved for the offer's role {offer_role!r}"
    return None
