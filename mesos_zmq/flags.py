"""A daemon's flags as data: name, default, range and help, written once.

Each daemon has a table (:mod:`mesos_zmq.master.flags`, :mod:`mesos_zmq.agent.flags`):
the CLI builds its options from it, the daemon's config object takes its defaults and
range checks from it, and the pure cores take their defaults from it, so that no
default is repeated (a default written in the CLI, the shell and the core drifts).
Pure data: no click here, so cores may import the tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Flag:
    """One flag. ``name`` is the click parameter; ``field`` the config field it sets
    (the same unless given). Text flags that the CLI parses (roles, weights...) keep
    their text form here; the config holds the parsed value."""

    name: str
    option: str
    default: Any
    help: str
    kind: type = str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    multiple: bool = False
    #: None is allowed (and is the default): the feature is off
    optional: bool = False
    field: str = ""

    @property
    def config_field(self) -> str:
        return self.field or self.name

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of range for this flag, or None."""
        if value is None and self.optional:
            return None
        if self.choices and value not in self.choices:
            return f"{self.option} must be one of {', '.join(self.choices)}, not {value!r}"
        if self.low is not None and not value >= self.low:
            bound = (f"within {_num(self.low)}..{_num(self.high)}" if self.high is not None
                     else f"at least {_num(self.low)}")
            return f"{self.option} must be {bound}, got {value!r}"
        if self.high is not None and not value <= self.high:
            return (f"{self.option} must be within {_num(self.low)}..{_num(self.high)}, "
                    f"got {value!r}")
        return None


def _num(value: float | None) -> str:
    """A bound as people write it: 1000000, not 1e+06."""
    if value is None:
        return "-inf"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def range_problems(table: Iterable[Flag], values: dict[str, Any]) -> list[str]:
    """Every range or choice of ``table`` violated by ``values`` (config field -> value)."""
    problems = []
    for flag in table:
        if flag.config_field in values and (flag.low is not None or flag.high is not None
                                            or flag.choices):
            problem = flag.problem(values[flag.config_field])
            if problem is not None:
                problems.append(problem)
    return problems
