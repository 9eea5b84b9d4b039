"""The master's ZAP handler: accept listed client keys, stamp messages with who sent them.

ZeroMQ asks a ZAP handler (RFC 27) on ``inproc://zeromq.zap.01`` of the socket's context
about each CURVE handshake. pyzmq's :class:`~zmq.auth.thread.ThreadAuthenticator` runs
the protocol in a thread of its own (so a burst of handshakes never waits for the
master's loop); this module supplies the decision and the ``User-Id``, which is
``KIND/NAME/KEY`` (the principal and the client's key), so :func:`principal_of` needs no
table to read it back and :meth:`ZapHandler.still_valid` can tell, message by message,
that a key removed from the credentials (and reloaded) lost its rights on connections
already open.
A key not in the credentials file is refused during the handshake: the stranger's
socket never delivers a message to the master.
"""

from __future__ import annotations

import structlog
import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from mesos_zmq.auth.credentials import Credentials
from mesos_zmq.auth.principal import Principal

log = structlog.get_logger()

#: the ZAP domain of mesos-zmq sockets (ZeroMQ sends it in each ZAP request)
DOMAIN = "mesos-zmq"


class _Provider:
    """ZAP's credentials callback: is this client key one of ours?"""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def callback(self, domain: str, key: bytes) -> bool:
        """``key`` arrives as Z85 text (pyzmq encodes it)."""
        if domain != DOMAIN or self.credentials.by_key(key) is None:
            log.warning("refused a client key", key=key.decode("ascii", "replace")[:8],
                        domain=domain[:40])
            return False
        return True


class _Authenticator(ThreadAuthenticator):
    provider: _Provider

    def curve_user_id(self, client_public_key: bytes) -> str:
        key = z85.encode(client_public_key).decode("ascii")
        principal = self.provider.credentials.by_key(key.encode())
        # Only called after the callback accepted the key; a reload in between that
        # dropped it yields a principal nobody's rules allow.
        if principal is None:
            return f"none/unknown/{key}"
        return f"{principal.kind}/{principal.name}/{key}"


class ZapHandler:
    """Runs for the lifetime of one context's server socket."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]],
                 credentials: Credentials) -> None:
        self._provider = _Provider(credentials)
        self._auth = _Authenticator(context)
        self._auth.provider = self._provider
        self._auth.start()
        self._auth.configure_curve_callback(domain=DOMAIN, credentials_provider=self._provider)

    def reload(self, credentials: Credentials) -> None:
        """Connections are judged by ``credentials`` from now on: new ones at their
        handshake, open ones message by message (:meth:`still_valid`)."""
        self._provider.credentials = credentials

    def still_valid(self, user_id: str) -> bool:
        """Whether the key behind ``user_id`` still proves its principal."""
        kind, _, rest = user_id.partition("/")
        name, _, key = rest.partition("/")
        principal = self._provider.credentials.by_key(key.encode())
        return principal is not None and (principal.kind, principal.name) == (kind, name)

    def stop(self) -> None:
        self._auth.stop()


def principal_of(user_id: str | None) -> Principal | None:
    """The principal stamped on a message by :class:`ZapHandler` (None without CURVE)."""
    if not user_id:
        return None
    kind, _, rest = user_id.partition("/")
    name = rest.partition("/")[0]  # names hold no '/'; the key after it may
    return Principal(name=name, kind=kind)
