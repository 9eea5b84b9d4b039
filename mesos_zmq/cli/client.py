"""A one-shot request/reply client for operator commands (state, kill, files).

Answers are read with a larger limit than peers' frames (:data:`MAX_REPLY_BYTES`): a
command reads one answer and exits, so a large ``state`` costs it memory for a moment
and nothing more. An answer larger still is an error that says so
(:class:`ReplyTooLarge`), never a wait for an answer that was dropped.
"""

from __future__ import annotations

import time
import uuid

import click
import zmq

from mesos_zmq.auth.keys import ClientKeys, client_keys
from mesos_zmq.detector import LeaderDetector, NoLeader
from mesos_zmq.errors import AuthError, MesosZmqError, ProtocolError
from mesos_zmq.protocol import Error, Message, Refused, decode_frame, encode
from mesos_zmq.transport import ClientSocket

#: the largest answer a command reads (a whole state of about 250,000 short
#: tasks); the master's own limit on what it reads stays DEFAULT_MAX_FRAME_BYTES
MAX_REPLY_BYTES = 64 * 1024 * 1024


class MasterUnreachable(MesosZmqError):
    """No answer from the master in time."""


class ReplyTooLarge(MesosZmqError):
    """The master answered with more than the client reads in one frame."""


class RequestRefused(MesosZmqError):
    """The master answered with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def cli_keys() -> ClientKeys | None:
    """The keys of the running CLI command (--key, --master-key), else from
    MESOS_ZMQ_KEY / MESOS_ZMQ_MASTER_KEY (None: no keys)."""
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    return client_keys(meta.get("mesos_zmq.key"), meta.get("mesos_zmq.master_key"))


def request(master: str, msg: Message, timeout: float = 5.0,
            keys: ClientKeys | None = None, max_bytes: int | None = None) -> Message:
    """Send one request and wait for the reply that carries its request id.

    ``keys`` default to the CLI command's (see :func:`cli_keys`). A master that refuses
    the key is an AuthError as soon as its handshake says so, not a time-out. An answer
    larger than ``max_bytes`` (default :data:`MAX_REPLY_BYTES`) is a
    :class:`ReplyTooLarge` (the socket carries only this request's answers).
    """
    if max_bytes is None:
        max_bytes = MAX_REPLY_BYTES
    if keys is None:
        keys = cli_keys()
    if master.startswith("zk://"):
        detector = LeaderDetector(master)
        try:
            master = detector.wait(timeout)
        except NoLeader as exc:
            raise MasterUnreachable(str(exc)) from None
        finally:
            detector.close()
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    client = ClientSocket(context, master, keys)
    rid = uuid.uuid4().hex
    try:
        client.send(encode(msg, rid))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left > 0 and not client.poll(int(min(left, 0.05) * 1000)):
                problem = client.auth_problem()
                if problem:
                    raise AuthError(f"{problem} ({client.address})")
                continue
            if left <= 0:
                raise MasterUnreachable(
                    f"no answer from the master at {client.address} within {timeout:g}s "
                    "(is it running? check --master)"
                )
            for frame in client.recv():
                try:
                    items = decode_frame(frame, max_bytes)
                except ProtocolError as exc:
                    if exc.code == "oversized":
                        raise ReplyTooLarge(
                            f"the master's answer is larger than {max_bytes} bytes "
                            f"({len(frame)}): use --limit/--offset (mesos-zmq tasks), or "
                            "leave the tasks out of mesos-zmq state") from None
                    continue
                for envelope in items:
                    if isinstance(envelope, Refused):
                        continue
                    reply = envelope.message
                    if isinstance(reply, Error) and reply.in_reply_to == rid:
                        raise RequestRefused(reply.code, reply.message)
                    if envelope.request_id == rid:
                        return reply
    finally:
        client.close()
        context.term()
