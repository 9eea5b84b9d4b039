"""Fixtures shared by the unit tests of one area and another."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two ends of the launcher's socket to its agent (one request or reply a packet)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield ours, theirs
    ours.close()
    theirs.close()


@pytest.fixture(autouse=True)
def _reads_unpaced(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """State reads are paced by the loop's real time spent on them
    (mesos_zmq.master.loop_reads, PACE_FROM), while most read tests drive the loop with
    a clock that stands still: one slow read on a busy machine (a GC pause) would make
    the next wait for a moment that never comes. Only test_reads_pace tests pacing."""
    if request.module.__name__.rpartition(".")[2] != "test_reads_pace":
        monkeypatch.setattr("mesos_zmq.master.loop_reads.PACE_FROM", float("inf"))
