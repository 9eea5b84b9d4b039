"""The one reader of the master's JSON policy files (credentials, ACLs, rate limits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mesos_zmq.errors import AuthError

#: a policy file of a large cluster is well under this
MAX_FILE = 16 * 1024 * 1024


def load_json(path: Path | str, what: str) -> Any:
    """The JSON in ``path``; AuthError naming ``what`` and the file if it cannot be had."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE + 1)
    except OSError as exc:
        raise AuthError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(raw) > MAX_FILE:
        raise AuthError(f"{what} {path} is larger than {MAX_FILE} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise AuthError(f"{what} {path} is not JSON: {exc}") from None
