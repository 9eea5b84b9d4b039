"""Checks of what agents and frameworks ask for; each returns a problem or None.

A returned problem becomes an error reply (or a TASK_ERROR update) that names what is
wrong, and nothing changes. Pure functions, so the rules are testable on their own.

Limits
------
Every string, amount and list a peer sends is bounded (ARCHITECTURE.md, Trust): what
the master accepts it logs, replays after a crash, adds up and sends on to agents and
frameworks, so a hostile request must cost one refusal and nothing else. The agent
holds every task of a ``run_tasks`` to the same :func:`task_problem` before it records
it (:mod:`mesos_zmq.agent.core`), so a task the master let through cannot hurt it
either. Resource strings have limits of their own, in :mod:`mesos_zmq.resources`.

==========================  ===============================================  ==========
what                        limit                                            constant
==========================  ===============================================  ==========
resource text               64 KiB, 1,024 entries, amounts finite and         see
                            within MAX_SCALAR (also summed per name), roles   resources
                            255 chars, ports 0-65535, 1,024 ranges an entry
task resources              as above, and known names of their kind (cpus,   see
                            mem, disk, gpus amounts, gpus whole, ports        resources
                            ranges)
agent, framework, task id   1-200 of ``A-Za-z0-9_.-``, not ``.`` or ``..``   _ID_RE
hostname                    255 characters, no whitespace or control chars   MAX_HOSTNAME
agent attributes text       64 KiB                                           MAX_ATTRIBUTES
framework and task name     1,024 characters                                 MAX_NAME
framework user              255 characters, no whitespace or control chars   MAX_USER
roles of a framework        1,024 (suppressed roles too)                     MAX_ROLES
capabilities                64, each at most 128 characters                  MAX_CAPABILITIES
shell command               64 KiB (UTF-8), no NUL                           MAX_COMMAND
argv                        1,024 arguments, 64 KiB in all, no NUL           MAX_ARGV
environment                 1,024 variables, 64 KiB in all (names, values,   MAX_ENV_BYTES
                            ``=`` and NUL as execve counts them); names
                            non-empty without ``=``; no NUL anywhere
kill grace period           0 .. 3600 seconds                                MAX_KILL_GRACE
health check                as health_policy; command 64 KiB, path 4 KiB,    MAX_HEALTH_PATH
                            times 1e9 s, consecutive failures 1,000,000
task role                   empty (set by the master) or a valid role        -
failover timeout            0 .. 1e9 seconds                                 -
agent resources             as task resources (known names of their kind);   see
                            tasks it holds or reports of the same kinds      resources
status update from an agent a state an agent may report (not UNREACHABLE,    AGENT_STATES
                            GONE, UNKNOWN: the master's own); reason 128     MAX_REASON
                            characters without whitespace; message 8,192     MAX_STATUS_
                            characters (cut beyond: text for people)         MESSAGE
tasks one reconcile names   10,000                                           MAX_RECONCILE
==========================  ===============================================  ==========

The sizes keep one task well within a frame (4 MiB), its launch
within what ``execve`` takes (128 KiB per string, about 2 MiB in all), and refusals
short: a message quotes what it refuses cut to 64 characters (100 of a resource
string; a role, at most 255, whole).
"""

from __future__ import annotations

import math
import re

from mesos_zmq.agent.health_policy import check_health_check, interval_problem
from mesos_zmq.attributes import parse_attributes
from mesos_zmq.errors import AttributeParseError, ResourceError
from mesos_zmq.protocol import FrameworkInfo, HealthCheck, TaskInfo, TaskStatus
from mesos_zmq.resources import Resources, validate_role
from mesos_zmq.tasks import TaskState

_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
#: hostnames: 255 as in DNS
MAX_HOSTNAME = 255
#: an agent's attribute text
MAX_ATTRIBUTES = 64 * 1024
#: a framework's or a task's name
MAX_NAME = 1024
#: the user a framework runs as
MAX_USER = 255
#: roles (and suppressed roles) of one framework
MAX_ROLES = 1024
#: capabilities of one framework, and the length of each
MAX_CAPABILITIES = 64
MAX_CAPABILITY_LENGTH = 128
#: a task's shell command, or a health check's (bytes of UTF-8)
MAX_COMMAND = 64 * 1024
#: a task's argv: arguments, and bytes in all
MAX_ARGV = 1024
MAX_ARGV_BYTES = 64 * 1024
#: a task's environment: variables, and bytes in all as execve counts them
MAX_ENV_VARS = 1024
MAX_ENV_BYTES = 64 * 1024
#: an HTTP health check's path
MAX_HEALTH_PATH = 4096
MAX_KILL_GRACE = 3600.0
#: a status update's reason (``REASON_...``), and its message (longer ones are cut)
MAX_REASON = 128
MAX_STATUS_MESSAGE = 8 * 1024
#: task ids one explicit reconcile names (each costs an update back)
MAX_RECONCILE = 10_000
#: what an agent may say of a task: the others are the master's own verdicts (an
#: agent that said UNREACHABLE of its own task would have the task's resources
#: counted as free by the next leader while it runs)
AGENT_STATES = frozenset(TaskState) - {TaskState.UNREACHABLE, TaskState.GONE,
                                       TaskState.UNKNOWN}


