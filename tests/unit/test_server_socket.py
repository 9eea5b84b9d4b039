"""The master's ROUTER reads a message part by part: every part of a multi-part message
is taken (else the next one would be read as a sender's identity), and an empty message
is one empty part."""

from __future__ import annotations

import time

import zmq

from mesos_zmq.transport import ServerSocket


def test_every_part_is_read_and_the_next_message_starts_clean() -> None:
    context = zmq.Context()
    server = ServerSocket(context, "tcp://127.0.0.1:0", 1 << 20)
    client = context.socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    client.setsockopt(zmq.ROUTING_ID, b"client-1")
    try:
        client.connect(server.address)
        client.send(b"one")
        client.send_multipart([b"a", b"b", b"c"])
        client.send(b"")
        client.send(b"last")
        received: list[tuple[bytes, list[bytes], str | None]] = []
        deadline = time.monotonic() + 10
        while len(received) < 4 and time.monotonic() < deadline:
            try:
                received.append(server.recv_nowait())
            except zmq.Again:
                time.sleep(0.01)
        assert received == [(b"client-1", [b"one"], None),
                            (b"client-1", [b"a", b"b", b"c"], None),
                            (b"client-1", [b""], None),
                            (b"client-1", [b"last"], None)]
    finally:
        client.close(linger=0)
        server.close()
        context.term()
