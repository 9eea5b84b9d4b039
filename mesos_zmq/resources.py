"""The resource value type: Mesos-style text, exact arithmetic.

Text form: ``cpus:4;mem:1024;ports:[31000-32000];zones:{a,b};cpus(eng):2``. Each
entry has a name, a role (``*`` = unreserved) and a value of one kind: scalar,
ranges or set. Scalars are held as integer thousandths, because Mesos rounds
scalars to 0.001 and integer arithmetic never drifts (0.1 added ten times is
exactly 1). A collection is immutable and hashable; arithmetic returns new ones.
Zero scalars, empty ranges and empty sets are dropped, so equal amounts compare
equal however they were computed.

Amounts are read exactly (decimal, rounded half to even at 3 decimals) and are at
most :data:`MAX_SCALAR` (about 9.007e12), so that :meth:`Resources.scalar` and the
JSON views, which are floats, hold every amount exactly (a float holds integers
exactly only up to 2**53), and ``disk:1e99`` is refused instead of printing as a
100-digit number. Mesos keeps scalars as fixed-point thousandths in an int64.

:meth:`Resources.parse` reads the wire and the log. Text typed by a person (agent
``--resources``, quota, reservations) goes through :func:`parse_user_resources`,
which also keeps the names written with a zero amount and warns about likely typos
(``cpu:4``) without refusing them: custom resource names are legal, as in Mesos.

Limits
------
Every resource string a peer sends is bounded, so that whatever a master or an agent
accepts it can add up, log, replay after a crash and send on, and a hostile string
costs one refusal. Two layers: what :meth:`Resources.parse` itself enforces holds for
every collection ever parsed (the wire, the logs) and survives the arithmetic the
system does (a reservation moves an amount between roles, an offer or a task is part
of an agent); what :meth:`Resources.from_wire` adds bounds the size of what a peer
sends (agent totals, task resources, quotas, reservations). :meth:`Resources.kind_problem`
holds tasks to the kinds the agent relies on.

==========================  =====================================  ======================
what                        limit                                  enforced by
==========================  =====================================  ======================
scalar amount               finite, 0 .. :data:`MAX_SCALAR`,       ``parse``
                            3 decimals
one resource name, summed   at most :data:`MAX_SCALAR` per string  ``parse``
over its roles and repeats  (``cpus(a):9e12;cpus(b):9e12`` is
                            refused)
resource name               1 .. :data:`MAX_NAME_LENGTH` (128)      ``parse``
                            characters
role name                   1 .. :data:`MAX_ROLE_LENGTH` (255)      ``validate_role``
                            characters
range bound                 0 .. :data:`MAX_RANGE_VALUE` (2**53-1)  ``parse``
``ports`` range bound       0 .. :data:`MAX_PORT` (65535)            ``parse``
resource text               :data:`MAX_RESOURCES_TEXT` (64 KiB)      ``from_wire``
entries in one string       :data:`MAX_RESOURCE_ENTRIES` (1,024)     ``from_wire``
ranges in one entry         :data:`MAX_RANGES` (1,024)               ``from_wire``
items in one set            :data:`MAX_SET_ITEMS` (1,024)            ``from_wire``
kinds of known names        cpus, mem, disk, gpus scalars; gpus    ``kind_problem``
                            whole; ports ranges                    (of tasks)
==========================  =====================================  ======================

Sums across a string stay within :data:`MAX_SCALAR`, so one agent's total, an offer, a
task and a quota are exact as floats. Sums across agents (the cluster's total, a role's
allocation) are Python integers, exact at any size; as floats they stay far below
overflow (a million agents at the bound is 9e18, against 1.8e308).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Union

from mesos_zmq.errors import ResourceError

Ranges = tuple[tuple[int, int], ...]
Value = Union[int, Ranges, frozenset[str]]  # noqa: UP007 - used at runtime in isinstance
Key = tuple[str, str]  # (name, role)

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
#: one entry; the value is taken to the end (stripped after), never with a lazy ``.*?``
#: before ``\s*$``, which costs quadratic time on a value full of spaces
_ENTRY_RE = re.compile(r"^\s*([^:(\s]*)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$", re.S)
#: a resource written after a ',' or a space instead of a ';' (``cpus:4,mem:100``)
#: (searched only in short texts: on a long run of spaces its search is quadratic)
_MISSED_SEPARATOR_RE = re.compile(r"[,\s]\s*[A-Za-z][A-Za-z0-9_.-]*\s*(?:\([^)]*\))?\s*:")

#: the largest scalar amount in thousandths: 2**53 - 1 is the largest integer every
#: float below it converts to exactly (see the module docstring)
MAX_SCALAR_MILLI = 2**53 - 1
#: the largest scalar amount (9007199254740.991)
MAX_SCALAR = MAX_SCALAR_MILLI / 1000
_MAX_SCALAR_DECIMAL = Decimal(MAX_SCALAR_MILLI) / 1000
#: the longest resource name (``cpus``, ``nvidia.gpu.memory``...)
MAX_NAME_LENGTH = 128
#: the longest role name, path components and '/' included
MAX_ROLE_LENGTH = 255
#: the largest bound of a range (as for scalars: every JSON reader holds it exactly)
MAX_RANGE_VALUE = 2**53 - 1
#: the largest port
MAX_PORT = 65535
#: the longest resource string a peer may send (characters)
MAX_RESOURCES_TEXT = 64 * 1024
#: the most ``;``-separated entries in a resource string a peer may send
MAX_RESOURCE_ENTRIES = 1024
#: the most ranges in one entry a peer may send (``ports:[1-1,3-3,...]``)
MAX_RANGES = 1024
#: the most items in one set a peer may send
MAX_SET_ITEMS = 1024
#: an amount that needs no Decimal: at most 12 digits, at most 3 decimals
_PLAIN_AMOUNT_RE = re.compile(r"^(\d{1,12})(?:\.(\d{0,3}))?$")
#: the longest text the separator hint looks at
_HINT_TEXT = 1000
#: the resources Mesos (and this project) know, with the kind each must have
KNOWN_RESOURCES: dict[str, str] = {
    "cpus": "scalar", "mem": "scalar", "disk": "scalar", "gpus": "scalar", "ports": "ranges",
}
#: other common spellings of the known names
_ALIASES = {"memory": "mem", "ram": "mem", "cores": "cpus", "gpu": "gpus"}


def _show(text: str, limit: int = 100) -> str:
    """``text`` quoted for an error message, cut short: a refusal must not echo back a
    64 KiB string (or a 4 MiB one, to a peer that sent it to make replies large)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def validate_role(role: str) -> str:
    """Check a role name like Mesos does (hierarchical roles use ``/``)."""
    if role == "*":
        return role
    problem = None
    if not role:
        problem = "is empty"
    elif len(role) > MAX_ROLE_LENGTH:
        problem = f"is longer than {MAX_ROLE_LENGTH} characters"
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
        raise ResourceError(f"invalid role {_show(role)}: role {problem}")
    return role


