"""The console's SVG charts: well-formed, escaped, proportional, accessible, honest when there is nothing to draw."""

from __future__ import annotations

import itertools
import math
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from markupsafe import Markup

from edi.ingest.xmlparse import new_parser
from edi.web.charts import age_buckets, histogram, nice_ticks, stacked_bars

SVG = "{http://www.w3.org/2000/svg}"
NS = {"s": SVG[1:-1]}
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "R&D", "it's"]


def parse(svg: str) -> etree._Element:
    """The chart parsed by the project's safe parser (no DTD, no entity, no network)."""
    return etree.fromstring(svg.encode(), new_parser())


def days(n: int) -> list[str]:
    return [(date(2026, 12, 1) + timedelta(days=i)).isoformat() for i in range(n)]


def segments(root: etree._Element, key: str) -> list[etree._Element]:
    return root.findall(f".//s:g[@class='bars']/s:rect[@class='s-{key}']", NS)


def test_stacked_bars_is_an_accessible_svg():
    """The chart is an <svg role=img> labelled by its own <title> and <desc>, and Markup so Jinja leaves it alone."""
    svg = stacked_bars(days(2), [("IN_INTEGRE", "Intégré", [5, 10])], title="Flux par jour")
    assert isinstance(svg, Markup)
    root = parse(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby").split()
    assert root.find(f"s:title[@id='{title_id}']", NS).text == "Flux par jour"
    assert "15 flows" in root.find(f"s:desc[@id='{desc_id}']", NS).text


def test_bar_heights_are_proportional_and_stacks_sum():
    """A 10 bar is twice a 5 bar, and a day's segments sit on one another up to the height of their sum."""
    root = parse(
        stacked_bars(days(2), [("IN_INTEGRE", "Intégré", [5, 10]), ("IN_REJETE", "Rejeté", [5, 0])], title="t")
    )
    first, second = (float(r.get("height")) for r in segments(root, "IN_INTEGRE"))
    assert second == pytest.approx(2 * first, abs=0.02)
    (rejected,) = segments(root, "IN_REJETE")
    assert float(rejected.get("y")) + float(rejected.get("height")) == pytest.approx(
        float(segments(root, "IN_INTEGRE")[0].get("y")), abs=0.02
    )
    assert float(rejected.get("height")) + first == pytest.approx(second, abs=0.02)


def test_zero_segments_are_not_drawn_and_each_segment_says_what_it_is():
    """A zero value draws no rect; each drawn segment's <title> gives the day, the series and the value."""
    root = parse(stacked_bars(days(2), [("IN_REJETE", "Rejeté", [0, 3])], title="t"))
    (rect,) = segments(root, "IN_REJETE")
    assert rect.find("s:title", NS).text == "2026-12-02 · Rejeté: 3"


@pytest.mark.parametrize("label", HOSTILE)
def test_hostile_text_is_escaped_never_markup(label):
    """A title, series label, day or bucket label made of markup comes out as text: no element but SVG's own."""
    charts = [
        stacked_bars([label], [("IN_RECU", label, [1])], title=label),
        histogram([(label, 2)], title=label),
        stacked_bars([label], [("IN_RECU", label, [0])], title=label, empty=label),
    ]
    for svg in charts:
        root = parse(svg)
        assert {el.tag for el in root.iter()} <= {
            f"{SVG}{t}" for t in ("svg", "title", "desc", "text", "g", "line", "rect")
        }
        assert "script" not in {etree.QName(el).localname for el in root.iter()}
        assert not any(name.startswith("on") for el in root.iter() for name in el.attrib)
        assert root.find("s:title", NS).text == label


def test_characters_xml_forbids_are_replaced():
    """A control character in a label cannot break the document: it becomes U+FFFD."""
    root = parse(histogram([("a\x00b\x1b", 1)], title="x\x08"))
    assert root.find("s:title", NS).text == "x\ufffd"
    assert "a\ufffdb\ufffd" in root.find("s:desc", NS).text


def test_bad_series_key_or_length_is_refused():
    """A key that is not a CSS class suffix, or values that do not match the days, are a programming error."""
    with pytest.raises(ValueError, match="CSS"):
        stacked_bars(days(1), [('x" onload="y', "x", [1])], title="t")
    with pytest.raises(ValueError, match="2 values for 1 days"):
        stacked_bars(days(1), [("IN_RECU", "x", [1, 2])], title="t")


@pytest.mark.parametrize(
    ("chart", "message"),
    [
        (lambda: stacked_bars([], [], title="t"), "no flows in this period"),
        (lambda: stacked_bars(days(30), [("IN_RECU", "Reçu", [0] * 30)], title="t"), "no flows in this period"),
        (lambda: histogram([], title="t"), "nothing waiting"),
        (lambda: histogram(age_buckets([]), title="t"), "nothing waiting"),
    ],
    ids=["no-day", "all-zero", "no-bucket", "empty-buckets"],
)
def test_empty_chart_says_so(chart, message):
    """No data draws an empty frame with a message, in the picture and in the <desc>, and no bar."""
    root = parse(chart())
    assert root.find("s:text[@class='chart-empty']", NS).text == message
    assert root.find("s:desc", NS).text == message
    assert root.find(".//s:rect", NS) is None


@pytest.mark.parametrize("peak", [*range(1, 120), 999, 1000, 1001, 4321, 99_999, 10**9 + 7])
def test_y_ticks_are_nice_and_cover_the_peak(peak):
    """Ticks start at 0, step by 1, 2 or 5 x 10^n, end at or above the peak, and number 3 to 5 once the peak is 2."""
    ticks = nice_ticks(peak)
    step = ticks[1]
    assert ticks[0] == 0 and ticks == [i * step for i in range(len(ticks))]
    assert step // 10 ** int(math.log10(step)) in (1, 2, 5) and step % 10 ** int(math.log10(step)) == 0
    assert ticks[-2] < peak <= ticks[-1]
    assert 3 <= len(ticks) <= 5 or peak == 1


def test_the_drawn_axis_tops_at_the_last_tick():
    """The tallest bar reaches the top tick's line exactly when the peak is a nice number."""
    root = parse(stacked_bars(days(3), [("IN_INTEGRE", "i", [1, 20, 7])], title="t"))
    labels = [t.text for t in root.findall("s:g[@class='grid']/s:text", NS)]
    assert labels == ["0", "5", "10", "15", "20"]
    top_line = root.findall("s:g[@class='grid']/s:line", NS)[-1]
    assert max(float(r.get("height")) for r in segments(root, "IN_INTEGRE")) == pytest.approx(
        float(root.findall("s:g[@class='grid']/s:line", NS)[0].get("y1")) - float(top_line.get("y1"))
    )


def test_x_labels_are_thinned_for_ninety_days():
    """90 days show at most 12 x labels, evenly every k-th from the first, none overlapping at 720 px."""
    root = parse(stacked_bars(days(90), [("IN_RECU", "Reçu", [1] * 90)], title="t"))
    labels = root.findall("s:text[@class='x-label']", NS)
    assert 4 <= len(labels) <= 12
    xs = [float(t.get("x")) for t in labels]
    assert labels[0].text == "2026-12-01"
    assert min(b - a for a, b in itertools.pairwise(xs)) > 6 * len("2026-12-01")


def test_few_days_keep_every_label_and_output_is_deterministic():
    """A week shows all seven days, and the same data always gives the same bytes."""
    make = lambda: stacked_bars(days(7), [("IN_RECU", "Reçu", list(range(7)))], title="t")  # noqa: E731
    assert len(parse(make()).findall("s:text[@class='x-label']", NS)) == 7
    assert make() == make()


def test_legend_wraps_and_names_each_series_with_its_total():
    """Every series has a legend entry "label (total)" with its colour class; long legends wrap inside the width."""
    long = [(f"K{i}", f"Une catégorie au nom très long {i}", [i, 1]) for i in range(6)]
    root = parse(stacked_bars(days(2), long, title="t"))
    entries = root.findall("s:text[@class='legend']", NS)
    assert [e.text for e in entries] == [f"Une catégorie au nom très long {i} ({i + 1})" for i in range(6)]
    assert len({e.get("y") for e in entries}) > 1
    assert all(float(e.get("x")) < 720 for e in entries)


def test_histogram_draws_counts_above_bars():
    """A histogram bar per non-empty bucket, its count written above it, its <title> "label: count"."""
    root = parse(histogram([("0-5 min", 4), ("5-10 min", 0), ("10-20 min", 2)], title="Attente"))
    bars = segments(root, "age")
    assert [b.find("s:title", NS).text for b in bars] == ["0-5 min: 4", "10-20 min: 2"]
    assert float(bars[0].get("height")) == pytest.approx(2 * float(bars[1].get("height")), abs=0.02)
    assert [t.text for t in root.findall("s:text[@class='value']", NS)] == ["4", "2"]


def test_age_buckets_labels_follow_qshape():
    """Default buckets: bounds double from 5 minutes, labels in the unit that reads best, the last one open."""
    assert [label for label, _ in age_buckets([])] == [
        "0-5 min", "5-10 min", "10-20 min", "20-40 min", "40 min-1h20", "1h20-2h40", "2h40-5h20", "≥ 5h20"
    ]  # fmt: skip
    assert [label for label, _ in age_buckets([], first=900, count=10)][2:] == [
        "30 min-1 h", "1-2 h", "2-4 h", "4-8 h", "8-16 h", "16 h-1 d 8 h", "1 d 8 h-2 d 16 h", "≥ 2 d 16 h"
    ]  # fmt: skip
    assert [label for label, _ in age_buckets([], first=30, count=3)] == ["0-30 s", "30 s-1 min", "≥ 1 min"]


@pytest.mark.parametrize(
    ("age", "bucket"),
    [(0, 0), (299.999, 0), (300, 1), (599, 1), (600, 2), (19_199, 6), (19_200, 7), (10**9, 7), (-3600, 0),
     (math.inf, 7), (math.nan, 0)],
)  # fmt: skip
def test_age_buckets_boundaries(age, bucket):
    """A bucket holds its lower bound, not its upper one (300 s is "5-10 min"); skewed and NaN ages count as new."""
    counts = [n for _, n in age_buckets([age])]
    assert counts == [int(i == bucket) for i in range(8)]


def test_age_buckets_refuses_meaningless_settings():
    """A zero, negative or infinite first bound, or fewer than two buckets, cannot make a histogram."""
    for first, count in [(0, 8), (-1, 8), (math.inf, 8), (300, 1)]:
        with pytest.raises(ValueError, match="age buckets need"):
            age_buckets([1], first=first, count=count)


@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True)),
    st.floats(min_value=0.5, max_value=1e6),
    st.integers(min_value=2, max_value=20),
)
def test_age_buckets_count_every_age_once(ages, first, count):
    """Every age lands in exactly one bucket: counts add up to the number of ages, the bucket count is as asked."""
    buckets = age_buckets(ages, first=first, count=count)
    assert len(buckets) == count and len({label for label, _ in buckets}) == count
    assert sum(n for _, n in buckets) == len(ages)
    for age in ages:
        single = [n for _, n in age_buckets([age], first=first, count=count)]
        assert sorted(single) == [0] * (count - 1) + [1]


@given(
    st.integers(min_value=0, max_value=120).flatmap(
        lambda n: st.tuples(
            st.lists(st.text(), min_size=n, max_size=n),
            st.lists(
                st.tuples(
                    st.from_regex(r"[A-Za-z0-9_-]+", fullmatch=True),
                    st.text(),
                    st.lists(st.integers(min_value=0, max_value=10**12), min_size=n, max_size=n),
                ),
                max_size=6,
            ),
        )
    ),
    st.text(),
)
def test_stacked_bars_is_always_well_formed(data, title):
    """Any days, labels and non-negative counts give a parseable SVG whose segment <title>s match the non-zero data."""
    labels, series = data
    root = parse(stacked_bars(labels, series, title=title))
    drawn = len(root.findall(".//s:g[@class='bars']/s:rect", NS))
    assert drawn == sum(1 for _, _, values in series for v in values if v > 0)
    assert len(root.findall("s:text[@class='x-label']", NS)) <= 12 if drawn else True
