"""The dashboard (``/``, ``/dashboard.json``, ``/dashboard.csv``): what came in over a period and what needs an
operator now, for the account's scope.

One function returns the page's data (:func:`edi.browse.dashboard.dashboard`); the JSON twin is that data, the CSV
twin its table of days and statuses, the HTML page draws it (cards, SVG charts from :mod:`edi.web.charts`, tables
whose counts link to the flows they count). Reads through :mod:`edi.browse`; raises
:class:`edi.errors.BadQuery` for a period that cannot be read (a 400).
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edi.browse import dashboard as board
from edi.web import charts, render
from edi.web.app import Console, Visitor, twin

CSV_COLUMNS = ("day", "status", "flows", "documents", "accepted")
LABELS = {
    "IN_INTEGRE": "Integrated",
    "IN_INTEGRE_PARTIEL": "Partly integrated",
    "IN_REJETE": "Rejected",
    "IN_EN_ATTENTE_RETRAITEMENT": "Failed (to requeue)",
    "IN_RECU": "In process",
}
CHART_WIDTH, CHART_HEIGHT = 640, 240  # half the page at 1400 pixels: the charts' text at its own size
PERIODS = (("today", "Today"), ("7d", "7 days"), ("30d", "30 days"))


def data(console: Console, visitor: Visitor, params: dict[str, str]) -> dict[str, Any]:
    """The dashboard's data for this account and query (the one function the three renderings share)."""
    now = console.now()
    span = board.period(params, now)
    return board.dashboard(
        console.reader,
        console.settings,
        console.layout,
        visitor.scope,
        span,
        now,
        charts.age_buckets,
        console.waiting_invoices,
    )


def dashboard(console: Console) -> Any:
    """GET /, /dashboard.json, /dashboard.csv."""

    def handler(request: Request, visitor: Visitor) -> Response:
        params = dict(request.query_params)
        found = data(console, visitor, params)
        kind = twin(request)
        if kind == ".json":
            return render.as_json(found)
        if kind == ".csv":
            return render.csv_stream(CSV_COLUMNS, found["by_day"], "dashboard.csv")
        return console.page(request, "dashboard.html", view(found, params, visitor))

    return handler


def view(found: dict[str, Any], params: dict[str, str], visitor: Visitor) -> dict[str, Any]:
    """What the HTML page needs beyond the data: the charts, the links, ages as people read them."""
    period = {"from": found["from"]} | ({"to": found["to"]} if found["to"] else {})
    query = {k: v for k, v in params.items() if k in ("period", "from", "to") and v}

    def flows_link(**more: str) -> str:
        return "/flows?" + urlencode(period | more)

    labels = [_day_label(d) for d in found["days"]]
    by_day: dict[str, list[int]] = {s: [0] * len(found["days"]) for s in found["statuses"]}
    accepted, rejected = [0] * len(found["days"]), [0] * len(found["days"])
    index = {d: i for i, d in enumerate(found["days"])}
    for row in found["by_day"]:
        i = index[row["day"]]
        by_day[row["status"]][i] += row["flows"]
        accepted[i] += row["accepted"]
        if row["status"] in board.FINAL:
            rejected[i] += row["documents"] - row["accepted"]
    title = _title(found)
    flows_chart = charts.stacked_bars(
        labels,
        [(s, LABELS.get(s, s), by_day[s]) for s in found["statuses"] if any(by_day[s])],
        title=f"Flows per day, by status ({title})",
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
    )
    documents_chart = charts.stacked_bars(
        labels,
        [("accepted", "Accepted", accepted), ("rejected", "Rejected", rejected)],
        title=f"Documents per day ({title})",
        empty="no documents decided in this period",
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
    )
    waiting = found["waiting"]
    waiting_chart = charts.histogram(
        list(zip(waiting["buckets"], waiting["total"], strict=True)),
        title="Age of what waits now (inboxes" + (" and spool)" if visitor.scope is None else ")"),
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
    )
    for row in found["by_sender"]:
        row["href"] = flows_link(sender=row["sender"])
    for row in found["by_queue"]:
        row["href"] = flows_link(queue=row["queue"])
    for row in found["top_rules"]:
        row["href"] = flows_link(rule=row["rule"])
        row["rule_href"] = "/rules/" + quote(str(row["rule"]), safe="")
    attention = found["attention"]
    for group in ("failed", "stuck"):
        for row in attention[group]["flows"]:
            row["href"] = "/flows/" + quote(row["flow_id"], safe="")
    for group in ("stalled", "unclaimable"):
        for row in attention[group]["files"]:
            row["age"] = _age(row["age_seconds"])
    for place in waiting["places"]:
        place["oldest"] = _age(place["oldest_seconds"])
    invoices = found["invoices_waiting"]
    invoices_chart = charts.histogram(
        list(zip(invoices["buckets"], invoices["counts"], strict=True)),
        title=f"Invoices delivered {invoices['after_days']:g}+ days ago, still without their recipient's status",
        key="invoices",
        empty="no invoice waiting",
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
    )
    invoice_hrefs = [
        "/invoices?" + urlencode({"status": "200"} | {k: v for k, v in span.items() if v})
        for span in invoices["periods"]
    ]
    return found | {
        "title": title,
        "query": query,
        "periods": PERIODS,
        "labels": LABELS,
        "flows_href": flows_link(),
        "failed_href": "/flows?" + urlencode({"status": "IN_EN_ATTENTE_RETRAITEMENT"}),
        "status_hrefs": {s: flows_link(status=s) for s in found["statuses"]},
        "flows_chart": flows_chart,
        "documents_chart": documents_chart,
        "waiting_chart": waiting_chart,
        "invoices_chart": invoices_chart,
        "invoice_hrefs": invoice_hrefs,
        "waiting_total": sum(waiting["total"]),
        "form": {k: params.get(k, "") for k in ("from", "to")},
        "custom": found["period"] == "custom",
        "operator": visitor.scope is None,
        "stalled_after": _age(waiting["stalled_after_seconds"]),
    }


def _title(found: dict[str, Any]) -> str:
    """The period in words: "today", "last 7 days", "2026-11-01 to 2026-11-30"."""
    names = {"today": "today", "7d": "last 7 days", "30d": "last 30 days"}
    if found["period"] in names:
        return names[found["period"]]
    days = found["days"]
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"


def _day_label(day: str) -> str:
    return date.fromisoformat(day).strftime("%d %b")


def _age(seconds: float | None) -> str:
    """A duration as people read it: "45 s", "12 min", "3 h 20 min", "2 d 4 h"."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h" + (f" {s % 3600 // 60} min" if s % 3600 >= 60 else "")
    return f"{s // 86400} d" + (f" {s % 86400 // 3600} h" if s % 86400 >= 3600 else "")


def routes(console: Console) -> list[BaseRoute]:
    """The dashboard's routes."""
    from edi.web.pages import protected

    page = protected(console, dashboard(console))
    return [Route("/", page), Route("/dashboard.json", page), Route("/dashboard.csv", page)]
