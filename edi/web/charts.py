"""Server-side SVG charts for the console: flows per day stacked by state, and a qshape-style age histogram.

Pure functions: they read nothing, write nothing and return ``markupsafe.Markup`` (so Jinja's autoescape leaves the SVG
alone) in which every caller-supplied text is XML-escaped. No script, no ``style`` attribute: colours come from the CSS
classes ``s-<key>`` (``edi/web/static/charts.css``), with presentation attributes as a fallback the stylesheet
overrides. Output is deterministic. ``stacked_bars`` raises ``ValueError`` for a series key that is not CSS-safe or
whose values do not match the days; ``age_buckets`` for a ``first`` that is not finite and positive or a
``count < 2``.
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence

from markupsafe import Markup, escape

__all__ = ["age_buckets", "histogram", "nice_ticks", "stacked_bars"]

_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # no XML 1.0 document holds these
_WHOLE = re.compile(r"(\d+) ([a-z]+)")  # a duration in one unit: "10 min"
_FALLBACK = ("#2e7d32", "#b26a00", "#c62828", "#6a1b9a", "#616161", "#1565c0")  # used when no stylesheet is loaded
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 28, 44
_LINE = 14  # height of a legend row
_CHAR = 6.0  # width of a character at font-size 10, rounded up: enough to keep x labels apart
_MAX_LABELS = 12
_Segment = tuple[str, str, int]  # (css key, label, value) of one bar segment


def _n(x: float) -> str:
    """A coordinate without float noise: at most two decimals, no trailing zeros, never ``-0``."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _e(text: object) -> str:
    """XML-escaped text, safe in element content and in quoted attributes; characters XML forbids become U+FFFD."""
    return str(escape(_NOT_XML.sub("\ufffd", str(text))))


