"""The resource value type: Mesos-style text, exact arithmetic.

Text form: ``cpus:4;mem:1024;ports:[31000-32000];zones:{a,b};cpus(eng):2``. Each
entry has a name, a role (``*`` = unreserved) and a value of one kind: scalar,
ranges or set. Scalars are held as integer thousandths, because Mesos rounds
scalars to 0.001 and integer arithmetic never drifts (0.1 added ten times is
exactly 1). A collection is immutable and hashable; arithmetic returns new ones.
Zero scalars, empty ranges and empty sets are dropped, so equal amounts compare
equal however they were computed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Union

from mesos_zmq.errors import ResourceError

Ranges = tuple[tuple[int, int], ...]
Value = Union[int, Ranges, frozenset[str]]  # noqa: UP007 - used at runtime in isinstance
Key = tuple[str, str]  # (name, role)

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_ENTRY_RE = re.compile(r"^\s*([^:(\s]*)\s*(?:\(([^)]*)\))?\s*:\s*(.*?)\s*$", re.S)


def validate_role(role: str) -> str:
    """Check a role name like Mesos does (hierarchical roles use ``/``)."""
    if role == "*":
        return role
    problem = None
    if not role:
        problem = "is empty"
    elif role in (".", ".."):
        problem = "may not be '.' or '..'"
    elif role.startswith("-"):
        problem = "may not start with '-'"
    elif any(c.isspace() for c in role) or any(ord(c) < 32 or ord(c) == 127 for c in role):
        problem = "may not contain whitespace or control characters"
    elif role.startswith("/") or role.endswith("/"):
        problem = "may not start or end with '/'"
    elif "*" in role:
        problem = "may not contain '*' (that is the unreserved role)"
    else:
        for part in role.split("/"):
            if part in ("", ".", ".."):
                problem = "has an empty, '.' or '..' path component"
                break
            if part.startswith("-"):
                problem = "has a path component starting with '-'"
                break
    if problem is not None:
        raise ResourceError(f"invalid role {role!r}: role {problem}")
    return role


def is_ancestor_role(ancestor: str, role: str) -> bool:
    """``eng`` is an ancestor of ``eng/ml``; no role is its own ancestor."""
    if ancestor == "*" or role == "*":
        return False
    return role.startswith(ancestor + "/")


def _scalar_from_text(text: str, token: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ResourceError(f"invalid resource {token!r}: value {text!r} is not a number") from None
    if math.isnan(value) or math.isinf(value):
        raise ResourceError(f"invalid resource {token!r}: value {text!r} is not finite")
    if value < 0:
        raise ResourceError(f"invalid resource {token!r}: value {text!r} is negative")
    return round(value * 1000)


def _normalize_ranges(ranges: Iterable[tuple[int, int]]) -> Ranges:
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


def _ranges_from_text(text: str, token: str) -> Ranges:
    inner = text[1:-1].strip()
    if not inner:
        return ()
    pairs: list[tuple[int, int]] = []
    for part in inner.split(","):
        bounds = part.strip().split("-")
        if len(bounds) != 2:
            raise ResourceError(
                f"invalid resource {token!r}: range {part.strip()!r} is not LOW-HIGH"
            )
        try:
            lo, hi = int(bounds[0].strip()), int(bounds[1].strip())
        except ValueError:
            raise ResourceError(
                f"invalid resource {token!r}: range {part.strip()!r} is not made of integers"
            ) from None
        if lo < 0 or hi < lo:
            raise ResourceError(
                f"invalid resource {token!r}: range {part.strip()!r} must have 0 <= LOW <= HIGH"
            )
        pairs.append((lo, hi))
    return _normalize_ranges(pairs)


def _set_from_text(text: str, token: str) -> frozenset[str]:
    inner = text[1:-1].strip()
    if not inner:
        return frozenset()
    items = [i.strip() for i in inner.split(",")]
    if any(not i or any(c in i for c in "{}[]();:") for i in items):
        raise ResourceError(f"invalid resource {token!r}: set items must be non-empty words")
    return frozenset(items)


def _kind(value: Value) -> str:
    if isinstance(value, int):
        return "scalar"
    if isinstance(value, frozenset):
        return "set"
    return "ranges"


def _empty(value: Value) -> bool:
    return value == 0 if isinstance(value, int) else not value


def _add(a: Value, b: Value) -> Value:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if isinstance(a, frozenset) and isinstance(b, frozenset):
        return a | b
    if isinstance(a, tuple) and isinstance(b, tuple):
        return _normalize_ranges(a + b)
    raise ResourceError("cannot combine resources of different kinds")


def _ranges_contain(outer: Ranges, inner: Ranges) -> bool:
    i = 0
    for lo, hi in inner:
        while i < len(outer) and outer[i][1] < lo:
            i += 1
        if i == len(outer) or outer[i][0] > lo or outer[i][1] < hi:
            return False
    return True


def _ranges_sub(outer: Ranges, inner: Ranges) -> Ranges:
    result: list[tuple[int, int]] = []
    for lo, hi in outer:
        pieces = [(lo, hi)]
        for ilo, ihi in inner:
            next_pieces = []
            for plo, phi in pieces:
                if ihi < plo or ilo > phi:
                    next_pieces.append((plo, phi))
                    continue
                if plo < ilo:
                    next_pieces.append((plo, ilo - 1))
                if ihi < phi:
                    next_pieces.append((ihi + 1, phi))
            pieces = next_pieces
        result.extend(pieces)
    return _normalize_ranges(result)


def _contains(a: Value, b: Value) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a >= b
    if isinstance(a, frozenset) and isinstance(b, frozenset):
        return b <= a
    if isinstance(a, tuple) and isinstance(b, tuple):
        return _ranges_contain(a, b)
    return False


def _sub(a: Value, b: Value) -> Value:
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    if isinstance(a, frozenset) and isinstance(b, frozenset):
        return a - b
    if isinstance(a, tuple) and isinstance(b, tuple):
        return _ranges_sub(a, b)
    raise ResourceError("cannot subtract resources of different kinds")


def _format_scalar(milli: int) -> str:
    whole, frac = divmod(milli, 1000)
    return str(whole) if frac == 0 else f"{whole}.{frac:03d}".rstrip("0")


def _format_value(value: Value) -> str:
    if isinstance(value, int):
        return _format_scalar(value)
    if isinstance(value, frozenset):
        return "{" + ",".join(sorted(value)) + "}"
    return "[" + ",".join(f"{lo}-{hi}" for lo, hi in value) + "]"


class Resources:
    """An immutable collection of resources keyed by (name, role)."""

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[Key, Value] | None = None) -> None:
        self._items: dict[Key, Value] = {
            k: v for k, v in (items or {}).items() if not _empty(v)
        }
        self._hash: int | None = None

    # ----------------------------------------------------------------- construction
    @classmethod
    def empty(cls) -> Resources:
        return cls()

    @classmethod
    def parse(cls, text: str, default_role: str = "*") -> Resources:
        """Parse Mesos-style text; raises ResourceError naming the bad token."""
        if not isinstance(text, str):
            raise ResourceError(f"resources must be a string, not {type(text).__name__}")
        validate_role(default_role)
        items: dict[Key, Value] = {}
        for raw in text.split(";"):
            token = raw.strip()
            if not token:
                continue
            match = _ENTRY_RE.match(token)
            if match is None or ")" in (match.group(1) or ""):
                raise ResourceError(f"invalid resource {token!r}: expected NAME[(ROLE)]:VALUE")
            name, role, value_text = match.group(1), match.group(2), match.group(3)
            if not name:
                raise ResourceError(f"invalid resource {token!r}: missing name")
            if not _NAME_RE.match(name):
                raise ResourceError(
                    f"invalid resource {token!r}: name {name!r} must start with a letter "
                    "and use letters, digits, '_', '.', '-'"
                )
            if role is None:
                role = default_role
            else:
                role = role.strip()
                try:
                    validate_role(role)
                except ResourceError as exc:
                    raise ResourceError(f"invalid resource {token!r}: {exc}") from None
            if not value_text:
                raise ResourceError(f"invalid resource {token!r}: missing value")
            value: Value
            if value_text.startswith("["):
                if not value_text.endswith("]"):
                    raise ResourceError(f"invalid resource {token!r}: unterminated range")
                value = _ranges_from_text(value_text, token)
            elif value_text.startswith("{"):
                if not value_text.endswith("}"):
                    raise ResourceError(f"invalid resource {token!r}: unterminated set")
                value = _set_from_text(value_text, token)
            else:
                value = _scalar_from_text(value_text, token)
            for (other_name, _), other in items.items():
                if other_name == name and _kind(other) != _kind(value):
                    raise ResourceError(
                        f"invalid resource {token!r}: {name!r} already appears "
                        f"as a {_kind(other)}"
                    )
            key = (name, role)
            items[key] = _add(items[key], value) if key in items else value
        return cls(items)

    @classmethod
    def from_scalars(cls, values: Mapping[str, float], role: str = "*") -> Resources:
        validate_role(role)
        items: dict[Key, Value] = {}
        for name, amount in values.items():
            if not _NAME_RE.match(name):
                raise ResourceError(f"invalid resource name {name!r}")
            items[(name, role)] = _scalar_from_text(repr(float(amount)), f"{name}:{amount}")
        return cls(items)

    @classmethod
    def from_ports(cls, ports: Iterable[int], role: str = "*") -> Resources:
        ranges = _normalize_ranges((p, p) for p in ports)
        if any(lo < 0 for lo, _ in ranges):
            raise ResourceError("ports must not be negative")
        return cls({("ports", role): ranges})

    @classmethod
    def from_wire(cls, value: object) -> Resources:
        if not isinstance(value, str):
            raise ResourceError(f"resources must be a string, not {type(value).__name__}")
        return cls.parse(value)

    # ----------------------------------------------------------------- text
    def __str__(self) -> str:
        parts = []
        for (name, role), value in sorted(self._items.items()):
            label = name if role == "*" else f"{name}({role})"
            parts.append(f"{label}:{_format_value(value)}")
        return ";".join(parts)

    def __repr__(self) -> str:
        return f"Resources({str(self)!r})"

    def to_wire(self) -> str:
        return str(self)

    # ----------------------------------------------------------------- comparison
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and self._items == other._items

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._items.items()))
        return self._hash

    def __bool__(self) -> bool:
        return bool(self._items)

    def is_empty(self) -> bool:
        return not self._items

    def contains(self, other: Resources) -> bool:
        """True when ``other`` fits: every entry within the same (name, role) here."""
        for key, value in other._items.items():
            mine = self._items.get(key)
            if mine is None or not _contains(mine, value):
                return False
        return True

    # ----------------------------------------------------------------- arithmetic
    def __add__(self, other: Resources) -> Resources:
        if not other._items:
            return self
        if not self._items:
            return other
        items = dict(self._items)
        for key, value in other._items.items():
            if key in items:
                if _kind(items[key]) != _kind(value):
                    raise ResourceError(f"cannot add {key[0]} of different kinds")
                items[key] = _add(items[key], value)
            else:
                items[key] = value
        return Resources(items)

    def __sub__(self, other: Resources) -> Resources:
        if not other._items:
            return self
        if not self.contains(other):
            raise ResourceError(f"cannot subtract {other} from {self}: not contained")
        items = dict(self._items)
        for key, value in other._items.items():
            items[key] = _sub(items[key], value)
        return Resources(items)

    def subtract_available(self, other: Resources) -> Resources:
        """What is left of ``self`` once ``other`` takes what it can (never negative).

        For an agent holding more than it has (its total shrank under running tasks,
        or a log from elsewhere said so): free is total minus allocated, clamped at
        nothing, and it stays right however the allocations come back.
        """
        if not other._items:
            return self
        items = dict(self._items)
        for key, value in other._items.items():
            mine = items.get(key)
            if mine is None or _kind(mine) != _kind(value):
                continue
            if isinstance(mine, int) and isinstance(value, int):
                items[key] = max(0, mine - value)
            else:
                items[key] = _sub(mine, value)
        return Resources(items)

    # ----------------------------------------------------------------- queries
    def scalar(self, name: str, role: str | None = None) -> float:
        total = 0
        for (n, r), value in self._items.items():
            if n == name and isinstance(value, int) and (role is None or r == role):
                total += value
        return total / 1000

    def scalar_totals(self) -> dict[str, float]:
        milli: dict[str, int] = {}
        for (name, _), value in self._items.items():
            if isinstance(value, int):
                milli[name] = milli.get(name, 0) + value
        return {name: v / 1000 for name, v in milli.items()}

    def ranges(self, name: str, role: str | None = None) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for (n, r), value in self._items.items():
            if n == name and isinstance(value, tuple) and (role is None or r == role):
                found.extend(value)
        return list(_normalize_ranges(found))

    def set_items(self, name: str, role: str | None = None) -> frozenset[str]:
        found: frozenset[str] = frozenset()
        for (n, r), value in self._items.items():
            if n == name and isinstance(value, frozenset) and (role is None or r == role):
                found = found | value
        return found

    def names(self) -> set[str]:
        return {name for name, _ in self._items}

    def roles(self) -> set[str]:
        return {role for _, role in self._items}

    def entries(self) -> list[tuple[str, str, str, object]]:
        out: list[tuple[str, str, str, object]] = []
        for (name, role), value in sorted(self._items.items()):
            shown: object = value / 1000 if isinstance(value, int) else value
            out.append((name, role, _kind(value), shown))
        return out

    # ----------------------------------------------------------------- roles
    def unreserved(self) -> Resources:
        return Resources({k: v for k, v in self._items.items() if k[1] == "*"})

    def reserved(self, role: str | None = None) -> Resources:
        if role is None:
            return Resources({k: v for k, v in self._items.items() if k[1] != "*"})
        return Resources({k: v for k, v in self._items.items() if k[1] == role})

    def allocatable_to(self, role: str) -> Resources:
        """What a framework in ``role`` may use: unreserved, its own and its ancestors'."""
        return Resources(
            {
                k: v
                for k, v in self._items.items()
                if k[1] == "*" or k[1] == role or is_ancestor_role(k[1], role)
            }
        )

    def flatten(self, role: str = "*") -> Resources:
        validate_role(role)
        items: dict[Key, Value] = {}
        for (name, _), value in self._items.items():
            key = (name, role)
            items[key] = _add(items[key], value) if key in items else value
        return Resources(items)

    def filter_names(self, names: Iterable[str]) -> Resources:
        wanted = set(names)
        return Resources({k: v for k, v in self._items.items() if k[0] in wanted})

    def without_names(self, names: Iterable[str]) -> Resources:
        unwanted = set(names)
        return Resources({k: v for k, v in self._items.items() if k[0] not in unwanted})

    def cap_scalars(self, limits: Mapping[str, float]) -> Resources:
        """Shrink scalars so each named total is at most its limit (others untouched).

        Unreserved amounts are given up first, so what stays is what is reserved. Used
        to keep an offer within a quota limit or out of another role's headroom.
        """
        items = dict(self._items)
        for name, limit in limits.items():
            amounts = {k: v for k, v in items.items() if k[0] == name and isinstance(v, int)}
            excess = sum(amounts.values()) - max(0, round(limit * 1000))
            for key in sorted(amounts, key=lambda k: k[1] != "*"):
                if excess <= 0:
                    break
                cut = min(amounts[key], excess)
                items[key] = amounts[key] - cut
                excess -= cut
        return Resources(items)

    def take_ports(self, count: int) -> list[int]:
        """The lowest ``count`` ports of the ``ports`` ranges (any role)."""
        if count < 0:
            raise ResourceError("port count must not be negative")
        picked: list[int] = []
        for lo, hi in self.ranges("ports"):
            port = lo
            while port <= hi and len(picked) < count:
                picked.append(port)
                port += 1
            if len(picked) == count:
                return picked
        if len(picked) < count:
            raise ResourceError(f"need {count} ports but only {len(picked)} are available")
        return picked
