"""A forked child's answer comes back whole in one turn of the loop (issue 13): it is
written to a file in memory, and the pipe only says when the child is done. Through a
pipe of 1 MiB, a busy loop took one pipeful per turn: a whole state of 20 MB waited 20
turns (1.4-3.8 s for the first, cold, read at 10,000 agents)."""

from __future__ import annotations

import os
import select
import time

from mesos_zmq.master.forked import ForkedJob, Outcome


def outcome_of(job: ForkedJob) -> Outcome:
    """Wait on the job's pipe, as the loop's poller does, until it has an outcome."""
    while True:
        fd = job.fileno()
        if fd is not None:
            select.select([fd], [], [], 1.0)
        outcome = job.collect(time.monotonic())
        if outcome is not None:
            return outcome


def test_a_large_answer_is_taken_whole_in_one_collect() -> None:
    job = ForkedJob(10.0)
    answer = os.urandom(24 * 1024 * 1024)
    job.start(lambda: answer, time.monotonic())
    fd = job.fileno()
    assert fd is not None
    polled = 0
    outcome = None
    while outcome is None:
        select.select([fd], [], [], 1.0)
        outcome = job.collect(time.monotonic())
        polled += 1
    # the pipe woke the loop for the child's word and its end: its answer is all there
    assert polled <= 2
    assert outcome.data == answer and outcome.error == ""
    assert job.fileno() is None and job.failures == 0


def test_an_answer_cut_short_or_a_child_killed_is_a_failure() -> None:
    job = ForkedJob(10.0)
    job.start(lambda: os._exit(0), time.monotonic())  # gone before its word
    outcome = outcome_of(job)
    assert outcome.data is None and "failed" in outcome.error and job.failures == 1


def test_the_answers_file_is_closed_with_the_child() -> None:
    before = set(os.listdir("/proc/self/fd"))
    job = ForkedJob(10.0)
    for _ in range(3):
        job.start(lambda: b"x" * 100_000, time.monotonic())
        assert outcome_of(job).data == b"x" * 100_000
    job.start(lambda: time.sleep(30) or b"", time.monotonic())
    job.close()
    assert set(os.listdir("/proc/self/fd")) == before
