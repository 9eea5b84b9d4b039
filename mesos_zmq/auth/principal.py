"""Who is on the other end of a connection (pure: the master core imports it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: the kinds of principal a credentials file may name
KINDS: Final = ("agent", "framework", "operator")


@dataclass(frozen=True, slots=True)
class Principal:
    """A name and a kind, as the handshake proved them (never read from a payload)."""

    name: str
    kind: str
