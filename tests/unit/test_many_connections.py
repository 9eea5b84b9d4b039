"""What lets thousands of agents connect at once (issue 13): the master takes the hard
limit on open files, and its socket asks the kernel for a long listen queue."""

from __future__ import annotations

import resource

import zmq

from mesos_zmq.master.server import raise_descriptor_limit
from mesos_zmq.transport import LISTEN_BACKLOG, ServerSocket


def test_the_master_takes_the_hard_limit_on_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        limit = raise_descriptor_limit()
        # an unlimited hard limit is left alone (the kernel's nr_open caps it anyway)
        expected = 1024 if hard == resource.RLIM_INFINITY else hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == expected == limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_listen_queue_holds_a_connection_storm() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    server = ServerSocket(context, "tcp://127.0.0.1:0")
    try:
        assert server.socket.getsockopt(zmq.BACKLOG) == LISTEN_BACKLOG > 100
    finally:
        server.close()
        context.term()
