"""edi.cron: crontab lines read as a crontab reads them, and every mistake named with its field."""

from __future__ import annotations

import pytest

from edi.cron import CronLine, parse


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("* * * * *", CronLine(None, None, None, None, None)),
        ("30 3 * * *", CronLine((30,), (3,), None, None, None)),
        ("*/15 8-17 * * *", CronLine((0, 15, 30, 45), tuple(range(8, 18)), None, None, None)),
        ("0 6 1,15 * *", CronLine((0,), (6,), (1, 15), None, None)),
        ("0 6 * jan-mar,DEC *", CronLine((0,), (6,), None, (1, 2, 3, 12), None)),
        ("0 6 * * mon-fri", CronLine((0,), (6,), None, None, (1, 2, 3, 4, 5))),
        ("0 6 * * 5-7", CronLine((0,), (6,), None, None, (0, 5, 6))),
        ("0 6 * * 7", CronLine((0,), (6,), None, None, (0,))),
        ("0 6 * * */2", CronLine((0,), (6,), None, None, (0, 2, 4, 6))),
        ("5/20 0-12/6 * * 1/3", CronLine((5, 25, 45), (0, 6, 12), None, None, (1, 4))),
        ("0 0 29 2 *", CronLine((0,), (0,), (29,), (2,), None)),
    ],
    ids=[
        "any",
        "daily",
        "steps",
        "list",
        "month-names",
        "weekday-names",
        "sunday-as-7",
        "7",
        "weekday-step",
        "a/n",
        "leap-day",
    ],
)
def test_parse_gives_the_values_each_field_allows(line: str, expected: CronLine) -> None:
    """Numbers, ranges, steps, lists and names give the values a crontab would run at; weekday 7 is Sunday (0)."""
    assert parse(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 6 * *", "needs 5 fields"),
        ("0 6 * * * *", "needs 5 fields"),
        ("61 * * * *", "minute 61 is not between 0 and 59"),
        ("0 25 * * *", "hour 25 is not between 0 and 23"),
        ("0 6 0 * *", "day of month 0 is not between 1 and 31"),
        ("0 6 32 * *", "day of month 32 is not between 1 and 31"),
        ("0 6 * 13 *", "month 13 is not between 1 and 12"),
        ("0 6 * * 8", "day of week 8 is not between 0 and 7"),
        ("x 6 * * *", "minute 'x' is not a number 0-59"),
        ("0 6 * * monday", "day of week 'monday' is not a number 0-7 or a name (sun, mon, ...)"),
        ("0 6 mon * *", "day of month 'mon' is not a number 1-31"),
        ("0 6 * * 5-1", "day of week range '5-1' runs backwards"),
        ("*/0 * * * *", "minute step '0' must be a whole number, at least 1"),
        ("*/ * * * *", "minute step '' must be a whole number"),
        ("0 6 * * 1-", "day of week '' is not a number"),
        ("1,,2 * * * *", "minute '' is not a number"),
        ("-1 * * * *", "minute '' is not a number"),
        ("² * * * *", "minute '²' is not a number"),
        ("0 0 30 2 *", "never runs: no month it names has a day 30"),
        ("0 0 31 4,6 *", "never runs: no month it names has a day 31"),
    ],
)
def test_a_bad_line_is_refused_naming_the_field(line: str, message: str) -> None:
    """What a crontab refuses is a ValueError naming the field and the value (and a line that never runs)."""
    with pytest.raises(ValueError) as raised:
        parse(line)
    assert message in str(raised.value)
