"""``mesos-zmq``: run the daemons and operate the cluster.

Every flag keeps Mesos's name where Mesos has one and also reads ``MESOS_ZMQ_<FLAG>``
from the environment (``--work-dir`` -> ``MESOS_ZMQ_WORK_DIR``), which is how the
systemd units pass configuration. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from mesos_zmq import __version__
from mesos_zmq.agent import flags as agent_flags
from mesos_zmq.cli.client import MasterUnreachable, RequestRefused, cli_keys, request
from mesos_zmq.cli.tables import render_table
from mesos_zmq.errors import MesosZmqError, ResourceError
from mesos_zmq.flags import Flag
from mesos_zmq.logs import configure_logging
from mesos_zmq.master import flags as master_flags
from mesos_zmq.protocol import (
    MAX_TASKS_PAGE,
    DrainAgent,
    FileData,
    GetState,
    GetTasks,
    Message,
    OperatorKill,
    OperatorReply,
    OperatorTeardown,
    ReactivateAgent,
    ReadFile,
    RemoveQuota,
    ReserveResources,
    SetQuota,
    SetWeights,
    State,
    Tasks,
    UnreserveResources,
)
from mesos_zmq.resources import (
    UserResources,
    format_scalar,
    parse_user_resources,
    suggest_resource_name,
    validate_role,
)
from mesos_zmq.scheduler.validation import safe_id
from mesos_zmq.tasks import TERMINAL

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_MASTER = "tcp://127.0.0.1:5050"


def flag(*names: str, **kwargs: Any) -> Callable[[F], F]:
    """A click option whose env var is MESOS_ZMQ_<LONG NAME>, shown in --help.

    For a boolean pair (``--fsync/--no-fsync``) the name is the first one's
    (MESOS_ZMQ_FSYNC), and the variable reads true/false, 1/0, yes/no, on/off.
    """
    long_name = next(n for n in names if n.startswith("--")).split("/")[0].strip()
    kwargs.setdefault("envvar", "MESOS_ZMQ_" + long_name[2:].replace("-", "_").upper())
    kwargs.setdefault("show_envvar", True)
    kwargs.setdefault("show_default", True)
    return click.option(*names, **kwargs)


def log_flags(func: F) -> F:
    func = flag("--log-format", type=click.Choice(["auto", "console", "json"]),
                default="auto", help="console on a terminal, JSON lines otherwise")(func)
    func = flag("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
                default="info")(func)
    return func


def _export(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Client key options are kept in the context's meta, where
    :func:`mesos_zmq.cli.client.cli_keys` finds them for every connection a command
    makes (the option's environment variable is read by click already)."""
    if value and param.name:
        ctx.meta[f"mesos_zmq.{param.name}"] = value


def master_flag(func: F) -> F:
    """--master, and the client's keys for a master that uses them."""
    func = flag("--master-key", default=None, expose_value=False, callback=_export,
                show_default=False, help="the masters' public key (.key file or its "
                "40-character text), pinned: a master without the secret is refused")(func)
    func = flag("--key", default=None, expose_value=False, callback=_export,
                show_default=False, help="this client's key pair (.key_secret file from "
                "'mesos-zmq keygen')")(func)
    return flag("--master", default=DEFAULT_MASTER,
                help="tcp://host:port, or zk://host:port[,...]/path to find the leader")(func)


def parse_weights(text: str, param_hint: str = "--weights") -> dict[str, float]:
    """``eng=2,ops=1`` (Mesos's --weights form) -> {"eng": 2.0, "ops": 1.0}.

    ``param_hint`` names where the text came from in errors (the ``weights``
    command's positional ASSIGNMENTS, or the master's --weights).
    """
    weights: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        role, sep, value = item.partition("=")
        if not sep or not role.strip():
            raise click.BadParameter(f"{item!r} is not ROLE=WEIGHT (e.g. eng=3)",
                                     param_hint=param_hint)
        try:
            weight = float(value)
        except ValueError:
            raise click.BadParameter(
                f"weight {value!r} of role {role!r} is not a number", param_hint=param_hint
            ) from None
        if not weight > 0 or weight != weight or weight == float("inf"):
            raise click.BadParameter(
                f"weight of role {role!r} must be a positive number", param_hint=param_hint
            )
        weights[role.strip()] = weight
    return weights


def warn(text: str) -> None:
    """One warning line on stderr (the command goes on)."""
    click.echo(f"warning: {text}", err=True)


