"""The master's credentials file: which client key is which principal, of which kind.

The file is JSON, in the shape of Mesos's ``--credentials`` file, with a public key
where Mesos has a secret (the master never needs a client's secret)::

    {"credentials": [
        {"principal": "agent-1",  "kind": "agent",     "public_key": "<40 Z85 chars>"},
        {"principal": "analytics", "kind": "framework", "public_key": "keys/analytics.key"},
        {"principal": "alice",    "kind": "operator",  "public_key": "..."}
    ]}

``public_key`` is the key's Z85 text or the path of a ``.key`` file (relative paths are
taken from the credentials file's directory). Several keys may share a principal (a
framework's scheduler on two hosts); one key belongs to one principal only.

The kind limits what a connection may send at all: agent messages only from agents,
framework messages only from frameworks, operator requests only from operators (and a
framework's reads of its own sandboxes); finer rules are the ACLs' (issue 12, point 3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from mesos_zmq.auth.json_file import load_json
from mesos_zmq.auth.keys import check_key, load_public
from mesos_zmq.auth.principal import KINDS, Principal
from mesos_zmq.errors import AuthError

_PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class Credentials:
    """Client public key -> principal; read once at start (and on reload)."""

    def __init__(self, entries: Iterable[tuple[bytes, Principal]]) -> None:
        self._by_key: dict[bytes, Principal] = {}
        self._kinds: dict[str, str] = {}
        for key, principal in entries:
            if principal.kind not in KINDS:
                raise AuthError(f"principal {principal.name!r}: kind must be one of "
                                f"{', '.join(KINDS)}, not {principal.kind[:20]!r}")
            if not _PRINCIPAL.match(principal.name):
                raise AuthError(f"principal {principal.name[:130]!r}: use letters, digits "
                                "and . _ @ - (at most 128 characters)")
            known = self._by_key.get(key)
            if known is not None and known != principal:
                raise AuthError(f"one key is listed for both {known.name!r} and "
                                f"{principal.name!r}: a key proves one principal")
            kind = self._kinds.setdefault(principal.name, principal.kind)
            if kind != principal.kind:
                raise AuthError(f"principal {principal.name!r} is listed as both {kind} "
                                f"and {principal.kind}")
            self._by_key[key] = principal

    @classmethod
    def load(cls, path: Path | str) -> Credentials:
        path = Path(path)
        data = load_json(path, "credentials file")
        items = data.get("credentials") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise AuthError(f"credentials file {path}: expected "
                            '{"credentials": [{"principal": ..., "kind": ..., '
                            '"public_key": ...}, ...]}')
        entries = []
        for number, item in enumerate(items, 1):
            where = f"{path}, entry {number}"
            if not isinstance(item, dict) or set(item) != {"principal", "kind", "public_key"}:
                raise AuthError(f"{where}: give exactly principal, kind and public_key")
            name, kind, key = item.get("principal"), item.get("kind"), item.get("public_key")
            if not all(isinstance(v, str) for v in (name, kind, key)):
                raise AuthError(f"{where}: principal, kind and public_key are strings")
            assert isinstance(name, str) and isinstance(kind, str) and isinstance(key, str)
            if len(key) == 40 and not (path.parent / key).exists():
                public = check_key(key, f"{where} public_key")
            else:
                key_path = Path(key) if Path(key).is_absolute() else path.parent / key
                try:
                    public = load_public(key_path)
                except AuthError as exc:
                    raise AuthError(f"{where}: {exc}") from None
            entries.append((public, Principal(name, kind)))
        try:
            return cls(entries)
        except AuthError as exc:
            raise AuthError(f"credentials file {path}: {exc}") from None

    def by_key(self, public_key: bytes) -> Principal | None:
        """The principal a client key proves (Z85 text), or None for a stranger."""
        return self._by_key.get(public_key)

    def kind_of(self, name: str) -> str | None:
        return self._kinds.get(name)

    def __len__(self) -> int:
        return len(self._by_key)


def credentials_json(entries: Iterable[tuple[str, str, str]]) -> str:
    """The text of a credentials file for (principal, kind, public key or path)."""
    return json.dumps({"credentials": [
        {"principal": name, "kind": kind, "public_key": key} for name, kind, key in entries
    ]}, indent=2) + "\n"
