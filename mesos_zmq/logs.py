"""Logging set-up, done once by the entry point; library modules only get loggers.

Console lines on a terminal, JSON lines otherwise (or with ``--log-format json``).
kazoo's and pyzmq's stdlib logging goes through the same renderer.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog
from structlog.tracebacks import ExceptionDictTransformer


class _LineWriter:
    """structlog's logger for this project's own lines: the rendered line written to
    the stdlib handler's stream under that handler's lock, so that lines from other
    threads' libraries (kazoo) never cut into ours.

    Through stdlib logging a line cost ~25 us (a LogRecord, the caller's frame looked
    up, a second processor chain); written directly ~9 us. A master logs a line per
    agent that (re-)registers: 10,000 of them at a failover, on the thread that must
    answer them. So these lines do not pass the root handler's filters, nor anything an
    embedding program adds to stdlib logging (they did before): configure through
    :func:`configure_logging` (``drop``, the level).

    One writer for the process, pointed at the handler of the latest
    :func:`configure_logging`: structlog keeps the loggers it made (cached on first
    use), and they must follow a second configuration (tests, tools)."""

    def __init__(self) -> None:
        self.handler: logging.StreamHandler[Any] = logging.StreamHandler(sys.stderr)

    def msg(self, line: str) -> None:
        handler = self.handler
        handler.acquire()
        try:
            stream = handler.stream
            stream.write(line + "\n")
            stream.flush()
        except Exception:  # a closed or full stream must not take the daemon down
            handler.handleError(logging.makeLogRecord({"msg": line}))
        finally:
            handler.release()

    debug = info = warning = warn = error = err = critical = fatal = exception = log = msg


_WRITER = _LineWriter()


def _dropping(events: frozenset[str]) -> Any:
    def drop(logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if event_dict.get("event") in events:
            raise structlog.DropEvent
        return event_dict

    return drop


def configure_logging(
    component: str, log_format: str = "auto", level: str = "info", stream: Any = None,
    drop: Iterable[str] = (),
) -> None:
    """Configure structlog and stdlib logging for one process.

    ``component`` (master, agent, framework, cli) is bound to every line so that the
    interleaved output of ``mesos-zmq local`` stays readable. Events named in ``drop``
    are not written.
    """
    out = stream if stream is not None else sys.stderr
    if log_format == "auto":
        log_format = "console" if out.isatty() else "json"
    if log_format not in ("console", "json"):
        raise ValueError(f"unknown log format {log_format!r} (want console, json or auto)")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        # Without the frames' local variables (structlog shows them by default): a
        # handler's locals hold keys, credentials and whatever a peer sent.
        shared.append(structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False)))
    else:
        # plain tracebacks, never one with locals (rich's, if it were installed)
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback)
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    dropped = [_dropping(frozenset(drop))] if drop else []
    _WRITER.handler = handler
    structlog.configure(
        processors=[*dropped, *shared, renderer],
        logger_factory=lambda *args: _WRITER,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(component=component)