def user_resources(text: str, param_hint: str, *, default_role: str = "*") -> UserResources:
    """Resources typed on the command line: refused with the reason (a usage error),
    likely typos (``cpu:4``) warned about on stderr (see ``parse_user_resources``)."""
    try:
        parsed = parse_user_resources(text, default_role)
    except ResourceError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from None
    for line in parsed.warnings:
        warn(f"{param_hint}: {line}")
    return parsed


def check_agent_resources(text: str, param_hint: str = "--resources") -> None:
    """An agent's --resources, checked before any process starts: as
    :func:`user_resources`, and a zero is said aloud, since it is honoured (``cpus:0``
    is an agent without cpus, as in Mesos; detection fills only names not given)."""
    parsed = user_resources(text, param_hint)
    for name in ("cpus", "mem"):
        if name in parsed.names and not parsed.resources.scalar(name):
            warn(f"{param_hint}: {name}:0 is honoured: this agent offers no {name}, so no "
                 f"task that needs {name} can run on it")


def warn_resource_names(names: Iterable[str], param_hint: str) -> None:
    """Warn about resource names that look like typos of known ones (``gpu``)."""
    for name in names:
        suggestion = suggest_resource_name(name)
        if suggestion is not None:
            warn(f"{param_hint}: unknown resource {name!r}: did you mean {suggestion!r}?")


def warn_resource_alternatives(text: str, param_hint: str) -> None:
    """Warnings for ``cpus:1;mem:64|gpus:1`` forms; errors are the master's to report."""
    for alternative in text.split("|"):
        try:
            user_resources(alternative, param_hint)
        except click.BadParameter:
            return


class CommandAfterDashes(click.Command):
    """A command whose last argument is a command line to run (``run``, ``local``).

    Options are parsed only up to the first argument or ``--``: everything after
    belongs to the command, options included (``-- ls -la``). An unknown option before
    it is an error with a suggestion: it is never taken as the command (click with
    ``ignore_unknown_options`` would carry ``--cpu 1`` into the argument and drop the
    ``--``, so ``run --cpu 1 -- echo hi`` ran ``--cpu 1 echo hi``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allow_interspersed_args = False
        self.ignore_unknown_options = False

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            hint = f"; did you mean {' or '.join(exc.possibilities)}?" if exc.possibilities \
                else ""
            raise click.UsageError(
                f"no such option {exc.option_name}{hint} (options go before the command, "
                f"the command after --: {ctx.command_path} [OPTIONS] -- COMMAND...)", ctx,
            ) from None


def parse_role_values(items: tuple[str, ...], flag_name: str) -> dict[str, str]:
    """Repeated ``ROLE=VALUE`` flags into a dict (VALUE may itself contain '=')."""
    result: dict[str, str] = {}
    for item in items:
        role, sep, value = item.partition("=")
        if not sep or not role.strip() or not value.strip():
            raise click.BadParameter(f"{item!r} is not ROLE=VALUE", param_hint=flag_name)
        result[role.strip()] = value.strip()
    return result


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mesos-zmq")
def cli() -> None:
    """A cluster resource manager in the spirit of Apache Mesos."""


# ============================================================================ daemons


def options_from(table: tuple[Flag, ...]) -> Callable[[F], F]:
    """Click options built from a daemon's flag table (defaults, ranges and help are
    written there once)."""

    def apply(func: F) -> F:
        for spec in reversed(table):
            kwargs: dict[str, Any] = {"default": spec.default, "help": spec.help}
            if spec.choices:
                kwargs["type"] = click.Choice(list(spec.choices))
            elif spec.kind is int:
                kwargs["type"] = click.IntRange(
                    min=None if spec.low is None else int(spec.low),
                    max=None if spec.high is None else int(spec.high))
            elif spec.kind is float:
                kwargs["type"] = click.FloatRange(min=spec.low, max=spec.high)
            elif spec.kind is bool and "/" not in spec.option:
                kwargs["is_flag"] = True
            if spec.multiple:
                kwargs["multiple"] = True
            func = flag(spec.option, spec.name, **kwargs)(func)
        return func

    return apply


@cli.command()
@options_from(master_flags.FLAGS)
@log_flags
def master(log_format: str, log_level: str, **values: Any) -> None:
    """Run a master."""
    from mesos_zmq.master.server import MasterConfig, run_master

    configure_logging("master", log_format, log_level)
    roles: str = values.pop("roles")
    role_list = tuple(r.strip() for r in roles.split(",") if r.strip()) or None
    excluded_names = tuple(n.strip() for n in values.pop("excluded").split(",") if n.strip())
    warn_resource_names(excluded_names, "--fair-sharing-excluded-resource-names")
    min_allocatable: str = values["min_allocatable"]
    if min_allocatable:
        warn_resource_alternatives(min_allocatable, "--min-allocatable-resources")
    role_minimums = parse_role_values(values.pop("role_min_allocatable"),
                                      "--role-min-allocatable-resources")
    for text in role_minimums.values():
        warn_resource_alternatives(text, "--role-min-allocatable-resources")
    weights = parse_weights(values.pop("weights"))
    config = MasterConfig(roles=role_list, weights=weights,
                          fair_sharing_excluded=excluded_names,
                          role_min_allocatable=role_minimums, **values)
    if config.zk:
        from mesos_zmq.master.ha import run_master_ha

        config.validate()
        sys.exit(run_master_ha(config))
    sys.exit(run_master(config))


@cli.group(invoke_without_command=True)
@master_flag
@options_from(agent_flags.FLAGS)
@log_flags
@click.pass_context
def agent(ctx: click.Context, /, master: str, log_format: str, log_level: str,
          **values: Any) -> None:
    """Run an agent that offers this host's resources and runs tasks.

    With a subcommand (drain, reactivate) it operates on an agent through the master
    instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    from mesos_zmq.agent.server import AgentConfig, run_agent

    if values["resources"] is not None:
        check_agent_resources(values["resources"])
    configure_logging("agent", log_format, log_level)
    gpu_devices: str | None = values.pop("gpu_devices")
    devices = None
    if gpu_devices is not None:
        devices = [d.strip() for d in gpu_devices.split(",") if d.strip()]
        bad = [d for d in devices if not d.isdigit()]
        if bad:
            raise click.BadParameter(f"GPU indices must be integers, got {bad[0]!r}",
                                     param_hint="--gpu-devices")
    hostname: str | None = values.pop("hostname")
    config = AgentConfig(master=master, hostname=hostname or socket.gethostname(),
                         gpu_devices=devices, key=ctx.meta.get("mesos_zmq.key"),
                         master_key=ctx.meta.get("mesos_zmq.master_key"), **values)
    sys.exit(run_agent(config))


