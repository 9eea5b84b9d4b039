"""Snapshots marked, built elsewhere and installed later: segments, crash points, layout.

The master marks what a snapshot covers, a forked child encodes the state as of the
mark, and the loop appends meanwhile; installing it must compact only what the mark
covered. A crash at any point must recover the same records: none lost (the log after
the mark) and none applied twice (the log the snapshot covers).
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_zmq.errors import LogError
from mesos_zmq.master.log import DirectoryLog, EncodedSnapshot, MemoryLog, Recovered

Log = DirectoryLog | MemoryLog


class _Crash(BaseException):
    """The process dies here (not an error the log could catch)."""


def _records(start: int, count: int) -> list[dict[str, Any]]:
    return [{"op": "n", "n": n} for n in range(start, start + count)]


def _replayed(recovered: Recovered) -> list[int]:
    """The numbers a recovery yields: the snapshot's (it holds the list of numbers it
    covers), then the records after it."""
    state = recovered.snapshot["numbers"] if recovered.snapshot else []
    return [*state, *(record["n"] for record in recovered.records)]


def _snapshot(numbers: list[int]) -> dict[str, Any]:
    return {"numbers": list(numbers)}


def _reopen(log: DirectoryLog) -> tuple[DirectoryLog, Recovered]:
    log.close()
    again = DirectoryLog(log.path, fsync=log.fsync)
    return again, again.recover()


@contextlib.contextmanager
def _directory_log(path: Path, fsync: bool = False) -> Iterator[DirectoryLog]:
    log = DirectoryLog(path, fsync=fsync)
    try:
        yield log
    finally:
        log.close()


@pytest.fixture(params=["directory", "memory"])
def any_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Log]:
    log: Log = DirectoryLog(tmp_path, fsync=False) if request.param == "directory" \
        else MemoryLog()
    log.recover()
    yield log
    log.close()


# ------------------------------------------------------------- both backends
def test_records_appended_after_the_mark_survive_the_install(any_log: Log) -> None:
    log = any_log
    log.append(_records(0, 2))
    log.append(_records(2, 1))
    mark = log.mark_snapshot()
    encoded = log.encode_snapshot(_snapshot([0, 1, 2]))
    log.append(_records(3, 2))  # while the child builds the snapshot
    log.install_snapshot(encoded, mark)
    recovered = log.recover()
    assert recovered.snapshot == _snapshot([0, 1, 2])
    assert [r["n"] for r in recovered.records] == [3, 4]
    assert log.records_since_snapshot == 2
    assert log.snapshot_bytes == encoded.size == len(encoded.data)
    log.append(_records(5, 1))
    assert _replayed(log.recover()) == [0, 1, 2, 3, 4, 5]


def test_counts_drop_by_what_the_mark_covered(any_log: Log) -> None:
    log = any_log
    log.append(_records(0, 3))
    covered_bytes = log.bytes_since_snapshot
    mark = log.mark_snapshot()
    log.append(_records(3, 2))
    log.append(_records(5, 1))
    after_bytes = log.bytes_since_snapshot - covered_bytes
    assert log.records_since_snapshot == 6
    log.install_snapshot(log.encode_snapshot(_snapshot([0, 1, 2])), mark)
    assert log.records_since_snapshot == 3
    assert log.bytes_since_snapshot == after_bytes > 0
    if isinstance(log, DirectoryLog):
        again, recovered = _reopen(log)
        assert again.records_since_snapshot == 3 and len(recovered.records) == 3
        assert again.bytes_since_snapshot == after_bytes
        assert again.snapshot_bytes == log.snapshot_bytes
        again.close()


def test_an_abandoned_mark_then_a_later_one(any_log: Log) -> None:
    log = any_log
    log.append(_records(0, 1))
    log.mark_snapshot()  # its child failed: never installed
    log.append(_records(1, 1))
    log.mark_snapshot()  # and this one's too, with nothing appended after it
    later = log.mark_snapshot()
    log.append(_records(2, 1))
    log.install_snapshot(log.encode_snapshot(_snapshot([0, 1])), later)
    recovered = log.recover()
    assert _replayed(recovered) == [0, 1, 2]
    assert [r["n"] for r in recovered.records] == [2]
    assert log.records_since_snapshot == 1


def test_an_older_mark_installed_after_a_newer_one_is_ignored(any_log: Log) -> None:
    log = any_log
    log.append(_records(0, 1))
    older = log.mark_snapshot()
    log.append(_records(1, 1))
    newer = log.mark_snapshot()
    log.append(_records(2, 1))
    log.install_snapshot(log.encode_snapshot(_snapshot([0, 1])), newer)
    size = log.snapshot_bytes
    log.install_snapshot(log.encode_snapshot(_snapshot([0])), older)
    recovered = log.recover()
    assert recovered.snapshot == _snapshot([0, 1]) and log.snapshot_bytes == size
    assert _replayed(recovered) == [0, 1, 2] and log.records_since_snapshot == 1
    log.install_snapshot(log.encode_snapshot(_snapshot([0, 1])), newer)  # again: no-op
    assert _replayed(log.recover()) == [0, 1, 2] and log.records_since_snapshot == 1


def test_a_mark_this_log_never_took_is_a_bug(any_log: Log) -> None:
    with pytest.raises(ValueError, match="not taken by this log"):
        any_log.install_snapshot(any_log.encode_snapshot({}), 7)


def test_write_snapshot_covers_everything_at_once(any_log: Log) -> None:
    log = any_log
    log.append(_records(0, 2))
    log.write_snapshot(_snapshot([0, 1]))
    assert log.records_since_snapshot == 0 and log.bytes_since_snapshot == 0
    log.append(_records(2, 1))
    assert _replayed(log.recover()) == [0, 1, 2]
    log.write_snapshot(_snapshot([0, 1, 2]))
    log.write_snapshot(_snapshot([0, 1, 2]))  # nothing new: still fine
    assert log.recover().records == []


def test_a_snapshot_of_an_empty_log(any_log: Log) -> None:
    any_log.write_snapshot({"k": "v"})
    assert any_log.recover().snapshot == {"k": "v"} and any_log.snapshot_bytes > 0


def test_encoding_touches_nothing(any_log: Log) -> None:
    """It runs in a forked child: the log must be the same before and after."""
    log = any_log
    log.append(_records(0, 1))
    before = copy.deepcopy(vars(log))
    encoded = log.encode_snapshot({"big": ["x" * 10] * 10})
    assert isinstance(encoded, EncodedSnapshot)
    assert msgpack.unpackb(encoded.data, raw=False) == {"big": ["x" * 10] * 10}
    assert vars(log) == before


def test_a_reread_while_a_mark_is_pending(any_log: Log) -> None:
    """A handler failure re-reads the log while a child builds a snapshot."""
    log = any_log
    log.append(_records(0, 1))
    mark = log.mark_snapshot()
    assert _replayed(log.recover()) == [0]
    log.append(_records(1, 1))
    assert _replayed(log.recover()) == [0, 1]
    log.append(_records(2, 1))
    log.install_snapshot(log.encode_snapshot(_snapshot([0])), mark)
    recovered = log.recover()
    assert [r["n"] for r in recovered.records] == [1, 2]
    assert _replayed(recovered) == [0, 1, 2]


# ------------------------------------------------------------- DirectoryLog files
def test_a_mark_starts_a_segment_and_an_install_deletes_what_it_covers(tmp_path: Path) -> None:
    with _directory_log(tmp_path) as log:
        log.recover()
        log.append(_records(0, 1))
        assert log.segment_path(0).exists()
        mark = log.mark_snapshot()
        assert mark == 1 and not log.segment_path(1).exists()  # created by the first append
        log.append(_records(1, 1))
        assert log.segment_path(1).exists()
        log.install_snapshot(log.encode_snapshot(_snapshot([0])), mark)
        assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".bin") == [
            "log-000001.bin", "snapshot-000001.bin"]
        second = log.mark_snapshot()
        log.install_snapshot(log.encode_snapshot(_snapshot([0, 1])), second)
        assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".bin") == [
            "snapshot-000002.bin"]
        log.append(_records(2, 1))
    with _directory_log(tmp_path) as again:
        assert _replayed(again.recover()) == [0, 1, 2]
        again.append(_records(3, 1))
        assert again.segment_path(2).exists()


def test_fsync_on(tmp_path: Path) -> None:
    with _directory_log(tmp_path, fsync=True) as log:
        log.recover()
        log.append(_records(0, 1))
        mark = log.mark_snapshot()
        log.append(_records(1, 1))
        log.install_snapshot(log.encode_snapshot(_snapshot([0])), mark)
    with _directory_log(tmp_path, fsync=True) as again:
        assert _replayed(again.recover()) == [0, 1]


def _build_up_to_the_install(path: Path) -> tuple[DirectoryLog, EncodedSnapshot, int]:
    """An old snapshot, a segment it does not cover, a mark, and appends after it."""
    log = DirectoryLog(path, fsync=False)
    log.recover()
    log.append(_records(0, 2))
    log.write_snapshot(_snapshot([0, 1]))
    log.append(_records(2, 2))
    mark = log.mark_snapshot()
    encoded = log.encode_snapshot(_snapshot([0, 1, 2, 3]))
    log.append(_records(4, 1))
    return log, encoded, mark


def _recovers_everything(path: Path) -> DirectoryLog:
    log = DirectoryLog(path, fsync=False)
    recovered = log.recover()
    assert _replayed(recovered) == [0, 1, 2, 3, 4]
    assert log.records_since_snapshot == len(recovered.records)
    assert not list(path.glob("*.tmp"))
    return log


def test_crash_after_the_mark_before_the_install(tmp_path: Path) -> None:
    log, _, _ = _build_up_to_the_install(tmp_path)
    log.close()  # the child never finished
    again = _recovers_everything(tmp_path)
    # The appends continue; the next snapshot covers everything.
    again.append(_records(5, 1))
    again.write_snapshot(_snapshot([0, 1, 2, 3, 4, 5]))
    assert again.recover().records == []
    again.close()


@pytest.mark.parametrize("torn", [False, True])
def test_crash_while_writing_the_snapshot(tmp_path: Path, torn: bool) -> None:
    log, encoded, mark = _build_up_to_the_install(tmp_path)
    with mock.patch("os.replace", side_effect=_Crash), contextlib.suppress(_Crash):
        log.install_snapshot(encoded, mark)
    tmp = log.snapshot_path(mark).with_name(log.snapshot_path(mark).name + ".tmp")
    assert tmp.exists()
    if torn:
        tmp.write_bytes(tmp.read_bytes()[:5])
    log.close()
    again = _recovers_everything(tmp_path)
    assert again.recover().snapshot == _snapshot([0, 1])
    again.close()


@pytest.mark.parametrize("deleted", [0, 1])
def test_crash_after_the_rename_before_the_deletions(tmp_path: Path, deleted: int) -> None:
    log, encoded, mark = _build_up_to_the_install(tmp_path)
    real = DirectoryLog._remove
    calls = []

    def remove(path: Path, why: str) -> None:
        calls.append(path)
        if len(calls) > deleted:
            raise _Crash
        real(log, path, why)

    log._remove = remove  # type: ignore[method-assign]
    with contextlib.suppress(_Crash):
        log.install_snapshot(encoded, mark)
    assert len(calls) == deleted + 1  # it did crash
    log.close()
    again = _recovers_everything(tmp_path)
    assert again.recover().snapshot == _snapshot([0, 1, 2, 3])
    # Recovery deleted what the new snapshot covers.
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".bin") == [
        "log-000002.bin", "snapshot-000002.bin"]
    again.close()


def test_a_crash_at_every_step_by_copying_the_directory(tmp_path: Path) -> None:
    """The directory as a crash would leave it after each step: each copy recovers the
    records acknowledged by then, none twice."""
    work = tmp_path / "work"
    copies: list[tuple[Path, list[int]]] = []
    acknowledged: list[int] = []

    def crash_here() -> None:
        copy = tmp_path / f"copy-{len(copies)}"
        shutil.copytree(work, copy, ignore=shutil.ignore_patterns(DirectoryLog.LOCK_NAME))
        copies.append((copy, list(acknowledged)))

    with _directory_log(work) as log:
        log.recover()
        for step in range(4):
            log.append(_records(len(acknowledged), 2))
            acknowledged.extend([len(acknowledged), len(acknowledged) + 1])
            crash_here()
            mark = log.mark_snapshot()
            crash_here()
            encoded = log.encode_snapshot(_snapshot(acknowledged))
            log.append(_records(len(acknowledged), 1))
            acknowledged.append(len(acknowledged))
            crash_here()
            if step != 1:  # step 1's child fails
                log.install_snapshot(encoded, mark)
                crash_here()
    for directory, expected in copies:
        with _directory_log(directory) as again:
            assert _replayed(again.recover()) == expected, directory


def test_a_corrupt_earlier_segment_is_an_error_naming_it(tmp_path: Path) -> None:
    with _directory_log(tmp_path) as log:
        log.recover()
        log.append(_records(0, 1))
        log.append(_records(1, 1))
        log.mark_snapshot()
        log.append(_records(2, 1))
        first = log.segment_path(0)
    first.write_bytes(first.read_bytes()[:-3])
    with _directory_log(tmp_path) as again, pytest.raises(LogError, match=r"log-000000\.bin"):
        again.recover()
    assert first.exists()  # nothing was truncated or deleted


def test_the_torn_tail_of_the_last_segment_is_dropped(tmp_path: Path) -> None:
    with _directory_log(tmp_path) as log:
        log.recover()
        log.append(_records(0, 1))
        log.mark_snapshot()
        log.append(_records(1, 1))
        log.append(_records(2, 1))
        last = log.segment_path(1)
    last.write_bytes(last.read_bytes()[:-2])
    with _directory_log(tmp_path) as again:
        assert _replayed(again.recover()) == [0, 1]
        again.mark_snapshot()
        again.append(_records(2, 1))  # in a later segment: the torn end must be gone
    with _directory_log(tmp_path) as third:
        assert _replayed(third.recover()) == [0, 1, 2]


def test_an_unreadable_snapshot_is_an_error_naming_it(tmp_path: Path) -> None:
    with _directory_log(tmp_path) as log:
        log.recover()
        log.append(_records(0, 1))
        log.write_snapshot(_snapshot([0]))
    path = tmp_path / "snapshot-000001.bin"
    path.write_bytes(b"\xc1")
    with _directory_log(tmp_path) as again, pytest.raises(LogError, match="snapshot-000001"):
        again.recover()


def test_a_failed_append_leaves_no_partial_batch(tmp_path: Path) -> None:
    import os

    real_write = os.write
    with _directory_log(tmp_path) as log:
        log.recover()
        log.append(_records(0, 1))

        def half(fd: int, data: bytes) -> int:
            if len(data) > 1:
                real_write(fd, bytes(data)[: len(data) // 2])
            raise OSError(28, "No space left on device")

        with mock.patch("os.write", side_effect=half), \
                pytest.raises(LogError, match=r"log-000000\.bin"):
            log.append(_records(1, 1))
        assert log.records_since_snapshot == 1
        log.mark_snapshot()
        log.append(_records(1, 1))
    with _directory_log(tmp_path) as again:
        assert _replayed(again.recover()) == [0, 1]


# ------------------------------------------------------------- the first layout
def _legacy_frame(records: list[dict[str, Any]]) -> bytes:
    payload: bytes = msgpack.packb(records, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


def test_a_directory_of_the_first_layout_recovers_the_same(tmp_path: Path) -> None:
    snapshot = msgpack.packb(_snapshot([0, 1]), use_bin_type=True)
    (tmp_path / "snapshot.bin").write_bytes(snapshot)
    (tmp_path / "log.bin").write_bytes(
        _legacy_frame(_records(2, 2)) + _legacy_frame(_records(4, 1)) + b"\x00\x00\x01")
    (tmp_path / "snapshot.bin.tmp").write_bytes(b"half")
    with _directory_log(tmp_path) as log:
        recovered = log.recover()
        assert recovered.snapshot == _snapshot([0, 1])
        assert _replayed(recovered) == [0, 1, 2, 3, 4]  # the torn tail dropped, as before
        assert log.records_since_snapshot == 3 and log.snapshot_bytes == len(snapshot)
        assert sorted(p.name for p in tmp_path.iterdir() if p.name != "lock") == [
            "log-000000.bin", "snapshot-000000.bin"]
        log.append(_records(5, 1))
        mark = log.mark_snapshot()
        log.append(_records(6, 1))
        log.install_snapshot(log.encode_snapshot(_snapshot([0, 1, 2, 3, 4, 5])), mark)
    with _directory_log(tmp_path) as again:
        assert _replayed(again.recover()) == list(range(7))
        assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".bin") == [
            "log-000001.bin", "snapshot-000001.bin"]


def test_a_first_layout_log_without_a_snapshot(tmp_path: Path) -> None:
    (tmp_path / "log.bin").write_bytes(_legacy_frame(_records(0, 2)))
    with _directory_log(tmp_path) as log:
        recovered = log.recover()
        assert recovered.snapshot is None and _replayed(recovered) == [0, 1]
        assert log.snapshot_bytes == 0


def test_a_half_renamed_first_layout_is_finished(tmp_path: Path) -> None:
    """A crash between the two renames of the migration."""
    (tmp_path / "snapshot.bin").write_bytes(msgpack.packb(_snapshot([0]), use_bin_type=True))
    (tmp_path / "log-000000.bin").write_bytes(_legacy_frame(_records(1, 1)))
    with _directory_log(tmp_path) as log:
        assert _replayed(log.recover()) == [0, 1]
    assert not (tmp_path / "snapshot.bin").exists()


def test_both_layouts_at_once_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "log.bin").write_bytes(_legacy_frame(_records(0, 1)))
    (tmp_path / "snapshot-000003.bin").write_bytes(msgpack.packb({}, use_bin_type=True))
    with _directory_log(tmp_path) as log, pytest.raises(LogError, match="both layouts"):
        log.recover()


# ------------------------------------------------------------- against a model
_OPS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 3)),
    st.tuples(st.just("mark"), st.just(0)),
    st.tuples(st.just("install"), st.integers(0, 3)),
    st.tuples(st.just("crash_install"), st.integers(0, 3)),
    st.tuples(st.just("reread"), st.just(0)),
    st.tuples(st.just("restart"), st.just(0)),
), max_size=30)


class _Run:
    """One log against a model: the numbers acknowledged, the snapshot installed."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.acknowledged: list[int] = []
        #: the installed snapshot's mark (0: none) and the state it holds
        self.installed_mark = 0
        self.installed: list[int] = []
        #: marks taken by this process, with the state as of each
        self.pending: list[tuple[int, list[int]]] = []

    def check(self, recovered: Recovered) -> None:
        assert recovered.snapshot == (_snapshot(self.installed) if self.installed_mark
                                      else None)
        assert _replayed(recovered) == self.acknowledged
        assert self.log.records_since_snapshot == len(recovered.records)

    def step(self, op: str, arg: int) -> None:
        log = self.log
        if op == "append":
            log.append(_records(len(self.acknowledged), arg))
            self.acknowledged.extend(range(len(self.acknowledged),
                                           len(self.acknowledged) + arg))
        elif op == "mark":
            self.pending.append((log.mark_snapshot(), list(self.acknowledged)))
        elif op in ("install", "crash_install") and self.pending:
            mark, state = self.pending[arg % len(self.pending)]
            encoded = log.encode_snapshot(_snapshot(state))
            if op == "install" or not isinstance(log, DirectoryLog):
                log.install_snapshot(encoded, mark)
                self._installed(mark, state)  # or ignored: an older mark than installed
            else:
                self._crash_during(log, encoded, mark, state, arg)
        elif op == "reread":
            self.check(log.recover())
        elif op == "restart" and isinstance(log, DirectoryLog):
            self.log, recovered = _reopen(log)
            self.pending = []
            self.check(recovered)

    def _installed(self, mark: int, state: list[int]) -> None:
        if mark > self.installed_mark:
            self.installed_mark, self.installed = mark, state

    def _crash_during(self, log: DirectoryLog, encoded: EncodedSnapshot, mark: int,
                      state: list[int], where: int) -> None:
        if where % 2 == 0:  # before the rename
            with mock.patch("os.replace", side_effect=_Crash), contextlib.suppress(_Crash):
                log.install_snapshot(encoded, mark)
        else:  # after the rename, at the first deletion

            def remove(path: Path, why: str) -> None:
                raise _Crash

            log._remove = remove  # type: ignore[method-assign]
            with contextlib.suppress(_Crash):
                log.install_snapshot(encoded, mark)
            self._installed(mark, state)  # durable once renamed
        self.log, recovered = _reopen(log)
        self.pending = []
        self.check(recovered)


@settings(max_examples=150, deadline=None)
@given(ops=_OPS)
def test_directory_log_against_a_model(ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as path:
        run = _Run(DirectoryLog(path, fsync=False))
        run.check(run.log.recover())
        try:
            for op, arg in ops:
                run.step(op, arg)
            run.check(run.log.recover())
            assert isinstance(run.log, DirectoryLog)
            counts = (run.log.records_since_snapshot, run.log.bytes_since_snapshot,
                      run.log.snapshot_bytes)
            run.log, recovered = _reopen(run.log)
            run.check(recovered)
            assert (run.log.records_since_snapshot, run.log.bytes_since_snapshot,
                    run.log.snapshot_bytes) == counts
        finally:
            run.log.close()


@settings(max_examples=400, deadline=None)
@given(ops=_OPS)
def test_memory_log_against_a_model(ops: list[tuple[str, int]]) -> None:
    run = _Run(MemoryLog())
    for op, arg in ops:
        run.step(op, arg)
    run.check(run.log.recover())
