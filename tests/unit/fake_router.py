"""A stand-in for the master's ROUTER socket, for tests that drive one turn of
``MasterServer`` (``_drain`` then ``_flush``) without a socket."""

from __future__ import annotations

from collections import deque

import zmq

from mesos_zmq.master.core import Ready
from mesos_zmq.master.server import MasterServer
from mesos_zmq.protocol import Envelope, Message, decode_frame


class FakeRouter:
    """Frames to hand out, one per receive; frames sent, as sent (batches unopened)."""

    def __init__(self, frames: list[tuple[bytes, bytes]]) -> None:
        self.inbox = deque(frames)
        self.sent: list[tuple[bytes, bytes]] = []

    def recv_nowait(self) -> tuple[bytes, list[bytes], str | None]:
        if not self.inbox:
            raise zmq.Again()
        peer, frame = self.inbox.popleft()
        return peer, [frame], None

    def send(self, identity: bytes, frame: bytes, track: bool = False) -> None:
        self.sent.append((identity, frame))

    def sent_messages(self) -> list[tuple[bytes, Message]]:
        """Every message sent, a batch's in order; a frame that is not one is a bug."""
        out: list[tuple[bytes, Message]] = []
        for identity, frame in self.sent:
            for item in decode_frame(frame):
                assert isinstance(item, Envelope), item
                out.append((identity, item.message))
        return out

    def unsent_bytes(self, identity: bytes) -> int:
        return 0

    def sweep(self) -> None:
        pass

    def close(self) -> None:
        pass


def turn(server: MasterServer, frames: list[tuple[bytes, bytes]], now: float,
         ready: Ready | None = None) -> FakeRouter:
    """One turn of ``server`` reading ``frames`` (then flushing ``ready``, if given,
    with what they produced) through a FakeRouter, which is returned."""
    real = server.server
    fake = FakeRouter(frames)
    server.server = fake  # type: ignore[assignment]
    try:
        ready = ready if ready is not None else Ready()
        server._drain(ready, now)
        server._flush(ready)
    finally:
        server.server = real
    return fake