@agent.command("drain")
@master_flag
@click.option("--grace", type=click.FloatRange(0.0, 3600.0), default=None,
              help="seconds each task gets between SIGTERM and SIGKILL (caps its own)")
@click.argument("agent_id")
def agent_drain(master: str, grace: float | None, agent_id: str) -> None:
    """Drain AGENT_ID: no new offers on it, its tasks killed; DRAINED once all ended."""
    operate(master, DrainAgent(agent_id=agent_id, grace=grace))


@agent.command("reactivate")
@master_flag
@click.argument("agent_id")
def agent_reactivate(master: str, agent_id: str) -> None:
    """End the drain of AGENT_ID: its resources are offered again."""
    operate(master, ReactivateAgent(agent_id=agent_id))


# ============================================================================ local


def command_text(command: tuple[str, ...]) -> str:
    """The task's shell command: one argument is taken as a shell line (``-- 'a | b'``),
    several are quoted word by word (``-- sh -c 'echo hi'``)."""
    return command[0] if len(command) == 1 else shlex.join(command)


def framework_logging() -> None:
    """Logging for the framework inside ``run`` and ``local``: errors only, and not the
    driver's "driver aborted" line, since the framework itself says why (once)."""
    configure_logging("framework", "auto", "error", drop=("driver aborted",))


@cli.command(cls=CommandAfterDashes)
@flag("--agents", "agent_count", type=click.IntRange(1, 64), default=2,
      help="number of agents to start")
@flag("--port", type=click.IntRange(0, 65535), default=5050,
      help="master port; it must be free (0: any free port)")
@flag("--resources", default="cpus:2;mem:2048;disk:4096;ports:[31000-31999]",
      help="resources of each agent")
@flag("--work-dir", default=None, help="cluster directory (default: a temporary one)")
@flag("--log-format", type=click.Choice(["auto", "console", "json"]), default="auto")
@flag("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
      default="warning", help="log level of the master and agents")