def is_ancestor_role(ancestor: str, role: str) -> bool:
    """``eng`` is an ancestor of ``eng/ml``; no role is its own ancestor."""
    if ancestor == "*" or role == "*":
        return False
    return role.startswith(ancestor + "/")


def _scalar_from_text(text: str, token: str) -> int:
    """Thousandths of the amount ``text``, rounded half to even, exactly (no float)."""
    plain = _PLAIN_AMOUNT_RE.match(text)
    if plain is not None:  # the common case, without Decimal
        return int(plain.group(1)) * 1000 + int((plain.group(2) or "").ljust(3, "0"))
    try:
        if "_" in text:  # Decimal() reads 1_000; Mesos (and people) do not
            raise InvalidOperation(text)
        value = Decimal(text)
    except InvalidOperation:
        raise ResourceError(
            f"invalid resource {_show(token)}: value {_show(text)} is not a number") from None
    if not value.is_finite():
        raise ResourceError(
            f"invalid resource {_show(token)}: value {_show(text)} is not finite")
    if value < 0:
        raise ResourceError(f"invalid resource {_show(token)}: value {_show(text)} is negative")
    milli = 0
    if value <= _MAX_SCALAR_DECIMAL:
        milli = int((value * 1000).to_integral_value(rounding=ROUND_HALF_EVEN))
    if value > _MAX_SCALAR_DECIMAL or milli > MAX_SCALAR_MILLI:
        raise ResourceError(
            f"invalid resource {_show(token)}: value {_show(text)} is too large "
            f"(at most {_format_scalar(MAX_SCALAR_MILLI)})"
        )
    return milli


