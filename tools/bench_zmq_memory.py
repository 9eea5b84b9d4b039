"""What one connected peer costs the master in ZeroMQ's memory, and how that grows.

A ROUTER socket (as the master's) takes ``--peers`` DEALER connections from another
process; each peer then exchanges small messages with it (a heartbeat out, one back),
``--rounds`` times. The ROUTER process's RSS per connection is printed after each of
the ``--checkpoints`` rounds: libzmq keeps each connection's two pipes in chunks of
256 messages and holds a spare chunk per pipe, so a connection's memory climbs as its
first few hundred messages pass, then stays. The cluster bench measures the master
shortly after registration (a few messages per agent), before that climb. Nothing here
asserts: figures for humans (issue 13's memory target).

    python tools/bench_zmq_memory.py [--peers 2000] [--rounds 1000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from typing import Any

import psutil
import zmq

MESSAGE = b"h" * 60  # about a heartbeat frame


def peers(port: int, count: int, rounds: int, done: Any) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    context.set(zmq.MAX_SOCKETS, count + 100)
    sockets = []
    for _ in range(count):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{port}")
        sockets.append(sock)
    for _ in range(rounds):
        for sock in sockets:
            sock.send(MESSAGE)
        for sock in sockets:
            sock.recv()
    done.wait()
    for sock in sockets:
        sock.close()
    context.term()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--checkpoints", default="1,100,300,600,1000")
    args = parser.parse_args()
    checkpoints = sorted(int(c) for c in args.checkpoints.split(",") if int(c) <= args.rounds)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.SNDHWM, 200_000)  # as the master's (mesos_zmq.transport)
    router.setsockopt(zmq.RCVHWM, 200_000)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    me = psutil.Process()
    base = me.memory_info().rss
    done = multiprocessing.Event()
    child = multiprocessing.Process(target=peers, args=(port, args.peers, args.rounds, done))
    child.start()
    figures: dict[str, Any] = {"peers": args.peers}
    answered = 0
    for checkpoint in checkpoints:
        while answered < args.peers * checkpoint:
            identity, _ = router.recv_multipart()
            router.send_multipart([identity, MESSAGE])
            answered += 1
        time.sleep(0.2)
        per_peer = (me.memory_info().rss - base) / args.peers / 1024
        figures[f"kb_per_peer_after_{checkpoint}"] = round(per_peer, 1)
        print(f"after {checkpoint} messages each way: {per_peer:.1f} KB of RSS a "
              f"connection", flush=True)
    done.set()
    child.join()
    router.close()
    context.term()
    print(f"reproduce: python tools/bench_zmq_memory.py --peers {args.peers} "
          f"--rounds {args.rounds} --checkpoints {args.checkpoints}")
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