@flag("--insecure", is_flag=True, default=False,
      help="no keys: any local process may talk to the master")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def local(agent_count: int, port: int, resources: str, work_dir: str | None,
          log_format: str, log_level: str, insecure: bool, command: tuple[str, ...]) -> None:
    """Start a master and agents as child processes on this machine.

    With a COMMAND (after --), run it as a task, stream its output, shut the cluster
    down and exit with the task's exit code. Without one, serve until Ctrl-C or
    SIGTERM. Either way the master, the agents, their tasks and the temporary
    directory are gone when it exits. The cluster uses keys (CurveZMQ) unless
    --insecure; without a COMMAND it prints the variables that let other commands in.
    """
    from mesos_zmq.cli.local import LocalCluster, StopSignals, exit_code_of

    check_agent_resources(resources)
    framework_logging()
    if insecure:
        # Keys exported for another (secure) cluster must not reach this one's agents
        # or its framework: they would meet a master without keys.
        for name in ("MESOS_ZMQ_KEY", "MESOS_ZMQ_MASTER_KEY"):
            os.environ.pop(name, None)
    code = 0
    # From here on SIGTERM and SIGHUP tear everything down as Ctrl-C does.
    with StopSignals() as signals:
        temp = None
        cluster = None
        try:
            if not work_dir:
                temp = tempfile.TemporaryDirectory(prefix="mesos-zmq-local-")
            root = Path(work_dir or (temp.name if temp else "."))
            cluster = LocalCluster(root, agent_count, port, resources, log_format, log_level,
                                   secure=not insecure)
            cluster.start()
            if command:
                from mesos_zmq.frameworks.execute import run_command

                keys = cluster.client_keys("framework") if cluster.secure else None
                code = run_command(cluster.master, command_text(command), name="local-run",
                                   keys=keys)
            else:
                click.echo(f"master at {cluster.master} with {agent_count} agents; "
                           "Ctrl-C stops", err=True)
                for who in ("operator", "framework") if not insecure else ():
                    exports = " ".join(f"{k}={v}" for k, v in cluster.client_env(who).items())
                    click.echo(f"as {who} (e.g. {'state, kill' if who == 'operator' else 'run'}):"
                               f" export {exports}", err=True)
                cluster.wait()
        except KeyboardInterrupt as exc:
            code = exit_code_of(exc)
        finally:
            with signals.shield():
                if cluster is not None:
                    cluster.stop()
                if temp is not None:
                    temp.cleanup()
    sys.exit(code)


# ============================================================================ run


@cli.command(cls=CommandAfterDashes)
@master_flag
@flag("--cpus", type=click.FloatRange(min=0.001), default=0.1, help="cpus per instance")
@flag("--mem", type=click.FloatRange(min=0.0), default=32.0, help="memory (MB) per instance")
@flag("--disk", type=click.FloatRange(min=0.0), default=0.0, help="disk (MB) per instance")
@flag("--instances", type=click.IntRange(1, 10_000), default=1,
      help="copies to run; their output lines are prefixed 'task-N | '")
@flag("--name", default="mesos-zmq-run", help="framework and task name")
@flag("--task-id", default="",
      help="the task's id (with --instances N: ID-0..ID-N-1); default NAME-<random>-N")
@flag("--role", default="*", help="role to run in")
@flag("--user", default="", show_default=False,
      help="the user the tasks run as on the agent (default: yours)")
@flag("--env", "env", multiple=True, help="KEY=VALUE for the task (repeatable)")
@flag("--timeout", type=click.FloatRange(min=0.0), default=None,
      help="give up (and kill the tasks) after this many seconds; exit code 124")
@flag("--connect-timeout", type=click.FloatRange(min=0.1), default=30.0,
      help="seconds to wait for the master to accept this framework before failing "
           "(exit code 2)")
