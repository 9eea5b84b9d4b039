"""Agent attributes, Mesos-style: ``rack:r1;zone:a;level:3;ports:[1-2];zones:{a,b}``.

Attributes describe a machine for placement decisions (they are not consumed like
resources). Values are text, scalar, ranges or set, told apart by their form.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from mesos_zmq.errors import AttributeParseError

AttributeValue = str | float | list[tuple[int, int]] | frozenset[str]

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_TEXT_RE = re.compile(r"^[A-Za-z0-9_./-]+$")


def parse_attributes(text: str) -> dict[str, AttributeValue]:
    """Parse attribute text; raises AttributeParseError naming the bad token."""
    attrs: dict[str, AttributeValue] = {}
    for raw in text.split(";"):
        token = raw.strip()
        if not token:
            continue
        name, sep, value = (p.strip() for p in token.partition(":"))
        if not sep:
            raise AttributeParseError(f"invalid attribute {token!r}: expected NAME:VALUE")
        if not name or not _NAME_RE.match(name):
            raise AttributeParseError(f"invalid attribute {token!r}: bad name {name!r}")
        if name in attrs:
            raise AttributeParseError(f"invalid attribute {token!r}: {name!r} given twice")
        if not value:
            raise AttributeParseError(f"invalid attribute {token!r}: missing value")
        attrs[name] = _value(value, token)
    return attrs


def _value(value: str, token: str) -> AttributeValue:
    if value.startswith("[") and value.endswith("]"):
        ranges: list[tuple[int, int]] = []
        for part in filter(None, (p.strip() for p in value[1:-1].split(","))):
            lo_text, dash, hi_text = part.partition("-")
            try:
                lo, hi = int(lo_text), int(hi_text)
            except ValueError:
                raise AttributeParseError(
                    f"invalid attribute {token!r}: range {part!r} is not LOW-HIGH"
                ) from None
            if not dash or lo > hi or lo < 0:
                raise AttributeParseError(f"invalid attribute {token!r}: bad range {part!r}")
            ranges.append((lo, hi))
        return sorted(ranges)
    if value.startswith("{") and value.endswith("}"):
        items = [i.strip() for i in value[1:-1].split(",") if i.strip()]
        if not items or any(not _TEXT_RE.match(i) for i in items):
            raise AttributeParseError(f"invalid attribute {token!r}: bad set {value!r}")
        return frozenset(items)
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if math.isnan(number) or math.isinf(number):
            raise AttributeParseError(f"invalid attribute {token!r}: value is not finite")
        return number
    if not _TEXT_RE.match(value):
        raise AttributeParseError(
            f"invalid attribute {token!r}: text value {value!r} may only use "
            "letters, digits, '_', '.', '/', '-'"
        )
    return value


def format_attributes(attrs: Mapping[str, AttributeValue]) -> str:
    """Canonical text (sorted by name) that parses back to the same attributes."""
    parts = []
    for name in sorted(attrs):
        value = attrs[name]
        if isinstance(value, float):
            text = f"{value:g}" if value != int(value) else str(int(value))
        elif isinstance(value, frozenset):
            text = "{" + ",".join(sorted(value)) + "}"
        elif isinstance(value, list):
            text = "[" + ",".join(f"{lo}-{hi}" for lo, hi in value) + "]"
        else:
            text = value
        parts.append(f"{name}:{text}")
    return ";".join(parts)