def _size(text: str) -> int:
    """Bytes of ``text`` as the kernel receives it (UTF-8; a lone surrogate counts)."""
    return len(text.encode("utf-8", "surrogatepass"))


def _shown(text: str) -> str:
    """At most 64 characters of ``text``, quoted, for a message."""
    return repr(text[:64]) + ("..." if len(text) > 64 else "")


#: no whitespace (Unicode's), no control characters: the same set as ``str.isspace``
#: or a code below 32 or 127, checked in C (a status update's reason is checked on
#: every update)
_PLAIN_RE = re.compile(r"[^\s\x00-\x1f\x7f]*")


def _plain_word(text: str) -> bool:
    """No whitespace, no control characters (a hostname, a user name)."""
    return _PLAIN_RE.fullmatch(text) is not None


def valid_id(value: str) -> bool:
    """Ids become directory names on agents: keep them to a safe alphabet."""
    return bool(_ID_RE.match(value)) and value not in (".", "..")


def hostname_problem(hostname: str) -> str | None:
    if len(hostname) > MAX_HOSTNAME:
        return f"hostname is longer than {MAX_HOSTNAME} characters"
    if not _plain_word(hostname):
        return f"hostname {_shown(hostname)} contains whitespace or control characters"
    return None


def check_agent(resources: str, attributes: str, hostname: str | None = None) -> str | None:
    """What is wrong with an agent's registration, or None. ``hostname`` is checked when
    given (see the module docstring for every limit)."""
    try:
        total = Resources.from_wire(resources)
    except ResourceError as exc:
        return str(exc)
    if not total:
        return "agent offers no resources"
    # the same kinds as tasks are held to: an agent's cpus:[1-2] could never hold a
    # task's cpus:1, and adding one to the other cannot be done
    problem = total.kind_problem()
    if problem is not None:
        return problem
    if len(attributes) > MAX_ATTRIBUTES:
        return f"attributes are longer than {MAX_ATTRIBUTES} characters"
    try:
        parse_attributes(attributes)
    except AttributeParseError as exc:
        return str(exc)
    if hostname is not None:
        return hostname_problem(hostname)
    return None


def status_problem(status: TaskStatus) -> str | None:
    """What an agent may not say in a status update, or None. Its ``message`` is not
    checked: it is cut to MAX_STATUS_MESSAGE where it comes in."""
    if status.state not in AGENT_STATES:
        return f"an agent may not report {status.state[:40]!r}"
    if len(status.reason) > MAX_REASON or not _plain_word(status.reason):
        return (f"reason {_shown(status.reason)} must be at most {MAX_REASON} characters "
                "without whitespace or control characters")
    return None


def check_framework(info: FrameworkInfo, allowed_roles: tuple[str, ...] | None) -> str | None:
    if not info.name.strip():
        return "framework name must not be empty"
    if len(info.name) > MAX_NAME:
        return f"framework name is longer than {MAX_NAME} characters"
    if info.framework_id and not valid_id(info.framework_id):
        return f"invalid framework id {info.framework_id[:64]!r}"
    if len(info.user) > MAX_USER or not _plain_word(info.user):
        return (f"framework user {_shown(info.user)} must be at most {MAX_USER} characters "
                "without whitespace or control characters")
    problem = hostname_problem(info.hostname)
    if problem is not None:
        return f"framework {problem}"
    if not info.roles:
        return "a framework needs at least one role"
    if len(info.roles) > MAX_ROLES or len(info.suppressed_roles) > MAX_ROLES:
        return f"a framework may have at most {MAX_ROLES} roles"
    for role in info.roles:
        try:
            validate_role(role)
        except ResourceError as exc:
            return str(exc)
        if allowed_roles is not None and role not in allowed_roles and role != "*":
            allowed = ", ".join(allowed_roles)
            return f"role {role!r} is not allowed (allowed roles: {allowed})"
    if len(info.capabilities) > MAX_CAPABILITIES or any(
            len(c) > MAX_CAPABILITY_LENGTH for c in info.capabilities):
        return (f"a framework may name at most {MAX_CAPABILITIES} capabilities of at most "
                f"{MAX_CAPABILITY_LENGTH} characters each")
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
        return (f"task {task.task_id} names agent {task.agent_id[:64]} but the offers are "
                f"on {agent_id}")
    return task_problem(task)


#: a user a task may run as: POSIX's portable names (what useradd accepts), plus '$'
_USER_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,254}\$?$")


def user_problem(user: str) -> str | None:
    """Why ``user`` cannot be a user a task runs as, or None ("" is no user)."""
    if user and not _USER_NAME.match(user):
        return (f"user {_shown(user)} is not a user name (letters, digits, '_', '.', '-', "
                f"at most {MAX_USER} characters, no leading '-')")
    return None