@flag("--quiet", "-q", is_flag=True, default=False,
      help="say only failures and errors on stderr, not progress")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(master: str, cpus: float, mem: float, disk: float, instances: int, name: str,
        task_id: str, role: str, user: str, env: tuple[str, ...], timeout: float | None,
        connect_timeout: float, quiet: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND (after --) as tasks, stream output, exit with its exit code.

    Progress goes to stderr as 'run: ...' lines: waiting for an offer (and why, when
    no agent could ever fit the task or all that could are busy), where each task
    was launched, and how it ended. Everything after the first argument or '--'
    belongs to COMMAND: 'run --cpus 1 -- ls -la'. Ctrl-C or SIGTERM kills the tasks
    and exits with 130 or 143.
    """
    from mesos_zmq.cli.local import StopSignals, exit_code_of
    from mesos_zmq.frameworks.execute import run_command

    environment: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--env")
        environment[key] = value
    try:
        validate_role(role)
    except ResourceError as exc:
        raise click.BadParameter(str(exc), param_hint="--role") from None
    if task_id and not safe_id(task_id if instances == 1 else f"{task_id}-{instances - 1}"):
        raise click.BadParameter(f"{task_id[:64]!r}: use letters, digits, '_', '.' and '-' "
                                 "(at most 200)", param_hint="--task-id")
    if not task_id and not safe_id(f"{name}-12345678-{instances - 1}"):
        # Task ids are made from the name unless --task-id is given.
        raise click.BadParameter(f"{name[:64]!r}: task ids are made from it, so use "
                                 "letters, digits, '_', '.' and '-' (or give --task-id)",
                                 param_hint="--name")
    framework_logging()
    # SIGTERM and SIGHUP, like Ctrl-C, tear the framework down (its tasks killed) first.
    with StopSignals():
        try:
            code = run_command(master, command_text(command), instances=instances, cpus=cpus,
                               mem=mem, disk=disk, name=name, task_id=task_id, role=role,
                               env=environment, keys=cli_keys(), user=user,
                               timeout=timeout, connect_timeout=connect_timeout, quiet=quiet)
        except KeyboardInterrupt as exc:
            code = exit_code_of(exc)
    sys.exit(code)


# ============================================================================ operate


def operate(master: str, msg: Message) -> None:
    """Send an operator request and print the master's answer (refusals raise)."""
    reply = request(master, msg)
    if not isinstance(reply, OperatorReply):
        raise MesosZmqError(f"unexpected reply {reply.TYPE} from the master")
    click.echo(reply.message)


def fetch_state(master: str, timeout: float = 5.0, tasks_limit: int | None = 0
                ) -> dict[str, Any]:
    """The master's state with at most ``tasks_limit`` tasks, the newest (None: every
    task, which at scale may be more than one answer holds; the commands that list
    agents, frameworks or roles ask for none). A master older than ``tasks_limit``
    sends every task."""
    reply = request(master, GetState(tasks_limit=tasks_limit), timeout)
    if not isinstance(reply, State):
        raise MesosZmqError(f"unexpected reply {reply.TYPE} from the master")
    return reply.state


_TERMINAL_STATES = frozenset(s.value for s in TERMINAL)


def fetch_tasks(master: str, *, limit: int, offset: int = 0, order: str = "desc",
                framework_id: str = "", which: str = "all"
                ) -> tuple[list[dict[str, Any]], int]:
    """One page of the master's task listing (``get_tasks``) and its total."""
    msg = GetTasks(limit=limit, offset=offset, order=order, framework_id=framework_id,
                   which=which)
    try:
        reply = request(master, msg)
    except RequestRefused as exc:
        if exc.code != "unknown_type":
            raise
        return tasks_of_state(fetch_state(master, tasks_limit=None), msg)
    if not isinstance(reply, Tasks):
        raise MesosZmqError(f"unexpected reply {reply.TYPE} from the master")
    return reply.tasks, reply.total


def tasks_of_state(state: dict[str, Any], msg: GetTasks) -> tuple[list[dict[str, Any]], int]:
    """The page ``msg`` asks for, cut from a whole state (a master older than
    ``get_tasks`` lists active tasks, then finished ones in the order they ended)."""
    rows = [t for t in state["tasks"]
            if not msg.framework_id or t["framework_id"] == msg.framework_id]
    active = [t for t in rows if t["state"] not in _TERMINAL_STATES]
    done = [t for t in rows if t["state"] in _TERMINAL_STATES]
    if msg.which == "active":
        done = []
    elif msg.which == "completed":
        active = []
    listing = active[::-1] + done[::-1] if msg.order == "desc" else done + active
    return listing[msg.offset:msg.offset + msg.limit], len(listing)


def emit(data: Any, as_json: bool, columns: list[tuple[str, str]], rows: list[dict[str, Any]]
         ) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        click.echo(render_table(columns, rows))


@cli.command()
@master_flag
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
@click.option("--tasks-limit", type=click.IntRange(0, MAX_TASKS_PAGE), default=100,
              show_default=True, help="with --json: at most this many tasks, the newest "
              "first (task_counts counts them all; 'tasks' pages through them)")
@click.option("--all-tasks", is_flag=True,
              help="with --json: every task (a large cluster's may not fit in one answer: "
                   "'tasks --all' fetches them a page at a time)")
def state(master: str, as_json: bool, tasks_limit: int, all_tasks: bool) -> None:
    """Summary of the whole cluster."""
    # the summary counts tasks (task_counts): it needs none of them
    data = fetch_state(master, tasks_limit=(None if all_tasks else tasks_limit)
                       if as_json else 0)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    counts = data.get("task_counts")
    if counts is None:  # a master older than task_counts sent every task
        ended = sum(1 for t in data["tasks"] if t["state"] in _TERMINAL_STATES)
        counts = {"active": len(data["tasks"]) - ended, "completed": ended}
    for line in master_lines(data["master"]):
        click.echo(line)
    click.echo(f"agents     {len(data['agents'])} "
               f"({sum(1 for a in data['agents'] if a['connected'])} connected)")
    click.echo(f"frameworks {len(data['frameworks'])}")
    click.echo(f"tasks      {counts['active']} active, {counts['completed']} completed")
    if data["roles"]:
        click.echo("")
        click.echo(render_table(
            [("role", "ROLE"), ("weight", "WEIGHT"), ("dominant_share", "SHARE")],
            data["roles"]))


def master_lines(master: dict[str, Any]) -> list[str]:
    """Who leads, since when, in which term, and who stands by (older masters' states
    carry only the id)."""
    lead = f"master     {master.get('id', '?')}"
    if master.get("address"):
        lead += f" leading at {master['address']}"
    if master.get("epoch") is not None:
        lead += f" (epoch {master['epoch']})"
    lines = [lead]
    started = master.get("started_at")
    if isinstance(started, (int, float)) and started > 1e9:
        when = datetime.datetime.fromtimestamp(started, datetime.UTC)
        lines.append(f"since      {when.isoformat(timespec='seconds')}")
    if "standbys" in master:
        if not master.get("replicated"):
            lines.append("standbys   none (a single master, without ZooKeeper)")
        else:
            standbys = [f"{m.get('id', '?')} at {m.get('address') or '?'}"
                        for m in master["standbys"]]
            lines.append(f"standbys   {', '.join(standbys) or 'none'}")
    return lines


@cli.command()
@master_flag
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def agents(master: str, as_json: bool) -> None:
    """List agents."""
    rows = fetch_state(master)["agents"]
    emit(rows, as_json, [("id", "ID"), ("hostname", "HOST"), ("connected", "CONNECTED"),
                         ("drain", "DRAIN"),
                         ("active_tasks", "TASKS"), ("resources", "RESOURCES"),
                         ("used_resources", "USED"), ("reserved", "RESERVED"),
                         ("attributes", "ATTRIBUTES")], rows)


@cli.command()
@master_flag
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def frameworks(master: str, as_json: bool) -> None:
    """List frameworks."""
    rows = fetch_state(master)["frameworks"]
    view = [dict(r, roles=",".join(r["roles"])) for r in rows]
    emit(rows, as_json, [("id", "ID"), ("name", "NAME"), ("roles", "ROLES"),
                         ("connected", "CONNECTED"), ("active_tasks", "TASKS"),
                         ("used_resources", "USED")], view)


@cli.command()
@master_flag
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
@click.option("--active", is_flag=True, help="only tasks that have not ended")
@click.option("--completed", is_flag=True, help="only tasks that have ended")
@click.option("--framework", "framework_id", default="", help="only this framework's tasks")
@click.option("--limit", type=click.IntRange(1, MAX_TASKS_PAGE), default=100,
              show_default=True, help="tasks in the page")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="tasks of the listing skipped before the page")
