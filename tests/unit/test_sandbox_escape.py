"""A task cannot make the agent read outside its sandbox: not by a symlink at any
component of the path, not by a hard link, not by swapping a link in mid-read.

Every test runs twice: through openat2(2), and through the component-by-component
walk used where the kernel has no openat2 (forced by making ``_openat2`` give up).
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mesos_zmq.agent import files
from mesos_zmq.agent.files import SandboxPathError, read_chunk

SECRET = b"outside the sandbox: never to be read\n"
INSIDE = b"inside\n"


@pytest.fixture(params=["openat2", "walk"])
def open_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Which way files are opened; openat2 is skipped where the kernel lacks it."""
    if request.param == "walk":
        monkeypatch.setattr(files, "_openat2", lambda dirfd, path: None)
        yield "walk"
        return
    probe = tmp_path_factory.mktemp("probe")
    (probe / "f").write_bytes(b"x")
    dirfd = os.open(probe, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = files._openat2(dirfd, b"f")
    finally:
        os.close(dirfd)
    if fd is None:
        pytest.skip("this kernel has no openat2 (or a filter forbids it)")
    os.close(fd)
    used: list[bytes] = []
    real = files._openat2

    def counting(dirfd: int, path: bytes) -> int | None:
        used.append(path)
        return real(dirfd, path)

    monkeypatch.setattr(files, "_openat2", counting)
    yield "openat2"
    assert used, "the test never reached openat2"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the sandbox, with a secret file in it."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret").write_bytes(SECRET)
    return path


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    path = tmp_path / "sandbox"
    (path / "d").mkdir(parents=True)
    (path / "d" / "f").write_bytes(INSIDE)
    (path / "f").write_bytes(INSIDE)
    return path


def test_plain_files_in_subdirectories_are_read(open_mode: str, sandbox: Path) -> None:
    for name in ("f", "d/f", "./d//f", "d/./f", "d/f/"):
        assert read_chunk(sandbox, name, 0, 100) == (INSIDE, len(INSIDE)), name


def test_a_symlink_at_any_component_is_refused(open_mode: str, sandbox: Path,
                                               outside: Path) -> None:
    os.symlink(outside, sandbox / "out")  # a directory out
    os.symlink(outside / "secret", sandbox / "d" / "secret")  # a file out, one level down
    os.symlink("d", sandbox / "in")  # links inside are refused too: no following at all
    os.symlink("d/f", sandbox / "in-file")
    os.symlink("/proc/self/root", sandbox / "root")  # to a magic link
    for name in ("out/secret", "d/secret", "in/f", "in-file", "root/etc/passwd"):
        with pytest.raises(SandboxPathError, match="sandbox") as caught:
            read_chunk(sandbox, name, 0, 100)
        assert "symlink" in str(caught.value), (name, caught.value)


def test_absolute_and_climbing_paths_are_refused_before_any_open(tmp_path: Path) -> None:
    nowhere = tmp_path / "no-sandbox"  # an open would fail "cannot open the sandbox"
    for name, why in (("/etc/passwd", "relative"), ("..", "'..'"), ("d/../../x", "'..'"),
                      ("", "relative"), ("a\x00b", "relative"), ("\ud800", "valid")):
        with pytest.raises(SandboxPathError, match=why):
            read_chunk(nowhere, name, 0, 100)


def test_a_hard_link_is_refused(open_mode: str, sandbox: Path, outside: Path) -> None:
    try:
        os.link(outside / "secret", sandbox / "hard")
    except OSError as exc:
        pytest.skip(f"cannot hard-link here: {exc}")
    with pytest.raises(SandboxPathError, match=r"hard links.*no reason to be hard-linked"):
        read_chunk(sandbox, "hard", 0, 100)
    os.link(sandbox / "f", sandbox / "twin")  # two names inside are refused as well
    with pytest.raises(SandboxPathError, match="2 hard links"):
        read_chunk(sandbox, "f", 0, 100)
    os.unlink(sandbox / "twin")
    assert read_chunk(sandbox, "f", 0, 100)[0] == INSIDE


def test_every_failure_is_a_sandbox_path_error(open_mode: str, sandbox: Path) -> None:
    cases = {
        "f/x": "not a directory",  # ENOTDIR
        "nothing": "no file",  # ENOENT
        "d/nothing/x": "no file",
        ".": "directory",
        "d": "directory",
        "x" * 300: "File name too long",  # ENAMETOOLONG
    }
    for name, why in cases.items():
        with pytest.raises(SandboxPathError, match=why):
            read_chunk(sandbox, name, 0, 100)
    if os.geteuid() != 0:  # root reads whatever the mode says
        (sandbox / "locked").mkdir()
        (sandbox / "locked" / "f").write_bytes(INSIDE)
        (sandbox / "unreadable").write_bytes(INSIDE)
        os.chmod(sandbox / "locked", 0)
        os.chmod(sandbox / "unreadable", 0)
        try:
            for name in ("locked/f", "unreadable"):
                with pytest.raises(SandboxPathError, match="Permission denied"):
                    read_chunk(sandbox, name, 0, 100)
        finally:
            os.chmod(sandbox / "locked", 0o700)
    with pytest.raises(SandboxPathError, match="cannot open the sandbox"):
        read_chunk(sandbox / "gone", "f", 0, 100)
    os.mkfifo(sandbox / "d" / "pipe")
    with pytest.raises(SandboxPathError, match="FIFO"):
        read_chunk(sandbox, "d/pipe", 0, 100)


