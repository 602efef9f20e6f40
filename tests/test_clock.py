"""Time and flow ids (edi/clock.py): ids are unique and sort by arrival, whatever the clock does."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from edi.clock import FlowIds, SystemClock, iso
from tests.conftest import FixedClock

ID = re.compile(r"^\d{8}T\d{12}-[0-9a-f]{6}$")
START = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)

# Clock moves between two ids: forward, stalled, or backwards (NTP step), in microseconds.
steps = st.lists(st.integers(min_value=-(10**8), max_value=10**8), min_size=1, max_size=50)
forward_steps = st.lists(st.integers(min_value=1, max_value=10**11), min_size=1, max_size=50)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def ids_for(start: datetime, moves: list[int]) -> tuple[list[str], list[datetime]]:
    clock = FixedClock(start)
    ids = FlowIds(clock)
    made, times = [ids.new()], [clock.now()]
    for move in moves:
        clock.advance(move / 1_000_000)
        made.append(ids.new())
        times.append(clock.now())
    return made, times


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S%f")


def test_system_clock_is_utc_and_now() -> None:
    """SystemClock gives a timezone-aware UTC time, close to the real one."""
    now = SystemClock().now()
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_flow_id_shape_and_time() -> None:
    """A flow id is the UTC time to the microsecond, a dash and six hex digits."""
    clock = FixedClock(datetime(2026, 11, 26, 20, 46, 26, 483912, tzinfo=UTC))
    flow_id = FlowIds(clock).new()
    assert ID.match(flow_id)
    assert flow_id.startswith("20261126T204626483912-")


def test_flow_id_time_is_utc_whatever_the_clock_offset() -> None:
    """A clock in another timezone gives the same time prefix as the UTC instant."""
    paris = timezone(timedelta(hours=1))
    clock = FixedClock(datetime(2026, 11, 26, 21, 46, 26, 483912, tzinfo=paris))
    assert FlowIds(clock).new().startswith("20261126T204626483912-")


@given(moments, forward_steps)
def test_flow_ids_sort_in_arrival_order_with_an_advancing_clock(start: datetime, moves: list[int]) -> None:
    """With a clock that advances, ids sort in arrival order and are unique."""
    made, _ = ids_for(start, moves)
    assert sorted(made) == made
    assert len(set(made)) == len(made)


def test_flow_id_carries_the_exact_microsecond_of_the_clock() -> None:
    """The time part of an id is the clock's instant to the microsecond, not one microsecond earlier."""
    moment = datetime(2038, 2, 1, tzinfo=UTC) + timedelta(microseconds=1650)
    assert FlowIds(FixedClock(moment)).new().startswith(stamp(moment) + "-")


@given(moments, steps)
def test_flow_ids_strictly_increase_even_when_the_clock_stalls_or_steps_back(start: datetime, moves: list[int]) -> None:
    """Whatever the clock does between two ids, each id sorts after the previous one, and none repeats."""
    made, _ = ids_for(start, moves)
    assert all(ID.match(m) for m in made)
    assert all(a < b for a, b in pairwise(made))
    assert len(set(made)) == len(made)


def test_stalled_clock_ids_advance_one_microsecond_each() -> None:
    """With the clock stopped, successive ids take the next microseconds."""
    ids = FlowIds(FixedClock(START))
    assert [ids.new()[:21] for _ in range(3)] == [
        "20261126T093000000000",
        "20261126T093000000001",
        "20261126T093000000002",
    ]


def test_two_generators_at_the_same_instant_give_different_ids() -> None:
    """Two processes (two FlowIds) at the same microsecond still give unique ids, by the random suffix."""
    clock = FixedClock(START)
    first, second = FlowIds(clock), FlowIds(clock)
    made = [ids.new() for _ in range(100) for ids in (first, second)]
    assert len(set(made)) == len(made)


def test_flow_ids_from_many_threads_are_unique() -> None:
    """Threads sharing one FlowIds on a stalled clock get distinct, strictly increasing time prefixes."""
    ids = FlowIds(FixedClock(START))
    made: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [ids.new() for _ in range(200)]
        with lock:
            made.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({m[:21] for m in made}) == len(made) == 1600


def test_iso_is_utc_with_milliseconds_and_z() -> None:
    """iso() writes UTC, milliseconds (truncated) and a Z, whatever the offset it is given."""
    paris = timezone(timedelta(hours=2))
    assert iso(datetime(2026, 11, 26, 22, 46, 26, 483912, tzinfo=paris)) == "2026-11-26T20:46:26.483Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"


@given(moments)
def test_iso_sorts_like_time(moment: datetime) -> None:
    """iso() text of a later instant never sorts before that of an earlier one (the store compares them as text)."""
    later = moment + timedelta(milliseconds=1)
    assert iso(moment) < iso(later)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", iso(moment))