@click.option("--order", type=click.Choice(["desc", "asc"]), default="desc",
              show_default=True, help="desc: newest first (active tasks, then the most "
              "recently ended); asc: oldest first")
@click.option("--all", "every", is_flag=True,
              help="every task (from --offset on), fetched a page at a time")
def tasks(master: str, as_json: bool, active: bool, completed: bool, framework_id: str,
          limit: int, offset: int, order: str, every: bool) -> None:
    """List tasks: a page of them, the newest first (--limit, --offset, --all).

    When more tasks match than the page shows, a line on stderr says how to see them.
    """
    if active and completed:
        raise click.UsageError("--active and --completed exclude each other")
    which = "active" if active else "completed" if completed else "all"
    if every:
        rows = fetch_every_task(master, offset=offset, order=order,
                                framework_id=framework_id, which=which)
    else:
        rows, total = fetch_tasks(master, limit=limit, offset=offset, order=order,
                                  framework_id=framework_id, which=which)
        if offset + len(rows) < total:
            click.echo(f"tasks {offset + 1}-{offset + len(rows)} of {total} shown "
                       f"({'newest' if order == 'desc' else 'oldest'} first): the next page "
                       f"with --offset {offset + len(rows)}, every task with --all", err=True)
        elif not rows and offset and total:
            click.echo(f"no tasks from offset {offset}: there are {total}", err=True)
    view = []
    for t in rows:
        usage = t.get("usage") or {}
        view.append(dict(
            t, state=t["state"].removeprefix("TASK_"),
            exit_code="" if t["exit_code"] is None else t["exit_code"],
            cpu=f"{usage['cpu_seconds']:.1f}" if usage else "",
            rss=f"{usage['rss_bytes'] / 2**20:.1f}" if usage else "",
            peak=f"{usage['peak_bytes'] / 2**20:.1f}" if usage else "",
        ))
    emit(rows, as_json, [("id", "ID"), ("state", "STATE"), ("exit_code", "EXIT"),
                         ("cpu", "CPU-S"), ("rss", "RSS-MB"), ("peak", "PEAK-MB"),
                         ("agent_id", "AGENT"), ("framework_id", "FRAMEWORK"),
                         ("resources", "RESOURCES"), ("message", "MESSAGE")], view)