def nice_ticks(peak: int) -> list[int]:
    """Ticks from 0 to the first multiple of a 1, 2 or 5 x 10^n step that covers ``peak``: 3-5 ticks when peak >= 2."""
    if peak <= 0:
        return [0]
    step = 1
    while True:
        for mult in (1, 2, 5):
            intervals = -(-peak // (mult * step))
            if intervals <= 4:
                return [i * mult * step for i in range(intervals + 1)]
        step *= 10


def _every(labels: Sequence[str], plot_w: float) -> int:
    """Show every k-th x label so that labels never overlap and at most ``_MAX_LABELS`` are drawn."""
    if not labels:
        return 1
    room = max(1, min(_MAX_LABELS, int(plot_w // (_CHAR * max(len(s) for s in labels) + 8))))
    return max(1, math.ceil(len(labels) / room))


def _legend_places(names: Sequence[str], width: int, height: int) -> list[tuple[float, int]]:
    """Where each legend entry starts (x, text baseline): rows at the bottom, a new row when one is full."""
    spots: list[tuple[float, int]] = []
    x, row = float(_LEFT), 0
    for name in names:
        advance = 14 + _CHAR * len(name) + 12
        if x > _LEFT and x + advance > width:
            x, row = float(_LEFT), row + 1
        spots.append((x, row))
        x += advance
    return [(x, height - 7 - _LINE * (row_count - r)) for x, r in spots for row_count in [row]]


class _Frame:
    """The geometry of one chart: the plot area inside the margins and the scale of its y axis."""

    def __init__(self, width: int, height: int, legend_rows: int, columns: int, peak: int) -> None:
        self.plot_w = max(1, width - _LEFT - _RIGHT)
        self.plot_h = max(1, height - _TOP - _BOTTOM - _LINE * max(0, legend_rows - 1))
        self.base = _TOP + self.plot_h
        self.slot = self.plot_w / max(1, columns)
        self.ticks = nice_ticks(peak)
        self.scale = self.plot_h / max(1, self.ticks[-1])

    def centre(self, i: int) -> str:
        """The x of the middle of column ``i``."""
        return _n(_LEFT + (i + 0.5) * self.slot)


def _grid(frame: _Frame) -> list[str]:
    """Horizontal grid lines with their tick values on the left."""
    out = ['<g class="grid">']
    for tick in frame.ticks:
        y = _n(frame.base - tick * frame.scale)
        out.append(f'<line x1="{_LEFT}" y1="{y}" x2="{_LEFT + frame.plot_w}" y2="{y}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{y}" dy="3" text-anchor="end" fill="#444">{tick}</text>')
    return [*out, "</g>"]


def _bars(
    frame: _Frame, labels: Sequence[str], stacks: Sequence[Sequence[_Segment]], fills: dict[str, str]
) -> list[str]:
    """One column per label: its non-zero segments stacked bottom-up, each with a hover ``<title>``."""
    out = ['<g class="bars">']
    bar_w = _n(max(1.0, frame.slot * 0.8))
    for i, (label, stack) in enumerate(zip(labels, stacks, strict=True)):
        x, top = _n(_LEFT + (i + 0.1) * frame.slot), float(frame.base)
        for key, name, value in stack:
            if value <= 0:
                continue
            top -= value * frame.scale
            hover = f"{_e(label)} · {_e(name)}: {value}" if name else f"{_e(label)}: {value}"
            out.append(
                f'<rect class="s-{key}" x="{x}" y="{_n(top)}" width="{bar_w}" height="{_n(value * frame.scale)}" '
                f'fill="{fills.get(key, _FALLBACK[0])}"><title>{hover}</title></rect>'
            )
    return [*out, "</g>"]


def _columns(
    kind: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    stacks: Sequence[Sequence[_Segment]],
    legend: Sequence[tuple[str, str]],
    empty: str,
    size: tuple[int, int],
    show_values: bool,
) -> Markup:
    """The shared drawing: one column per label, each a stack of segments bottom-up, y axis, x labels, legend."""
    width, height = size
    ident = f"chart-{kind}-{hashlib.sha256(_e(title).encode()).hexdigest()[:10]}"
    places = _legend_places([name for _, name in legend], width, height)
    totals = [sum(v for _, _, v in stack) for stack in stacks]
    frame = _Frame(width, height, len({y for _, y in places}), len(stacks), max(totals, default=0))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="10">',
        f'<title id="{ident}-t">{_e(title)}</title>',
        f'<desc id="{ident}-d">{_e(desc if any(totals) else empty)}</desc>',
        f'<text class="chart-title" x="{_LEFT}" y="16" font-size="12" fill="#222">{_e(title)}</text>',
    ]
    axis = (
        f'<line class="axis" x1="{_LEFT}" y1="{frame.base}" x2="{_LEFT + frame.plot_w}" y2="{frame.base}" '
        'stroke="#767676"/>'
    )
    if not any(totals):
        out += [
            axis,
            f'<text class="chart-empty" x="{_n(_LEFT + frame.plot_w / 2)}" y="{_n(_TOP + frame.plot_h / 2)}" '
            f'text-anchor="middle" fill="#555">{_e(empty)}</text>',
        ]
        return Markup("".join([*out, "</svg>"]))  # noqa: S704 (every text in it went through _e)
    fills = {key: _FALLBACK[i % len(_FALLBACK)] for i, (key, _) in enumerate(legend)}
    out += [*_grid(frame), axis, *_bars(frame, labels, stacks, fills)]
    if show_values:
        out += [
            f'<text class="value" x="{frame.centre(i)}" y="{_n(frame.base - t * frame.scale - 3)}" '
            f'text-anchor="middle" fill="#222">{t}</text>'
            for i, t in enumerate(totals)
            if t
        ]
    out += [
        f'<text class="x-label" x="{frame.centre(i)}" y="{frame.base + 14}" text-anchor="middle" fill="#444">'
        f"{_e(labels[i])}</text>"
        for i in range(0, len(labels), _every(labels, frame.plot_w))
    ]
    out += [
        f'<rect class="s-{key}" x="{_n(x)}" y="{y - 9}" width="10" height="10" fill="{fills[key]}"/>'
        f'<text class="legend" x="{_n(x + 14)}" y="{y}" fill="#222">{_e(name)}</text>'
        for (key, name), (x, y) in zip(legend, places, strict=True)
    ]
    return Markup("".join([*out, "</svg>"]))  # noqa: S704 (every text in it went through _e)


def stacked_bars(
    days: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[int]]],
    *,
    title: str,
    width: int = 720,
    height: int = 220,
    empty: str = "no flows in this period",
) -> Markup:
    """One bar per day stacked by series ``(key, label, values)``; ``key`` styles the segments (class ``s-<key>``).

    Negative values count as zero. With no day or only zeros, an empty chart says ``empty``.
    """
    for key, _, values in series:
        if not _KEY.fullmatch(key):
            raise ValueError(f"series key {key!r} is not a CSS class suffix ([A-Za-z0-9_-]+)")
        if len(values) != len(days):
            raise ValueError(f"series {key!r} has {len(values)} values for {len(days)} days")
    clean = [(key, label, [max(0, v) for v in values]) for key, label, values in series]
    stacks = [[(key, label, values[i]) for key, label, values in clean] for i in range(len(days))]
    totals = [(label, sum(values)) for _, label, values in clean]
    period = f"{len(days)} days from {days[0]} to {days[-1]}" if days else "no day"
    desc = f"{period}; {sum(t for _, t in totals)} flows: " + ", ".join(f"{label} {t}" for label, t in totals) + "."
    legend = [(key, f"{label} ({sum(values)})") for key, label, values in clean]
    return _columns("bars", title, desc, days, stacks, legend, empty, (width, height), show_values=False)


def histogram(
    buckets: Sequence[tuple[str, int]],
    *,
    title: str,
    key: str = "age",
    width: int = 720,
    height: int = 220,
    empty: str = "nothing waiting",
) -> Markup:
    """One bar per ``(label, count)`` bucket, its count above it; with no bucket or only zeros, says ``empty``."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"key {key!r} is not a CSS class suffix ([A-Za-z0-9_-]+)")
    labels = [label for label, _ in buckets]
    stacks = [[(key, "", max(0, count))] for _, count in buckets]
    total = sum(s[0][2] for s in stacks)
    desc = f"{total} in {len(buckets)} buckets: " + ", ".join(
        f"{label} {s[0][2]}" for label, s in zip(labels, stacks, strict=True)
    )
    return _columns("hist", title, desc + ".", labels, stacks, [], empty, (width, height), show_values=True)


def _duration(seconds: float) -> str:
    """A bucket bound, short: "45 s", "5 min", "2 h", "1h20", "3 d", "1 d 8 h" (two units at most, the rest dropped)."""
    s = round(seconds)
    if s < 60:
        return f"{seconds:g} s"
    if s < 3600:
        return f"{s // 60} min" + (f" {s % 60} s" if s % 60 else "")
    if s < 86400:
        return f"{s // 3600} h" if s % 3600 < 60 else f"{s // 3600}h{s % 3600 // 60:02d}"
    return f"{s // 86400} d" + (f" {s % 86400 // 3600} h" if s % 86400 >= 3600 else "")


def _span(low: float, high: float) -> str:
    """A bucket label: "0-5 min", "5-10 min" when both bounds are whole in one unit, else "40 min-1h20"."""
    lo, hi = _duration(low), _duration(high)
    same = _WHOLE.fullmatch(lo), _WHOLE.fullmatch(hi)
    if same[0] and same[1] and same[0][2] == same[1][2]:
        return f"{same[0][1]}-{hi}"
    return f"0-{hi}" if low == 0 else f"{lo}-{hi}"


def age_buckets(ages_seconds: Iterable[float], *, first: float = 300, count: int = 8) -> list[tuple[str, int]]:
    """Postfix qshape's geometric buckets: ``count`` buckets whose upper bounds double from ``first``, the last open.

    A bucket holds its lower bound and not its upper one: 300 s (with ``first=300``) is in "5-10 min". Negative ages
    (clock skew) and NaN count in the first bucket, infinity in the last.
    """
    if not 0 < first < math.inf or count < 2:
        raise ValueError(f"age buckets need a finite first > 0 and count >= 2, got first={first}, count={count}")
    bounds = [first * 2**i for i in range(count - 1)]
    counts = [0] * count
    for age in ages_seconds:
        counts[0 if math.isnan(age) else bisect_right(bounds, age)] += 1
    labels = [_span(0 if i == 0 else bounds[i - 1], bounds[i]) for i in range(count - 1)]
    labels.append(f"≥ {_duration(bounds[-1])}")
    return list(zip(labels, counts, strict=True))