def _separator_hint(text: str) -> str:
    """``use ';' between resources: cpus:4;mem:100`` when ``text`` looks like resources
    joined by ',' or spaces (outside brackets), else ''. Only for text a person could
    have typed (:data:`_HINT_TEXT` characters at most)."""
    if len(text) > _HINT_TEXT or not _MISSED_SEPARATOR_RE.search(text):
        return ""
    out: list[str] = []
    depth = 0
    pending = False  # a separator seen at depth 0, not yet written
    for ch in text.strip():
        if depth == 0 and (ch == "," or ch.isspace()):
            pending = True
            continue
        if pending:
            # ',' or a space before a name: a missed ';'. Before ':' or '(' it was just space.
            out.append("" if ch in ":(;" or (out and out[-1] in ":(;") else ";")
            pending = False
        if ch in "[{(":
            depth += 1
        elif ch in "]})" and depth:
            depth -= 1
        out.append(ch)
    fixed = "".join(out)
    return f"use ';' between resources: {fixed}" if fixed != text.strip() else ""


def _normalize_ranges(ranges: Iterable[tuple[int, int]]) -> Ranges:
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


def _ranges_from_text(text: str, token: str, name: str) -> Ranges:
    inner = text[1:-1].strip()
    top = MAX_PORT if name == "ports" else MAX_RANGE_VALUE
    if not inner:
        return ()
    pairs: list[tuple[int, int]] = []
    for part in inner.split(","):
        bounds = part.strip().split("-")
        if len(bounds) != 2:
            raise ResourceError(
                f"invalid resource {_show(token)}: range {_show(part.strip())} is not LOW-HIGH"
            )
        try:
            lo, hi = int(bounds[0].strip()), int(bounds[1].strip())
        except ValueError:
            raise ResourceError(
                f"invalid resource {_show(token)}: range {_show(part.strip())} "
                "is not made of integers"
            ) from None
        if lo < 0 or hi < lo:
            raise ResourceError(
                f"invalid resource {_show(token)}: range {_show(part.strip())} "
                "must have 0 <= LOW <= HIGH"
            )
        if hi > top:
            what = "ports" if name == "ports" else "range bounds"
            raise ResourceError(
                f"invalid resource {_show(token)}: range {_show(part.strip())} is too large "
                f"({what} are at most {top})"
            )
        pairs.append((lo, hi))
    return _normalize_ranges(pairs)


def _set_from_text(text: str, token: str) -> frozenset[str]:
    inner = text[1:-1].strip()
    if not inner:
        return frozenset()
    items = [i.strip() for i in inner.split(",")]
    if any(not i or any(c in i for c in "{}[]();:") for i in items):
        raise ResourceError(f"invalid resource {_show(token)}: set items must be non-empty words")
    return frozenset(items)


#: how a message names each kind
_KIND_WORDS = {"scalar": "an amount", "set": "a set", "ranges": "ranges"}


def _kind(value: Value) -> str:
    if isinstance(value, int):
        return "scalar"
    if isinstance(value, frozenset):
        return "set"
    return "ranges"


def _add(a: Value, b: Value) -> Value:
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if isinstance(a, frozenset) and isinstance(b, frozenset):
        return a | b
    if isinstance(a, tuple) and isinstance(b, tuple):
        return _normalize_ranges(a + b)
    raise ResourceError("cannot combine resources of different kinds")


def _add_into(items: dict[Key, Value], more: Mapping[Key, Value], count: int = 1,
              tolerant: bool = False) -> None:
    """Add ``count`` times ``more`` to ``items`` in place (sets and ranges once).
    ``tolerant``: an entry of another kind than the one already there is left out
    rather than refused (see :meth:`Resources.total`)."""
    for key, value in more.items():
        if count != 1 and isinstance(value, int):
            value *= count
        if key in items:
            if _kind(items[key]) != _kind(value):
                if tolerant:
                    continue
                raise ResourceError(f"cannot add {key[0]} of different kinds")
            items[key] = _add(items[key], value)
        else:
            items[key] = value