def fetch_every_task(master: str, *, offset: int = 0, order: str = "desc",
                     framework_id: str = "", which: str = "all") -> list[dict[str, Any]]:
    """The task listing from ``offset`` to its end, a page at a time, so that no answer
    is ever larger than a page. Tasks that change (end, or are forgotten) while the
    pages are read may shift the listing: each task is shown once, as last read."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    while True:
        page, total = fetch_tasks(master, limit=MAX_TASKS_PAGE, offset=offset, order=order,
                                  framework_id=framework_id, which=which)
        for task in page:
            found[(task["framework_id"], task["id"])] = task
        offset += len(page)
        if not page or offset >= total:
            return list(found.values())


@cli.command()
@master_flag
@click.option("--framework", "framework_id", default="", help="framework of the task")
@click.argument("task_id")
def kill(master: str, framework_id: str, task_id: str) -> None:
    """Kill a task by id."""
    operate(master, OperatorKill(task_id=task_id, framework_id=framework_id))


@cli.command()
@master_flag
@click.argument("framework_id")
def teardown(master: str, framework_id: str) -> None:
    """Tear a framework down: its tasks killed, the framework removed for good."""
    operate(master, OperatorTeardown(framework_id=framework_id))


@cli.command()
@master_flag
@click.option("--framework", "framework_id", default="", help="framework of the task")
@click.option("--stderr", "use_stderr", is_flag=True, help="read stderr instead of stdout")
@click.option("--path", "path", default=None,
              help="another file in the sandbox, relative to it (e.g. 'out/app.log')")
@click.option("--follow", "-f", is_flag=True,
              help="keep printing what is appended until the task ends (Ctrl-C stops)")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.5,
              help="seconds between reads when following")
@click.argument("task_id")
def logs(master: str, framework_id: str, use_stderr: bool, path: str | None, follow: bool,
         interval: float, task_id: str) -> None:
    """Print a task's stdout (or stderr, or another sandbox file) through its agent."""
    relative = path if path is not None else ("stderr" if use_stderr else "stdout")
    offset = 0
    out = sys.stdout.buffer
    while True:
        reply = request(master, ReadFile(agent_id="", task_id=task_id, path=relative,
                                         offset=offset, framework_id=framework_id))
        if not isinstance(reply, FileData):
            raise MesosZmqError(f"unexpected reply {reply.TYPE} from the master")
        if reply.data:
            out.write(reply.data)
            out.flush()
            offset += len(reply.data)
        if offset < reply.size:
            continue  # more is already there: read on without waiting
        if not follow or reply.done:
            return
        time.sleep(interval)


