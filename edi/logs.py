"""Configure structlog once, for the CLI: pretty lines on a terminal, JSON lines otherwise, on standard error.

Modules only call ``structlog.get_logger()``; this is the one place that decides where and how logs go.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_level = "warning"


def configure_logging(level: str = "warning", stream: TextIO | None = None) -> None:
    """Log at ``level`` and above to ``stream`` (standard error by default)."""
    global _level
    _level = level
    stream = stream or sys.stderr
    pretty = stream.isatty()
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if pretty:
        processors.append(structlog.dev.ConsoleRenderer())
    else:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def info_logged() -> bool:
    """Whether info lines are written (so that a hot path can skip building one that would be dropped)."""
    return LEVELS[_level] <= LEVELS["info"]


def current_level() -> str:
    """The level logging was last configured at (worker processes log at their parent's)."""
    return _level
