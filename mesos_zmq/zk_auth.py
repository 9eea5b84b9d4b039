"""ZooKeeper credentials of the masters, and the ACLs their znodes get.

Masters authenticate to ZooKeeper with a digest user and password read from a file
(``--zk-credentials``: one ``user:password`` line, mode 0600), not from the ``zk://``
URL, which ``ps`` shows to every user of the host. With credentials, every znode the
masters create is theirs alone (the log and snapshots hold task environments, and the
epoch and election decide who leads), except the leader record, which agents,
frameworks and the CLI must read to find the leader: it is readable by anyone and
writable by the masters only. So nobody without the password can publish a fake
leader, bump the epoch or read a task's secrets.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kazoo.security import make_acl, make_digest_acl

from mesos_zmq.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ZkCredentials:
    user: str
    password: str

    def auth_data(self) -> list[tuple[str, str]]:
        return [("digest", f"{self.user}:{self.password}")]

    def masters_acl(self) -> list[Any]:
        """Everything, for the masters only (the default of every znode they create)."""
        return [make_digest_acl(self.user, self.password, all=True)]

    def public_acl(self) -> list[Any]:
        """The leader record: the masters write it, anyone reads it."""
        return [*self.masters_acl(), make_acl("world", "anyone", read=True)]

    @classmethod
    def parse(cls, text: str, where: str) -> ZkCredentials:
        user, colon, password = text.strip().partition(":")
        if not colon or not user or not password or "\n" in password:
            raise ConfigError(f"{where}: expected one line 'user:password'")
        return cls(user, password)


def load_zk_credentials(path: Path | str) -> ZkCredentials:
    """Read ``user:password`` from ``path`` (refused if group or others can read it)."""
    path = Path(path)
    try:
        with path.open() as handle:
            mode = os.fstat(handle.fileno()).st_mode
            text = handle.read(4096)
    except OSError as exc:
        raise ConfigError(f"cannot read --zk-credentials {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): "
                          f"run chmod 600 {path}")
    return ZkCredentials.parse(text, str(path))
