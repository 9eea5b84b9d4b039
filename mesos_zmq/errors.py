"""One root for every error the project raises on purpose.

Shells catch ``MesosZmqError`` at exactly one boundary (the server loop, the CLI) and
turn it into an error reply or a one-line message; anything else is a bug.
"""

from __future__ import annotations


class MesosZmqError(Exception):
    """Root of all deliberate errors; the message is meant for a human to act on."""


class ResourceError(MesosZmqError, ValueError):
    """An invalid resource string, or arithmetic that would go negative."""


class AttributeParseError(MesosZmqError, ValueError):
    """An invalid agent attribute string."""


class ProtocolError(MesosZmqError):
    """A frame that cannot be decoded or validated: the sender gets an error reply.

    ``code`` is a short stable token (``bad_version``, ``unknown_type``...) that clients
    and tests can match without parsing the message.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class LogError(MesosZmqError):
    """The replicated log could not be read or appended."""


class ConfigError(MesosZmqError):
    """Invalid flags or configuration."""


class AuthError(MesosZmqError):
    """A key, credential or ACL problem, or a peer that may not do what it asked."""
