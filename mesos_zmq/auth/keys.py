"""CurveZMQ key files: ``mesos-zmq keygen NAME`` and how the daemons read them.

The files use ZeroMQ's certificate layout (``zmq.auth.load_certificate`` reads them):
``NAME.key`` holds the public key and may be shared; ``NAME.key_secret`` holds both keys
and is created with mode 0600 (never wider, not even for an instant). A secret file that
group or others can read is refused: a key others could copy is no proof of anything.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from mesos_zmq.errors import AuthError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_LINE = re.compile(r'^\s*(public-key|secret-key)\s*=\s*"([^"]*)"\s*$')
#: a key file is a few hundred bytes; anything much larger is not one
_MAX_FILE = 64 * 1024


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A Curve25519 key pair, both halves as 40-character Z85 text (bytes)."""

    public: bytes
    secret: bytes


def check_key(text: bytes | str, what: str) -> bytes:
    """Z85 text of a 32-byte Curve25519 key, or AuthError saying what is wrong."""
    raw = text.encode() if isinstance(text, str) else text
    raw = raw.strip()
    if len(raw) != 40:
        raise AuthError(f"{what}: a Curve key is 40 Z85 characters, got {len(raw)}")
    try:
        z85.decode(raw)
    except (ValueError, KeyError, TypeError, struct.error):  # struct: a group overflows
        raise AuthError(f"{what}: not Z85 text") from None
    return raw


def generate(name: str, directory: Path) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` in ``directory``; refuse to overwrite.

    An existing pair is never replaced: the public half may already be pinned or listed
    in a credentials file, and replacing the secret would lock that process out.
    """
    if not _NAME.match(name):
        raise AuthError(f"key name {name[:70]!r}: use letters, digits, '.', '_' or '-' "
                        "(at most 64 characters)")
    public, secret = zmq.curve_keypair()
    directory.mkdir(parents=True, exist_ok=True)
    public_path = directory / f"{name}.key"
    secret_path = directory / f"{name}.key_secret"
    for path in (public_path, secret_path):
        if path.exists():
            raise AuthError(f"{path} exists: remove it first to make a new key pair")
    header = f"#   mesos-zmq CurveZMQ key pair {name!r}\n"
    _write(secret_path, header + "metadata\ncurve\n"
           f'    public-key = "{public.decode()}"\n    secret-key = "{secret.decode()}"\n', 0o600)
    _write(public_path, header + "metadata\ncurve\n"
           f'    public-key = "{public.decode()}"\n', 0o644)
    return public_path, secret_path


def _write(path: Path, text: str, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise AuthError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fields(path: Path) -> dict[str, bytes]:
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            data = handle.read(_MAX_FILE + 1)
    except OSError as exc:
        raise AuthError(f"cannot read key file {path}: {exc.strerror}") from None
    if len(data) > _MAX_FILE:
        raise AuthError(f"{path} is not a key file (larger than {_MAX_FILE} bytes)")
    fields: dict[str, bytes] = {"_mode": str(info.st_mode).encode()}
    for line in data.decode("utf-8", "replace").splitlines():
        match = _LINE.match(line)
        if match:
            fields[match.group(1)] = check_key(match.group(2), f"{path} {match.group(1)}")
    return fields


def load_secret(path: Path | str) -> KeyPair:
    """Read a ``.key_secret`` file (refused if group or others may read it)."""
    path = Path(path)
    fields = _fields(path)
    if "secret-key" not in fields or "public-key" not in fields:
        raise AuthError(f"{path} holds no secret key: give the .key_secret file "
                        "written by 'mesos-zmq keygen'")
    mode = int(fields["_mode"])
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): "
                        f"run chmod 600 {path}")
    return KeyPair(public=fields["public-key"], secret=fields["secret-key"])


def load_public(value: Path | str) -> bytes:
    """A public key given as its 40-character Z85 text or as a key file's path."""
    text = str(value).strip()
    if len(text) == 40 and not os.path.exists(text):
        return check_key(text, "public key")
    if not os.path.exists(text):
        raise AuthError(f"public key {text[:60]!r}: neither a key file nor a key's "
                        "40-character Z85 text")
    fields = _fields(Path(text))
    if "public-key" not in fields:
        raise AuthError(f"{text} holds no public key")
    return fields["public-key"]


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """What a client needs for CurveZMQ: its own pair and the masters' pinned public key."""

    own: KeyPair
    master_public: bytes


#: environment variables a client reads when it is given no key options
KEY_ENV = "MESOS_ZMQ_KEY"
MASTER_KEY_ENV = "MESOS_ZMQ_MASTER_KEY"


def client_keys(key: str | None = None, master_key: str | None = None) -> ClientKeys | None:
    """A client's keys from its options, else from MESOS_ZMQ_KEY / MESOS_ZMQ_MASTER_KEY.

    None when neither is set (a master without keys). One without the other is an
    error: a key pinned to no master, or a master pinned with no key to show it.
    """
    key = key or os.environ.get(KEY_ENV) or None
    master_key = master_key or os.environ.get(MASTER_KEY_ENV) or None
    if key is None and master_key is None:
        return None
    if key is None or master_key is None:
        missing = "--key (MESOS_ZMQ_KEY)" if key is None else "--master-key (MESOS_ZMQ_MASTER_KEY)"
        raise AuthError(f"give {missing} too: a client needs its own key pair and the "
                        "masters' public key")
    return ClientKeys(own=load_secret(key), master_public=load_public(master_key))