def _ranges_contain(outer: Ranges, inner: Ranges) -> bool:
    i = 0
    for lo, hi in inner:
        while i < len(outer) and outer[i][1] < lo:
            i += 1
        if i == len(outer) or outer[i][0] > lo or outer[i][1] < hi:
            return False
    return True


def _ranges_sub(outer: Ranges, inner: Ranges) -> Ranges:
    """``outer`` without ``inner``, both normalized (sorted, disjoint, not adjacent), in
    one sweep: linear, since an agent's ports may be split into thousands of ranges."""
    result: list[tuple[int, int]] = []
    j = 0
    for lo, hi in outer:
        while j < len(inner) and inner[j][1] < lo:
            j += 1  # ends before this range (and so before every later one)
        k = j
        start = lo
        while k < len(inner) and inner[k][0] <= hi:
            ilo, ihi = inner[k]
            if ilo > start:
                result.append((start, ilo - 1))
            start = max(start, ihi + 1)
            if ihi > hi:
                break  # it reaches into the next range of ``outer``: look at it again
            k += 1
        if start <= hi:
            result.append((start, hi))
        j = k
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


def _check_totals(items: Mapping[Key, Value]) -> None:
    """Refuse a name whose scalar amounts add up beyond :data:`MAX_SCALAR`."""
    totals: dict[str, int] = {}
    for (name, _), value in items.items():
        if isinstance(value, int):
            totals[name] = totals.get(name, 0) + value
    for name, total in totals.items():
        if total > MAX_SCALAR_MILLI:
            raise ResourceError(
                f"invalid resources: {_show(name)} adds up to {_format_scalar(total)} over "
                f"its entries, too large (at most {_format_scalar(MAX_SCALAR_MILLI)})"
            )


def _format_scalar(milli: int) -> str:
    whole, frac = divmod(milli, 1000)
    return str(whole) if frac == 0 else f"{whole}.{frac:03d}".rstrip("0")


def _format_value(value: Value) -> str:
    if isinstance(value, int):
        return _format_scalar(value)
    if isinstance(value, frozenset):
        return "{" + ",".join(sorted(value)) + "}"
    return "[" + ",".join(f"{lo}-{hi}" for lo, hi in value) + "]"


def _parse_entries(text: str, default_role: str) -> Iterator[tuple[str, str, Value, str]]:
    """(name, role, value, token) of each ';'-separated entry, zero amounts included.

    A bad entry raises ResourceError naming it; when the text looks like resources
    joined by ',' the message also shows it with ';'.
    """
    if not isinstance(text, str):
        raise ResourceError(f"resources must be a string, not {type(text).__name__}")
    validate_role(default_role)
    kinds: dict[str, str] = {}
    for raw in text.split(";"):
        token = raw.strip()
        if not token:
            continue
        try:
            name, role, value = _parse_entry(token, default_role)
        except ResourceError as exc:
            hint = _separator_hint(text)
            if hint:
                raise ResourceError(f"{exc}; {hint}") from None
            raise
        kind = _kind(value)
        if kinds.setdefault(name, kind) != kind:
            raise ResourceError(
                f"invalid resource {_show(token)}: {_show(name)} already appears as a "
                f"{kinds[name]}"
            )
        yield name, role, value, token


