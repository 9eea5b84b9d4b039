"""Reads answered by a forked child (issue 13): the parent goes on, the child answers
from the image it was forked with, and a child that fails or hangs costs its readers an
error, never the master."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Sequence

from mesos_zmq.master.forked_reads import MAX_QUEUED_READS, ForkedReads


def failed(read: str, why: str) -> tuple[bytes, bytes]:
    return read.encode(), f"error: {why}".encode()


def run(reads: ForkedReads[str], timeout: float = 10.0) -> list[tuple[bytes, bytes]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fd = reads.fileno()
        if fd is not None:
            select.select([fd], [], [], 0.05)
        frames = reads.collect(time.monotonic())
        if frames or reads.fileno() is None:
            return frames
    raise AssertionError("the child never finished")


def test_the_child_answers_from_the_image_it_was_forked_with() -> None:
    state = {"n": 1}

    def answer(batch: Sequence[str]) -> list[tuple[bytes, bytes]]:
        time.sleep(0.2)  # the parent changes its state meanwhile
        return [(r.encode(), f"{r}={state['n']}".encode()) for r in batch]

    reads: ForkedReads[str] = ForkedReads(answer, failed)
    assert reads.submit(["a", "b"]) == []
    reads.start(time.monotonic())
    assert reads.fileno() is not None and reads.busy
    state["n"] = 2  # after the fork: the child does not see it
    assert reads.submit(["c"]) == []  # waits for the next child
    reads.start(time.monotonic())  # one child at a time: nothing happens
    assert run(reads) == [(b"a", b"a=1"), (b"b", b"b=1")]
    reads.start(time.monotonic())
    assert run(reads) == [(b"c", b"c=2")]
    assert reads.forks == 2 and reads.failures == 0 and not reads.busy


def test_a_large_answer_comes_through_the_pipe_whole() -> None:
    big = os.urandom(9 * 1024 * 1024)

    def answer(batch: Sequence[str]) -> list[tuple[bytes, bytes]]:
        return [(b"p" * 5, big)]

    reads: ForkedReads[str] = ForkedReads(answer, failed)
    reads.submit(["x"])
    reads.start(time.monotonic())
    frames: list[tuple[bytes, bytes]] = []
    while not frames:
        frames = run(reads)
    assert frames == [(b"ppppp", big)]


def test_a_child_that_fails_or_hangs_costs_its_readers_an_error() -> None:
    def crash(batch: Sequence[str]) -> list[tuple[bytes, bytes]]:
        raise RuntimeError("bug")

    reads: ForkedReads[str] = ForkedReads(crash, failed)
    reads.submit(["a"])
    reads.start(time.monotonic())
    (frame,) = run(reads)
    assert frame[0] == b"a" and b"reader process failed" in frame[1]
    assert reads.failures == 1

    def hang(batch: Sequence[str]) -> list[tuple[bytes, bytes]]:
        time.sleep(60)
        return []

    slow: ForkedReads[str] = ForkedReads(hang, failed, timeout=0.3)
    slow.submit(["b"])
    slow.start(time.monotonic())
    (frame,) = run(slow)
    assert frame[0] == b"b" and b"took over" in frame[1]
    assert slow.fileno() is None and slow.failures == 1


def test_a_flood_of_reads_is_refused_beyond_the_queue() -> None:
    reads: ForkedReads[str] = ForkedReads(lambda batch: [], failed)
    refused = reads.submit([str(i) for i in range(MAX_QUEUED_READS + 3)])
    assert len(refused) == 3 and b"too many reads" in refused[0][1]
    reads.close()
    assert not reads.busy


def test_the_child_holds_nothing_of_the_parent_open_but_its_pipe() -> None:
    """A master restarted while a child still works must find its port and its log's
    lock free: the child closes every descriptor it inherited."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    fd = listener.fileno()

    def answer(batch: Sequence[str]) -> list[tuple[bytes, bytes]]:
        try:
            os.fstat(fd)
        except OSError:
            return [(b"p", b"closed")]
        return [(b"p", b"open")]

    try:
        reads: ForkedReads[str] = ForkedReads(answer, failed)
        reads.submit(["x"])
        reads.start(time.monotonic())
        assert run(reads) == [(b"p", b"closed")]
        os.fstat(fd)  # the parent's stays open
    finally:
        listener.close()
