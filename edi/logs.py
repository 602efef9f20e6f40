"""Configure structlog once, for the CLI: pretty lines on a terminal, JSON lines otherwise, on standard error.

Modules only call ``structlog.get_logger()``; this is the one place that decides where and how logs go. On a
terminal every string value is escaped (:func:`edi.text.printable`): a file name holding a line feed or a terminal
control is shown, never obeyed. A logged exception (``exc_info``) is its type, its message and a short traceback
(:data:`TRACEBACK_FRAMES` frames at most), never the frames' local variables: they hold invoice data, and a run on a
full disk would print them for every flow. Writes only to the stream it is given; raises nothing.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import TextIO

import structlog
from structlog.typing import EventDict, ExcInfo, WrappedLogger

from edi.text import printable

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
TRACEBACK_FRAMES = 6  # frames of a logged exception's traceback kept: the outermost three and the innermost three
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
        processors += [_printable_values, structlog.dev.ConsoleRenderer(exception_formatter=_console_exception)]
    else:
        short = structlog.tracebacks.ExceptionDictTransformer(show_locals=False, max_frames=TRACEBACK_FRAMES)
        processors += [structlog.processors.ExceptionRenderer(short), structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def short_traceback(exc: BaseException) -> str:
    """``exc`` as text for people: the innermost :data:`TRACEBACK_FRAMES` frames of its traceback (file, line,
    function, source line) and ``Type: message``, after the same for the exception it was raised from or while
    handling, if any; one line per item, every value escaped, never a frame's local variables."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        lines = [f"  ... {len(frames) - TRACEBACK_FRAMES} frames above"] if len(frames) > TRACEBACK_FRAMES else []
        for frame in frames[-TRACEBACK_FRAMES:]:
            lines.append(f'  File "{printable(frame.filename)}", line {frame.lineno}, in {printable(frame.name)}')
            if frame.line:
                lines.append(f"    {printable(frame.line.strip())}")
        message = printable(str(current))
        lines.append(f"{type(current).__qualname__}: {message}" if message else type(current).__qualname__)
        parts.insert(0, "\n".join(lines))
        if current.__cause__ is not None:  # the first error first, as Python prints them
            parts.insert(0, "The above exception was the direct cause of the following exception:")
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            parts.insert(0, "During handling of the above exception, another exception occurred:")
            current = current.__context__
        else:
            current = None
    return "\n".join(parts)


def _console_exception(sio: TextIO, exc_info: ExcInfo) -> None:
    """ConsoleRenderer's exception formatter: :func:`short_traceback` (rich's default would print locals)."""
    sio.write("\n" + short_traceback(exc_info[1]))


def _printable_values(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """Escape every string value before ConsoleRenderer prints it as it is (other values it prints as repr)."""
    return {key: printable(value) if isinstance(value, str) else value for key, value in event_dict.items()}


def info_logged() -> bool:
    """Whether info lines are written (so that a hot path can skip building one that would be dropped)."""
    return LEVELS[_level] <= LEVELS["info"]


def current_level() -> str:
    """The level logging was last configured at (worker processes log at their parent's)."""
    return _level