def task_problem(task: TaskInfo) -> str | None:
    """What is wrong with ``task`` on its own, wherever it is launched, or None.

    Its id, resources (parsed within the limits and of the kinds an agent relies on),
    command or argv, environment, kill grace period, health check and the size of every
    string (see the module docstring). Shared by the master, which refuses the task in
    an accept, and the agent, which refuses it in a ``run_tasks`` before recording it:
    a task either refuses is refused in the same words.
    """
    if not valid_id(task.task_id):
        return f"invalid task id {task.task_id[:64]!r} (use letters, digits, '_', '.', '-')"
    tid = task.task_id
    if task.agent_id and not valid_id(task.agent_id):
        return f"task {tid}: invalid agent id {task.agent_id[:64]!r}"
    problem = user_problem(task.user)
    if problem is not None:
        return f"task {tid}: {problem}"
    try:
        resources = Resources.from_wire(task.resources)
    except ResourceError as exc:
        return f"task {tid}: {exc}"
    problem = resources.kind_problem()
    if problem is not None:
        return f"task {tid}: {problem}"
    if len(task.name) > MAX_NAME:
        return f"task {tid}: name is longer than {MAX_NAME} characters"
    if task.role:
        try:
            validate_role(task.role)
        except ResourceError as exc:
            return f"task {tid}: {exc}"
    if task.shell and not task.command.strip():
        return f"task {tid} has an empty command"
    if not task.shell and not task.argv:
        return f"task {tid} has no argv"
    problem = _command_problem(task)
    if problem is not None:
        return f"task {tid}: {problem}"
    problem = env_problem(task.env)
    if problem is not None:
        return f"task {tid}: {problem}"
    grace = task.kill_grace_period
    if grace is not None and not (math.isfinite(grace) and 0 <= grace <= MAX_KILL_GRACE):
        return f"task {tid}: kill_grace_period must be within 0..3600 seconds"
    if task.health_check is not None:
        problem = _health_check_problem(task.health_check)
        if problem is not None:
            return f"task {tid}: {problem}"
    return None


def _command_problem(task: TaskInfo) -> str | None:
    """The command (or argv) within its sizes and free of NUL (which execve cannot pass)."""
    size = _size(task.command)
    if size > MAX_COMMAND:
        return f"command is {size} bytes, more than {MAX_COMMAND}"
    if "\0" in task.command:
        return "command contains a NUL character"
    if len(task.argv) > MAX_ARGV:
        return f"argv has {len(task.argv)} arguments, more than {MAX_ARGV}"
    total = sum(_size(arg) + 1 for arg in task.argv)
    if total > MAX_ARGV_BYTES:
        return f"argv is {total} bytes, more than {MAX_ARGV_BYTES}"
    if any("\0" in arg for arg in task.argv):
        return "an argument contains a NUL character"
    return None


def env_problem(env: dict[str, str]) -> str | None:
    """What is wrong with a task's environment, or None: too many variables, too many
    bytes (``NAME=value`` and its NUL, as execve counts them), a name that is empty or
    holds ``=``, a NUL anywhere."""
    if len(env) > MAX_ENV_VARS:
        return f"environment has {len(env)} variables, more than {MAX_ENV_VARS}"
    total = 0
    for name, value in env.items():
        if not name or "=" in name or "\0" in name:
            return f"environment variable name {_shown(name)} is empty or holds '=' or NUL"
        if "\0" in value:
            return f"environment variable {_shown(name)} holds a NUL character"
        total += _size(name) + _size(value) + 2
    if total > MAX_ENV_BYTES:
        return f"environment is {total} bytes, more than {MAX_ENV_BYTES}"
    return None


def _health_check_problem(check: HealthCheck) -> str | None:
    """What is wrong with a task's health check, or None: its rules, its sizes, and an
    interval below the floor (a check every millisecond that flips each time floods
    the agent's files and the framework with updates for as long as the task runs)."""
    problem = check_health_check(check) or interval_problem(check)
    if problem is not None:
        return problem
    size = _size(check.command)
    if size > MAX_COMMAND:
        return f"health check command is {size} bytes, more than {MAX_COMMAND}"
    if "\0" in check.command:
        return "health check command contains a NUL character"
    if len(check.path) > MAX_HEALTH_PATH:
        return f"health check path is longer than {MAX_HEALTH_PATH} characters"
    if not 0 <= check.consecutive_failures <= 10**6:
        return "health check consecutive_failures must be within 0..1000000"
    if max(check.delay, check.interval, check.timeout, check.grace_period) > 10**9:
        return "health check times must be at most 1e9 seconds"
    return None


def quota_amounts(text: str, what: str) -> dict[str, float]:
    """Scalar amounts of a quota (``cpus:4;mem:4096``); raises ValueError to reply with."""
    try:
        res = Resources.from_wire(text)
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
    the offer's role, since a framework reserves for the role it was offered in. The
    resources are held to a peer's size limits (see :mod:`mesos_zmq.resources`).
    """
    if not res:
        return "no resources given"
    problem = res.size_problem()
    if problem is not None:
        return f"invalid resources: {problem}"
    if "*" in res.roles():
        return "name the role each resource is reserved for, e.g. cpus(eng):2"
    if offer_role is not None and res.roles() != {offer_role}:
        return f"resources can only be reserved for the offer's role {offer_role!r}"
    return None