def _parse_entry(token: str, default_role: str) -> tuple[str, str, Value]:
    match = _ENTRY_RE.match(token)
    if match is None or ")" in (match.group(1) or ""):
        raise ResourceError(f"invalid resource {_show(token)}: expected NAME[(ROLE)]:VALUE")
    name, role, value_text = match.group(1), match.group(2), match.group(3).rstrip()
    if not name:
        raise ResourceError(f"invalid resource {_show(token)}: missing name")
    if not _NAME_RE.match(name):
        raise ResourceError(
            f"invalid resource {_show(token)}: name {_show(name)} must start with a letter "
            "and use letters, digits, '_', '.', '-'"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ResourceError(
            f"invalid resource {_show(token)}: name is longer than {MAX_NAME_LENGTH} characters"
        )
    if role is None:
        role = default_role
    else:
        role = role.strip()
        try:
            validate_role(role)
        except ResourceError as exc:
            raise ResourceError(f"invalid resource {_show(token)}: {exc}") from None
    if not value_text:
        raise ResourceError(f"invalid resource {_show(token)}: missing value")
    value: Value
    if value_text.startswith("["):
        if not value_text.endswith("]"):
            raise ResourceError(f"invalid resource {_show(token)}: unterminated range")
        value = _ranges_from_text(value_text, token, name)
    elif value_text.startswith("{"):
        if not value_text.endswith("}"):
            raise ResourceError(f"invalid resource {_show(token)}: unterminated set")
        value = _set_from_text(value_text, token)
    else:
        value = _scalar_from_text(value_text, token)
    return name, role, value


#: texts parsed lately (short ones only), and how many are kept
_PARSED: dict[tuple[str, str], Resources] = {}
_CACHE_SIZE = 4096
_CACHED_TEXT = 256
#: texts :meth:`Resources.from_wire` accepted lately (short ones only), as parsed
_FROM_WIRE: dict[str, Resources] = {}


class Resources:
    """An immutable collection of resources keyed by (name, role)."""

    __slots__ = ("_hash", "_items", "_scalars", "_text")

    def __init__(self, items: Mapping[Key, Value] | None = None) -> None:
        # empty amounts are dropped: ``not v`` is true of exactly 0, no ranges and an
        # empty set (one test, no call per entry: every sum and difference builds one)
        self._items: dict[Key, Value] = {k: v for k, v in (items or {}).items() if v}
        self._hash: int | None = None
        #: the text form, once asked for (offers, logged records and views all ask)
        self._text: str | None = None
        #: the scalar totals, once asked for (see :meth:`scalar_amounts`)
        self._scalars: dict[str, float] | None = None

    # ----------------------------------------------------------------- construction
    @classmethod
    def empty(cls) -> Resources:
        return cls()

    @classmethod
    def parse(cls, text: str, default_role: str = "*") -> Resources:
        """Parse Mesos-style text; raises ResourceError naming the bad token.

        Each name's scalar amounts, summed over its roles and repeats, must stay within
        :data:`MAX_SCALAR` (see the module docstring): whatever parses is safe to add
        up and to show as a float.
        """
        cached = _PARSED.get((text, default_role))
        if cached is not None and cls is Resources:
            return cached
        items: dict[Key, Value] = {}
        for name, role, value, _ in _parse_entries(text, default_role):
            key = (name, role)
            items[key] = _add(items[key], value) if key in items else value
        _check_totals(items)
        parsed = cls(items)
        if cls is Resources and len(text) <= _CACHED_TEXT:
            # A cluster's tasks come in a few shapes, parsed again at every launch and
            # end (4 % of the master's time under churn); Resources are immutable.
            if len(_PARSED) >= _CACHE_SIZE:
                _PARSED.clear()
            _PARSED[(text, default_role)] = parsed
        return parsed

    @classmethod
    def from_scalars(cls, values: Mapping[str, float], role: str = "*") -> Resources:
        validate_role(role)
        items: dict[Key, Value] = {}
        for name, amount in values.items():
            if not _NAME_RE.match(name):
                raise ResourceError(f"invalid resource name {_show(name)}")
            items[(name, role)] = _scalar_from_text(repr(float(amount)), f"{name}:{amount}")
        return cls(items)

    @classmethod
    def from_ports(cls, ports: Iterable[int], role: str = "*") -> Resources:
        ranges = _normalize_ranges((p, p) for p in ports)
        if any(lo < 0 for lo, _ in ranges):
            raise ResourceError("ports must not be negative")
        if ranges and ranges[-1][1] > MAX_PORT:
            raise ResourceError(f"ports are at most {MAX_PORT}")
        return cls({("ports", role): ranges})

    @classmethod
    def from_wire(cls, value: object) -> Resources:
        """Resources as a peer sends them (an agent's total, a task's resources, a quota,
        a reservation): :meth:`parse` within the size limits of the module docstring,
        checked before any work proportional to the text is done. Raises ResourceError.
        """
        if not isinstance(value, str):
            raise ResourceError(f"resources must be a string, not {type(value).__name__}")
        accepted = _FROM_WIRE.get(value)
        if accepted is not None and cls is Resources:
            return accepted
        if len(value) > MAX_RESOURCES_TEXT:
            raise ResourceError(f"invalid resources: {len(value)} characters, more than "
                                f"{MAX_RESOURCES_TEXT}")
        entries = sum(1 for raw in value.split(";") if raw.strip())
        if entries > MAX_RESOURCE_ENTRIES:
            raise ResourceError(f"invalid resources: {entries} entries, more than "
                                f"{MAX_RESOURCE_ENTRIES}")
        parsed = cls.parse(value)
        problem = parsed.size_problem()
        if problem is not None:
            raise ResourceError(f"invalid resources: {problem}")
        if cls is Resources and len(value) <= _CACHED_TEXT:
            # Every task of a shape is checked at each accept (3 % of the master's time
            # under churn); the verdict on a text never changes.
            if len(_FROM_WIRE) >= _CACHE_SIZE:
                _FROM_WIRE.clear()
            _FROM_WIRE[value] = parsed
        return parsed

    # ----------------------------------------------------------------- text
    def __str__(self) -> str:
        text = self._text
        if text is None:
            parts = []
            for (name, role), value in sorted(self._items.items()):
                label = name if role == "*" else f"{name}({role})"
                parts.append(f"{label}:{_format_value(value)}")
            text = self._text = ";".join(parts)
        return text

    def __repr__(self) -> str:
        return f"Resources({str(self)!r})"

    # ----------------------------------------------------------------- comparison
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and self._items == other._items

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._items.items()))
        return self._hash

    def __bool__(self) -> bool:
        return bool(self._items)

    def contains(self, other: Resources) -> bool:
        """True when ``other`` fits: every entry within the same (name, role) here."""
        for key, value in other._items.items():
            mine = self._items.get(key)
            if mine is None or not _contains(mine, value):
                return False
        return True

    # ----------------------------------------------------------------- arithmetic
    @classmethod
    def total(cls, counted: Iterable[tuple[Resources, int]],
              tolerant: bool = False) -> Resources:
        """The sum of ``count`` copies of each resources, in one pass: adding them
        pairwise built a new object per task (most of a state read at 100,000 tasks).
        Scalars are multiplied; sets and ranges are taken once (a union).

        A custom name may be an amount on one agent and ranges on another (``foo:5``,
        ``foo:[1-5]``): one agent's resources are of one kind a name, enforced where
        they come in, but sums across agents (a framework's use, the cluster's) may
        meet both. ``tolerant`` keeps the kind met first and leaves the other out, for
        such sums, which are shown, never subtracted from; without it, a mix raises
        :class:`ResourceError`."""
        items: dict[Key, Value] = {}
        for res, count in counted:
            _add_into(items, res._items, count, tolerant)  # noqa: SLF001 - its own class
        return cls(items)

    @staticmethod
    def scalar_sum(counted: Iterable[tuple[Resources, int]]) -> dict[str, float]:
        """``total(counted).scalar_totals()`` without building the total (sets and
        ranges are not summed): for shares, which count scalars only."""
        milli: dict[str, int] = {}
        for res, count in counted:
            for (name, _), value in res._items.items():  # noqa: SLF001 - its own class
                if isinstance(value, int):
                    milli[name] = milli.get(name, 0) + value * count
        return {name: v / 1000 for name, v in milli.items() if v}

    @classmethod
    def total_of_texts(cls, counted: Mapping[str, int], tolerant: bool = True) -> Resources:
        """:meth:`total` of resource texts counted by shape (tasks' resources), tolerant
        of kinds (tasks on several agents) unless told not to be; a text that does not
        parse holds nothing countable and is left out."""
        return cls.total(cls.parsed_counts(counted), tolerant=tolerant)

    @classmethod
    def parsed_counts(cls, counted: Mapping[str, int]) -> list[tuple[Resources, int]]:
        """Resource texts counted by shape, parsed (a text that does not parse holds
        nothing countable and is left out)."""
        parts = []
        for text, count in counted.items():
            try:
                parts.append((cls.parse(text), count))
            except ResourceError:
                continue
        return parts

    @staticmethod
    def _owning(items: dict[Key, Value]) -> Resources:
        """A collection over ``items``: a dict of the caller's own making, with no empty
        amount, that it gives up (taken as it is: no copy, no pass to drop empties,
        which every sum and difference the allocator makes paid for twice)."""
        res: Resources = object.__new__(Resources)
        res._items = items
        res._hash = None
        res._text = None
        res._scalars = None
        return res

    def __add__(self, other: Resources) -> Resources:
        if not other._items:
            return self
        if not self._items:
            return other
        items = dict(self._items)
        _add_into(items, other._items)
        for key in other._items:
            if not items[key]:  # (amounts are never negative: kept for safety)
                del items[key]
        return Resources._owning(items)

    def __sub__(self, other: Resources) -> Resources:
        if not other._items:
            return self
        if not self.contains(other):
            raise ResourceError(f"cannot subtract {other} from {self}: not contained")
        return self.minus_contained(other)

    def minus_contained(self, other: Resources) -> Resources:
        """``self - other`` for an ``other`` the caller has just found contained
        (:meth:`contains`): the allocator checks before it takes a task's resources
        back, and :meth:`__sub__` checking again was a tenth of that. What it gives
        for an ``other`` not contained is undefined: check first."""
        if not other._items:
            return self
        items = dict(self._items)
        for key, value in other._items.items():
            mine = items[key]
            left = mine - value if type(mine) is int and type(value) is int else _sub(mine, value)
            if left:
                items[key] = left
            else:
                del items[key]
        return Resources._owning(items)

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
            if mine is None:
                continue
            if type(mine) is int:
                if type(value) is not int:
                    continue  # of another kind: takes nothing
                left: Value = mine - value  # clamped at nothing, below
            elif _kind(mine) != _kind(value):
                continue
            else:
                left = _sub(mine, value)
            if left and (type(left) is not int or left > 0):
                items[key] = left
            else:
                del items[key]
        return Resources._owning(items)

    # ----------------------------------------------------------------- queries
    def scalar(self, name: str, role: str | None = None) -> float:
        total = 0
        for (n, r), value in self._items.items():
            if n == name and isinstance(value, int) and (role is None or r == role):
                total += value
        return total / 1000

    def scalar_totals(self) -> dict[str, float]:
        """Each scalar name's amount over its roles (a fresh dict, the caller's own)."""
        return dict(self.scalar_amounts())

    def scalar_amounts(self) -> Mapping[str, float]:
        """:meth:`scalar_totals` worked out once per collection and shared: not to be
        changed. The allocator asks it of the same objects again and again (a task's
        parsed resources at its launch and its end, an agent's free resources), and
        each answer was a loop and two new dicts (3 % of the master under churn)."""
        scalars = self._scalars
        if scalars is None:
            milli: dict[str, int] = {}
            for (name, _), value in self._items.items():
                if isinstance(value, int):
                    milli[name] = milli.get(name, 0) + value
            scalars = self._scalars = {name: v / 1000 for name, v in milli.items()}
        return scalars

    def ranges(self, name: str, role: str | None = None) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for (n, r), value in self._items.items():
            if n == name and isinstance(value, tuple) and (role is None or r == role):
                found.extend(value)
        return list(_normalize_ranges(found))

    def names(self) -> set[str]:
        return {name for name, _ in self._items}

    def roles(self) -> set[str]:
        return {role for _, role in self._items}

    def size_problem(self) -> str | None:
        """What makes this larger than a peer may send, or None: too many entries,
        ranges in an entry or items in a set (see the module docstring). The text's own
        length is :meth:`from_wire`'s to check."""
        if len(self._items) > MAX_RESOURCE_ENTRIES:
            return f"{len(self._items)} entries, more than {MAX_RESOURCE_ENTRIES}"
        for (name, _), value in self._items.items():
            if isinstance(value, tuple) and len(value) > MAX_RANGES:
                return f"{_show(name)} has {len(value)} ranges, more than {MAX_RANGES}"
            if isinstance(value, frozenset) and len(value) > MAX_SET_ITEMS:
                return f"{_show(name)} has {len(value)} set items, more than {MAX_SET_ITEMS}"
        return None

    def kind_problem(self) -> str | None:
        """What a task asks that an agent cannot give, or None: a known name of another
        kind than everywhere else (``ports:5``, ``cpus:[1-2]``: the agent reads cpus, mem
        and gpus as amounts and ports as ranges), or a fraction of a GPU (devices are
        handed out whole, as in Mesos). Custom names may be of any kind."""
        for (name, _), value in sorted(self._items.items()):
            want = KNOWN_RESOURCES.get(name)
            if want is not None and _kind(value) != want:
                example = "ports:[31000-31001]" if want == "ranges" else f"{name}:1"
                shape = "ranges" if want == "ranges" else "an amount"
                return (f"{name} must be {shape} (e.g. {example}), "
                        f"not {_format_value(value)[:100]}")
            if name == "gpus" and isinstance(value, int) and value % 1000:
                return f"gpus must be a whole number, not {_format_scalar(value)}"
        return None

    def kind_conflict(self, other: Resources) -> str | None:
        """A name ``other`` has in another kind than here (``foo:3`` against
        ``foo:[1-5]``), shown for a message, or None: resources of a name in two kinds
        cannot be held one within the other, so an agent's total and what its tasks
        hold must agree (whatever the role)."""
        mine = {name: _kind(value) for (name, _), value in self._items.items()}
        for (name, _), value in sorted(other._items.items()):
            kind = mine.get(name)
            if kind is not None and kind != _kind(value):
                return (f"{name} as {_KIND_WORDS[kind]} against "
                        f"{_format_value(value)[:100]}")
        return None

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


