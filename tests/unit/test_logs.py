"""The daemons' logging (mesos_zmq.logs): the project's own lines are written straight
to the stream (not through stdlib logging: a third of the cost), in the same format and
under the same lock as the lines of libraries that log through stdlib (kazoo)."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from mesos_zmq.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)
    structlog.contextvars.clear_contextvars()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_own_and_library_lines_are_json_with_the_same_fields(
        restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("master", "json", "info", stream=out)
    structlog.get_logger("mesos_zmq.master").info("agent reregistered", agent_id="a1",
                                                  tasks=10)
    structlog.get_logger("mesos_zmq.master").debug("not at info")
    logging.getLogger("kazoo.client").warning("Connection dropped: %s", "socket closed")
    own, library = _lines(out)
    assert own["event"] == "agent reregistered" and own["agent_id"] == "a1"
    assert own["tasks"] == 10
    assert library["event"] == "Connection dropped: socket closed"
    for line in (own, library):
        assert line["component"] == "master"
        assert line["timestamp"].endswith("Z")
    assert own["level"] == "info" and library["level"] == "warning"


def _fail_holding_a_secret() -> None:
    secret_key = "curve-secret-0123456789"  # noqa: F841 - a local the log must not show
    raise ValueError("bad flag")


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_an_exception_is_logged_with_its_traceback_but_not_its_locals(
        restore_logging: None, log_format: str) -> None:
    out = io.StringIO()
    configure_logging("agent", log_format, "info", stream=out)
    try:
        _fail_holding_a_secret()
    except ValueError:
        structlog.get_logger("x").exception("handler failed")
    text = out.getvalue()
    assert "handler failed" in text and "ValueError" in text
    assert "_fail_holding_a_secret" in text  # the traceback's frames
    assert "curve-secret" not in text
    if log_format == "json":
        (line,) = _lines(out)
        assert line["level"] == "error" and "ValueError" in json.dumps(line["exception"])


def test_console_lines_and_dropped_events(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("framework", "console", "error", stream=out,
                      drop=("driver aborted",))
    log = structlog.get_logger("x")
    log.error("driver aborted", reason="the framework said why")
    log.error("master unreachable", address="tcp://127.0.0.1:5050")
    text = out.getvalue()
    assert "driver aborted" not in text
    assert "master unreachable" in text and "tcp://127.0.0.1:5050" in text
    assert len(text.splitlines()) == 1


class _Yielding(io.StringIO):
    """A stream that lets other threads run in the middle of each write, as a pipe to
    a slow journal may: lines stay whole only if writers take turns."""

    def write(self, text: str) -> int:
        half = len(text) // 2
        super().write(text[:half])
        time.sleep(0.0001)
        return half + super().write(text[half:])


def test_lines_from_many_threads_stay_whole(restore_logging: None) -> None:
    out = _Yielding()
    configure_logging("master", "json", "info", stream=out)
    own = structlog.get_logger("x")
    lib = logging.getLogger("kazoo.client")

    def write(n: int) -> None:
        for i in range(300):
            if n % 3:
                own.info("own line", n=n, i=i, pad="x" * 200)
            else:
                lib.info("library line %d %d %s", n, i, "y" * 200)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = _lines(out)  # each line parses on its own
    assert len(lines) == 6 * 300
    assert sum(line["event"] == "own line" for line in lines) == 4 * 300


def test_loggers_made_before_a_second_configuration_follow_it(
        restore_logging: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("agent", "json", "info", stream=first)
    log = structlog.get_logger("mesos_zmq.agent")
    log.info("to the first")
    configure_logging("agent", "json", "info", stream=second)
    log.info("to the second")
    assert [line["event"] for line in _lines(first)] == ["to the first"]
    assert [line["event"] for line in _lines(second)] == ["to the second"]
