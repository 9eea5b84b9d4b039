"""Every ``mesos-zmq`` command line in README.md's ```sh blocks exists and parses.

Each line is split like a shell would (quotes, comments, ``&&``, ``&``, ``\\``
continuations); each ``mesos-zmq ...`` command in it is resolved subcommand by
subcommand and its options and arguments parsed by click (types and ranges
included), without running anything. Placeholders such as AGENT_ID or HOSTS are just
strings to click.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mesos_zmq.cli.main import cli

README = Path(__file__).resolve().parents[2] / "README.md"
_OPERATORS = {"&&", "||", ";", "|", "&", ";;", "(", ")"}


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)


def command_lines(block: str) -> list[str]:
    """Logical lines: backslash continuations joined."""
    return block.replace("\\\n", " ").splitlines()


def mesos_zmq_commands(line: str) -> list[list[str]]:
    """The argument lists of each ``mesos-zmq`` command in one shell line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = []
    current: list[str] = []
    for token in [*lexer, ";"]:
        if token in _OPERATORS:
            # (a variable assignment such as ZK=zk://host/mesos-zmq is not a command)
            if current and Path(current[0]).name == "mesos-zmq" and "=" not in current[0]:
                commands.append(current[1:])
            current = []
        else:
            current.append(token)
    return commands


def readme_commands() -> list[list[str]]:
    return [args for block in sh_blocks(README.read_text())
            for line in command_lines(block) for args in mesos_zmq_commands(line)]


def _rest(ctx: click.Context) -> list[str]:
    """What a group left for its subcommand (click 8.2 made protected_args private)."""
    protected = getattr(ctx, "_protected_args", None)
    if protected is None:
        protected = ctx.protected_args
    return [*protected, *ctx.args]


def parse_command_line(args: list[str]) -> tuple[str, ...]:
    """Parse ``args`` as ``mesos-zmq`` would, without invoking; return the command path."""
    command: click.Command = cli
    ctx = cli.make_context("mesos-zmq", list(args))
    path: list[str] = []
    while isinstance(command, click.Group):
        rest = _rest(ctx)
        if not rest:
            assert command.invoke_without_command, f"{path} needs a subcommand"
            break
        name, sub, remaining = command.resolve_command(ctx, rest)
        assert name is not None and sub is not None
        path.append(name)
        ctx = sub.make_context(name, remaining, parent=ctx)
        command = sub
    return tuple(path)


def test_the_readme_parser_finds_the_commands() -> None:
    assert mesos_zmq_commands(".venv/bin/mesos-zmq agent --master x --resources 'a;b' &") == [
        ["agent", "--master", "x", "--resources", "a;b"]]
    assert mesos_zmq_commands("python3 -m venv .venv && .venv/bin/mesos-zmq local -- sh -c "
                              "'echo \"$X\"'  # comment") == [
        ["local", "--", "sh", "-c", 'echo "$X"']]
    assert mesos_zmq_commands("echo $?   # 3") == []
    assert mesos_zmq_commands("ZK=zk://127.0.0.1:2281/mesos-zmq") == []
    commands = readme_commands()
    assert len(commands) >= 15, commands
    assert ["state"] in commands and ["roles"] in commands


@pytest.fixture(autouse=True)
def no_env_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("MESOS_ZMQ_"):
            monkeypatch.delenv(key)


@pytest.mark.parametrize("args", readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_readme_command_lines_parse(args: list[str]) -> None:
    try:
        path = parse_command_line(args)
    except click.ClickException as exc:
        pytest.fail(f"README command `mesos-zmq {shlex.join(args)}` does not parse: "
                    f"{exc.format_message()}")
    assert path


@pytest.mark.parametrize("path", sorted({parse_command_line(a) for a in readme_commands()}),
                         ids=" ".join)
def test_readme_subcommands_have_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output


def test_every_subcommand_has_help() -> None:
    def walk(group: click.Group, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = []
        for name, command in group.commands.items():
            found.append((*path, name))
            if isinstance(command, click.Group):
                found += walk(command, (*path, name))
        return found

    paths = walk(cli, ())
    assert ("agent", "drain") in paths and ("quota", "set") in paths
    for path in paths:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
