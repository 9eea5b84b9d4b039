"""A forked child's answer comes back through a pipe of 1 MiB where Linux allows it
(issue 13): at the default 64 KiB the loop took one pipeful per turn, and a 1.6 MB
summary waited 0.4-0.8 s in the pipe of a busy master."""

from __future__ import annotations

import fcntl
import select
import time
from pathlib import Path

import pytest

from mesos_zmq.master.forked import PIPE_SIZE, ForkedJob


def test_the_childs_pipe_holds_a_mebibyte() -> None:
    if not hasattr(fcntl, "F_GETPIPE_SZ"):
        pytest.skip("pipe sizes are Linux's")
    allowed = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    job = ForkedJob(10.0)
    answer = bytes(range(256)) * (3 * PIPE_SIZE // 256)
    job.start(lambda: answer, time.monotonic())
    fd = job.fileno()
    assert fd is not None
    assert fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) >= min(PIPE_SIZE, allowed)
    outcome = None
    while outcome is None:  # a busy loop takes at most a pipeful a turn
        select.select([fd], [], [], 1.0)
        outcome = job.collect(time.monotonic())
    assert outcome.data == answer and outcome.error == ""