# --------------------------------------------------------------------- text from people


def format_scalar(amount: float) -> str:
    """An amount as resources print it: at most 3 decimals, never an exponent.

    For amounts that arrive as floats (the ``state`` JSON): ``f"{x:g}"`` would print
    252899 MB of disk as ``252899`` but 1234567 as ``1.23457e+06``.
    """
    if math.isnan(amount) or math.isinf(amount):
        return str(amount)
    milli = round(amount * 1000)
    return ("-" if milli < 0 else "") + _format_scalar(abs(milli))


def suggest_resource_name(name: str) -> str | None:
    """The known resource ``name`` is probably a typo of (``cpu`` -> ``cpus``), or None.

    Close means one edit (insert, delete, substitute or swap two neighbours) after
    lower-casing, or a common other spelling (``memory``). Known names get None.
    """
    if name in KNOWN_RESOURCES:
        return None
    lower = name.lower()
    if lower in _ALIASES:
        return _ALIASES[lower]
    for known in KNOWN_RESOURCES:
        if _one_edit_apart(lower, known):
            return known
    return None


def _one_edit_apart(a: str, b: str) -> bool:
    """Optimal-string-alignment distance of at most 1 (equal strings included)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (len(diff) == 2 and diff[1] == diff[0] + 1
                and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


@dataclass(frozen=True)
class UserResources:
    """Resources typed by a person, with what :meth:`Resources.parse` cannot keep.

    ``names`` holds every name written, also with a zero amount (``cpus:0`` means
    "no cpus", which the parsed collection cannot tell from "cpus not given");
    ``warnings`` are one line each, for the operator to read.
    """

    resources: Resources
    names: frozenset[str]
    warnings: tuple[str, ...]


def parse_user_resources(text: str, default_role: str = "*") -> UserResources:
    """Parse resources given on a command line: errors as :meth:`Resources.parse`.

    One rule everywhere people type resources: a name one edit away from a known one
    (``cpu:4``, ``mems:64``) or a known name of the wrong kind (``ports:4``) is taken
    as written, since custom resources are legal, but warned about; so is a non-zero
    amount that rounds to zero at 3 decimals.
    """
    items: dict[Key, Value] = {}
    names: set[str] = set()
    warnings: list[str] = []
    for name, role, value, token in _parse_entries(text, default_role):
        names.add(name)
        key = (name, role)
        items[key] = _add(items[key], value) if key in items else value
        suggestion = suggest_resource_name(name)
        if suggestion is not None:
            warnings.append(f"unknown resource {name!r} (in {token!r}): "
                            f"did you mean {suggestion!r}?")
        want = KNOWN_RESOURCES.get(name)
        if want is not None and _kind(value) != want:
            example = "ports:[31000-32000]" if want == "ranges" else f"{name}:4"
            warnings.append(f"resource {name!r} (in {token!r}) is a {_kind(value)}, but "
                            f"{name} is a {want} everywhere else (e.g. {example})")
        if isinstance(value, int) and value == 0:
            amount = token.partition(":")[2].strip()
            try:
                nonzero = float(amount) != 0
            except ValueError:
                nonzero = False
            if nonzero:
                warnings.append(f"{token!r} rounds to 0: amounts have at most 3 decimals")
    _check_totals(items)
    return UserResources(Resources(items), frozenset(names), tuple(warnings))
