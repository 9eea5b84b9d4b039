"""Reading a task's files: only regular files inside its sandbox, never blocking."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from mesos_zmq.agent import files
from mesos_zmq.agent.files import MAX_READ, SandboxPathError, read_chunk


@pytest.fixture(autouse=True, params=["openat2", "walk"])
def open_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs through openat2 (where the kernel has it) and through the walk
    one component at a time that replaces it elsewhere (test_sandbox_escape.py)."""
    if request.param == "walk":
        monkeypatch.setattr(files, "_openat2", lambda dirfd, path: None)
    return str(request.param)


def test_a_fifo_is_refused_at_once_instead_of_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    result: list[BaseException | tuple[bytes, int]] = []

    def read() -> None:
        try:
            result.append(read_chunk(tmp_path, "pipe", 0, 100))
        except BaseException as exc:
            result.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # unblock the reader so the test run can end, then fail
        with open(tmp_path / "pipe", "wb"):
            pass
        pytest.fail("reading a FIFO blocked (a task could stop its agent this way)")
    (outcome,) = result
    assert isinstance(outcome, SandboxPathError) and "FIFO" in str(outcome)


def test_sockets_and_links_out_of_the_sandbox_are_not_read(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        with pytest.raises(SandboxPathError, match="sock"):  # ENXIO from open()
            read_chunk(tmp_path, "sock", 0, 100)
    os.symlink("/dev/zero", tmp_path / "zero")
    with pytest.raises(SandboxPathError, match="outside the sandbox"):
        read_chunk(tmp_path, "zero", 0, 100)


def test_reads_are_bounded_and_past_the_end_is_empty(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * (MAX_READ + 10))
    data, size = read_chunk(tmp_path, "big", 0, 10 * MAX_READ)
    assert len(data) == MAX_READ and size == MAX_READ + 10
    assert read_chunk(tmp_path, "big", MAX_READ, 100) == (b"x" * 10, MAX_READ + 10)
    assert read_chunk(tmp_path, "big", 2 * MAX_READ, 100) == (b"", MAX_READ + 10)
    (tmp_path / "sub").mkdir()
    with pytest.raises(SandboxPathError, match="directory"):
        read_chunk(tmp_path, "sub", 0, 1)


def test_a_symlink_loop_is_refused_not_raised(tmp_path: Path) -> None:
    os.symlink("loop", tmp_path / "loop")
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    for name in ("loop", "a"):
        with pytest.raises(SandboxPathError, match="cannot resolve"):
            read_chunk(tmp_path, name, 0, 10)


def test_a_device_is_not_read(tmp_path: Path) -> None:
    import stat

    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs CAP_MKNOD")
    with pytest.raises(SandboxPathError, match="character device"):
        read_chunk(tmp_path, "null", 0, 10)