@cli.command()
@master_flag
@click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
def roles(master: str, as_json: bool) -> None:
    """Per-role weight, dominant share, allocation and quota."""
    rows = fetch_state(master)["roles"]

    def amounts(values: dict[str, float]) -> str:
        return ";".join(f"{k}:{format_scalar(v)}" for k, v in sorted(values.items()))

    view = [dict(r, allocated=amounts(r["allocated"]), guarantee=amounts(r["guarantee"]),
                 limit=amounts(r["limit"])) for r in rows]
    emit(rows, as_json, [("role", "ROLE"), ("weight", "WEIGHT"), ("dominant_share", "SHARE"),
                         ("allocated", "ALLOCATED"), ("guarantee", "GUARANTEE"),
                         ("limit", "LIMIT")], view)


@cli.command()
@master_flag
@click.argument("assignments", nargs=-1)
def weights(master: str, assignments: tuple[str, ...]) -> None:
    """Show role weights, or set them: mesos-zmq weights eng=3 ops=1."""
    if not assignments:
        rows = fetch_state(master)["roles"]
        click.echo(render_table([("role", "ROLE"), ("weight", "WEIGHT")], rows))
        return
    operate(master, SetWeights(weights=parse_weights(",".join(assignments), "ASSIGNMENTS")))


@cli.group()
def quota() -> None:
    """Set or remove role quotas (guarantee and limit)."""


@quota.command("set")
@master_flag
@click.option("--guarantee", default="", help="held for the role until used, e.g. cpus:4;mem:4096")
@click.option("--limit", default="", help="never exceeded, e.g. cpus:8;mem:8192")
@click.option("--force", is_flag=True,
              help="set a guarantee larger than what the cluster has now (refused otherwise)")
@click.argument("role")
def quota_set(master: str, guarantee: str, limit: str, force: bool, role: str) -> None:
    """Set ROLE's quota (counted over ROLE and its sub-roles)."""
    if not guarantee and not limit:
        raise click.UsageError("give --guarantee, --limit or both")
    if guarantee:
        user_resources(guarantee, "--guarantee")
    if limit:
        user_resources(limit, "--limit")
    operate(master, SetQuota(role=role, guarantee=guarantee, limit=limit, force=force))


@quota.command("remove")
@master_flag
@click.argument("role")
def quota_remove(master: str, role: str) -> None:
    """Remove ROLE's quota."""
    operate(master, RemoveQuota(role=role))


@cli.command()
@master_flag
@click.argument("agent_id")
@click.argument("resources")
def reserve(master: str, agent_id: str, resources: str) -> None:
    """Reserve free RESOURCES of AGENT_ID for a role, e.g. 'cpus(eng):2;mem(eng):1024'."""
    user_resources(resources, "RESOURCES")
    operate(master, ReserveResources(agent_id=agent_id, resources=resources))


@cli.command()
@master_flag
@click.argument("agent_id")
@click.argument("resources")
def unreserve(master: str, agent_id: str, resources: str) -> None:
    """Give dynamically reserved, free RESOURCES of AGENT_ID back to every role."""
    user_resources(resources, "RESOURCES")
    operate(master, UnreserveResources(agent_id=agent_id, resources=resources))


# ============================================================================ keys


@cli.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="where to write the key files")
@click.option("--principal", default=None,
              help="also print a credentials entry for this principal (default: NAME)")
@click.option("--kind", type=click.Choice(["agent", "framework", "operator", "master"]),
              default=None, help="the principal's kind, for the printed credentials entry")
@click.argument("name")
def keygen(directory: Path, principal: str | None, kind: str | None, name: str) -> None:
    """Write a CurveZMQ key pair: NAME.key (public) and NAME.key_secret (mode 0600).

    The masters of a cluster share one pair (--key on each master); clients pin its
    public half (--master-key). Each agent, framework and operator has a pair of its
    own (--key), whose public half the masters' --credentials file lists.
    """
    from mesos_zmq.auth.keys import generate, load_public

    public_path, secret_path = generate(name, directory)
    click.echo(f"public key:  {public_path}")
    click.echo(f"secret key:  {secret_path} (mode 0600: keep it on this host)")
    if kind is not None and kind != "master":
        entry = {"principal": principal or name, "kind": kind,
                 "public_key": load_public(public_path).decode()}
        click.echo("credentials entry (add to the masters' --credentials file):")
        click.echo("  " + json.dumps(entry))


# ============================================================================ entry


def main() -> None:
    """Console entry point: typed errors become one line on stderr."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (MasterUnreachable, RequestRefused, MesosZmqError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
