"""Bounded memories: tables that keep the newest entries and forget the oldest.

Every table a peer can grow (request ids, refused launches, failed-over connections,
kills of staging tasks...) is bounded, so that no peer can grow a process without end;
this is the one way of adding to such a table."""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(table: OrderedDict[K, V], key: K, value: V, limit: int) -> None:
    """Put ``key`` in ``table`` as its newest entry, forgetting the oldest past
    ``limit``."""
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)
