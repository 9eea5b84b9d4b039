"""Logging set-up, done once by the entry point; library modules only get loggers.

Console lines on a terminal, JSON lines otherwise (or with ``--log-format json``).
kazoo's and pyzmq's stdlib logging goes through the same renderer.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure_logging(
    component: str, log_format: str = "auto", level: str = "info", stream: Any = None
) -> None:
    """Configure structlog and stdlib logging for one process.

    ``component`` (master, agent, framework, cli) is bound to every line so that the
    interleaved output of ``mesos-zmq local`` stays readable.
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
        shared.append(structlog.processors.dict_tracebacks)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(component=component)
