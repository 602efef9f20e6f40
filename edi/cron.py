"""Crontab lines (``minute hour day-of-month month day-of-week``), read as a crontab reads them. Pure, stdlib only.

:func:`parse` turns a line into the values each field allows, so that the configuration can check a line without
loading a scheduler (``edi.config`` does, for every command) and ``edi.schedule`` hands APScheduler only plain
numbers and day names. Each field is ``*``, a number, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n`` (from
``a`` to the field's end), or a list of these separated by commas; months and weekdays may be named (``jan``,
``mon``, in any case); weekday 0 and 7 are both Sunday. Raises ``ValueError`` naming the field and what is wrong,
and for a line that can never run (``0 0 30 2 *``).
"""

from __future__ import annotations

from dataclasses import dataclass

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
LONGEST_MONTHS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # days, in a leap year


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for low + i
    end: int | None = None  # where ``*`` and ``a/n`` stop, when not at ``high`` (weekday 7 repeats Sunday)


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, MONTHS),
    _Field("day of week", 0, 7, WEEKDAYS, end=6),
)


@dataclass(frozen=True, slots=True)
class CronLine:
    """The values each field of a crontab line allows, sorted; ``None`` for a field that is ``*`` (any)."""

    minute: tuple[int, ...] | None
    hour: tuple[int, ...] | None
    day: tuple[int, ...] | None
    month: tuple[int, ...] | None
    weekday: tuple[int, ...] | None  # 0 = Sunday ... 6 = Saturday (a 7 in the line is read as 0)


def parse(line: str) -> CronLine:
    """The five fields of ``line``; ValueError naming the field and the problem."""
    parts = line.split()
    if len(parts) != len(_FIELDS):
        raise ValueError("needs 5 fields (minute hour day month weekday)")
    minute, hour, day, month, weekday = (_values(text, f) for text, f in zip(parts, _FIELDS, strict=True))
    if weekday is not None:
        weekday = tuple(sorted({d % 7 for d in weekday}))
    if day is not None and not any(d <= LONGEST_MONTHS[m - 1] for d in day for m in month or range(1, 13)):
        raise ValueError(f"never runs: no month it names has a day {day[0]}")
    return CronLine(minute, hour, day, month, weekday)


def _values(text: str, f: _Field) -> tuple[int, ...] | None:
    if text == "*":
        return None
    values: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        if span == "*":
            first, last = f.low, f.end if f.end is not None else f.high
        else:
            low, dash, high = span.partition("-")
            first = _value(low, f)
            last = _value(high, f) if dash else (f.end if f.end is not None else f.high) if slash else first
            if last < first:
                raise ValueError(f"{f.name} range {span!r} runs backwards")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"{f.name} step {step_text!r} must be a whole number, at least 1")
            step = int(step_text)
        values.update(range(first, last + 1, step))
    return tuple(sorted(values))


def _value(text: str, f: _Field) -> int:
    if text.isdigit() and text.isascii():
        number = int(text)
        if not f.low <= number <= f.high:
            raise ValueError(f"{f.name} {text} is not between {f.low} and {f.high}")
        return number
    if text.lower() in f.names:
        return f.low + f.names.index(text.lower())
    kind = f"a number {f.low}-{f.high}" + (f" or a name ({f.names[0]}, {f.names[1]}, ...)" if f.names else "")
    raise ValueError(f"{f.name} {text!r} is not {kind}")
