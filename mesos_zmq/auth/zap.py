"""The master's ZAP handler: accept listed client keys, stamp messages with who sent them.

ZeroMQ asks a ZAP handler (RFC 27) on ``inproc://zeromq.zap.01`` of the socket's context
about each CURVE handshake. pyzmq's :class:`~zmq.auth.thread.ThreadAuthenticator` runs
the protocol in a thread of its own (so a burst of handshakes never waits for the
master's loop); this module supplies the decision and the ``User-Id``, which is
``KIND/NAME`` of the principal, so :func:`principal_of` needs no table to read it back.
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
        principal = self.provider.credentials.by_key(z85.encode(client_public_key))
        # Only called after the callback accepted the key; a reload in between that
        # dropped it yields a principal nobody's rules allow.
        return f"{principal.kind}/{principal.name}" if principal else "none/unknown"


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
        """New connections are judged by ``credentials`` (open ones keep their principal)."""
        self._provider.credentials = credentials

    def stop(self) -> None:
        self._auth.stop()


def principal_of(user_id: str | None) -> Principal | None:
    """The principal stamped on a message by :class:`ZapHandler` (None without CURVE)."""
    if not user_id:
        return None
    kind, _, name = user_id.partition("/")
    return Principal(name=name, kind=kind)
