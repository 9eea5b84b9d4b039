"""A client believes only epochs a master can have (issue 12: one heartbeat with epoch
2**63 made an agent ignore its real master until restarted)."""

from __future__ import annotations

import time

import zmq

from mesos_zmq.protocol import Heartbeat, encode
from mesos_zmq.transport import MAX_EPOCH, ClientSocket


def test_an_impossible_epoch_is_ignored_and_the_real_master_still_heard() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    client = ClientSocket(context, f"tcp://127.0.0.1:{port}")
    try:
        client.send(b"hello")
        assert router.poll(5000)
        peer, _ = router.recv_multipart()
        for epoch in (2**63, MAX_EPOCH + 1, 3, 3):
            router.send_multipart([peer, encode(Heartbeat(), "", epoch)])
        heard = []
        deadline = time.monotonic() + 5
        while len(heard) < 2 and time.monotonic() < deadline:
            client.poll(100)
            heard += [e.epoch for e in client.receive_all()]
        assert heard == [3, 3] and client.max_epoch == 3
        assert client.ignored_stale == 2
    finally:
        client.close()
        router.close(linger=0)
        context.term()