def test_the_walk_takes_over_when_openat2_is_missing_or_filtered(
        sandbox: Path, outside: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSYS (a kernel before 5.6) and EPERM (a seccomp filter, as in older container
    runtimes) make the reads walk; ENOSYS is remembered, EPERM asked again."""
    calls: list[int] = []
    answer = [0]

    def failing_syscall(*args: object) -> int:
        calls.append(answer[0])
        ctypes.set_errno(answer[0])
        return -1

    monkeypatch.setattr(files, "_syscall", failing_syscall)
    monkeypatch.setattr(files, "_openat2_missing", False)
    os.symlink(outside, sandbox / "out")
    for code in (errno.EPERM, errno.EPERM, errno.ENOSYS, errno.ENOSYS):
        answer[0] = code
        assert read_chunk(sandbox, "d/f", 0, 100) == (INSIDE, len(INSIDE))
        with pytest.raises(SandboxPathError, match="symlink"):
            read_chunk(sandbox, "out/secret", 0, 100)
    # every read asks again after EPERM, none after the first ENOSYS
    assert calls == [errno.EPERM] * 4 + [errno.ENOSYS]
    assert files._openat2_missing


def _exchange(dirfd: int, a: str, b: str) -> None:
    """Swap two names in one step (renameat2 RENAME_EXCHANGE), or in three where the
    system cannot (then a reader may also find the name missing)."""
    if _renameat2 is not None:
        if _renameat2(dirfd, a.encode(), dirfd, b.encode(), 2) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(code, os.strerror(code))
    os.rename(a, "swap", src_dir_fd=dirfd, dst_dir_fd=dirfd)
    os.rename(b, a, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    os.rename("swap", b, src_dir_fd=dirfd, dst_dir_fd=dirfd)


def _find_renameat2() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


_renameat2 = _find_renameat2()


@pytest.mark.parametrize("swapped", ["f", "d"])
def test_a_symlink_swapped_in_mid_read_never_leads_outside(
        open_mode: str, sandbox: Path, outside: Path, swapped: str) -> None:
    """A thread swaps a regular file (or the directory holding it) with a symlink to
    the outside thousands of times while reads run: some reads find the file, some are
    refused, none returns the outside's content or raises anything else."""
    if swapped == "f":
        os.symlink(outside / "secret", sandbox / "link")
    else:
        os.symlink(outside, sandbox / "link")
        (outside / "f").write_bytes(SECRET)
    target = "f" if swapped == "f" else "d/f"
    stop = threading.Event()
    swaps = [0]
    failures: list[BaseException] = []

    def swapper() -> None:
        dirfd = os.open(sandbox, os.O_RDONLY | os.O_DIRECTORY)
        try:
            while not stop.is_set():
                _exchange(dirfd, swapped, "link")
                swaps[0] += 1
        except BaseException as exc:
            failures.append(exc)
        finally:
            os.close(dirfd)

    thread = threading.Thread(target=swapper, daemon=True)
    read, refused = 0, 0
    leaked: list[bytes] = []
    deadline = time.monotonic() + 20
    thread.start()
    try:  # until thousands of swaps and reads overlapped, and both outcomes were seen
        while not failures and time.monotonic() < deadline and (
                read + refused < 3000 or swaps[0] < 3000 or not read or not refused):
            try:
                data, _ = read_chunk(sandbox, target, 0, 100)
            except SandboxPathError:
                refused += 1
                continue
            read += 1
            if data != INSIDE:
                leaked.append(data)
    finally:
        stop.set()
        thread.join(30)
    assert not failures, failures
    assert not leaked, f"read outside the sandbox {len(leaked)} times: {leaked[0]!r}"
    assert read > 0 and refused > 0, (read, refused, swaps)  # the race happened


def test_a_sandbox_replaced_by_a_symlink_is_refused(outside: Path, tmp_path: Path) -> None:
    """A task able to write its sandbox's parent could swap the sandbox for a link."""
    swapped = tmp_path / "swapped"
    swapped.symlink_to(outside)
    with pytest.raises(SandboxPathError, match="cannot open the sandbox"):
        read_chunk(swapped, "secret", 0, 100)
