"""The rules pages: ``/rules`` (every rule that fired over a period, most findings first, with ``.json`` and ``.csv``
twins) and ``/rules/{rule_id}`` (one rule: its text, layer, rule set versions, findings per day and per sender, the
latest flows that broke it; ``.json`` twin).

A rule id comes from the URL and may be anything: one that never fired on the account's flows answers 404, as an
unknown one. Reads through :mod:`edi.browse.rules` (scoped to the account's sender); raises what
:mod:`edi.web.app` maps to answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edi.browse import rules as browse
from edi.browse.flows import period_bounds
from edi.clock import iso
from edi.web import render
from edi.web.app import Console, Visitor, twin
from edi.web.pages import Handler, protected

DEFAULT_PERIOD = "30d"
CSV_COLUMNS = ("rule", "layer", "severity", "findings", "fatal", "flows", "versions", "last_flow", "message")


def period_of(params: Mapping[str, str], now: datetime) -> tuple[dict[str, str], datetime | None, datetime | None]:
    """The period asked for (``period``, or ``from`` / ``to``; 30 days when none is given), as query parameters to
    carry in links, and its bounds."""
    given = {k: params[k] for k in ("period", "from", "to") if params.get(k, "").strip()}
    if not given:
        given = {"period": DEFAULT_PERIOD}
    since, until = period_bounds(given, now)
    if given.get("period", "custom") != "custom":  # a named period ignores from and to
        given = {"period": given["period"]}
    return given, since, until


def _period_json(query: Mapping[str, str], since: datetime | None, until: datetime | None) -> dict[str, Any]:
    return {**query, "since": iso(since) if since else None, "until": iso(until) if until else None}


def rules_list(console: Console) -> Handler:
    """GET /rules, /rules.json, /rules.csv: every rule that fired over the period, most findings first."""

    def handler(request: Request, visitor: Visitor) -> Response:
        query, since, until = period_of(dict(request.query_params), console.now())
        rows = browse.rules_summary(console.reader, visitor.scope, since, until)
        kind = twin(request)
        if kind == ".csv":
            return render.csv_stream(CSV_COLUMNS, rows, "rules.csv")
        if kind == ".json":
            return render.as_json({"period": _period_json(query, since, until), "rules": rows})
        return console.page(
            request,
            "rules.html",
            {
                "rules": rows,
                "query": query,
                "params": dict(request.query_params) | query,
                "total": sum(r["findings"] for r in rows),
            },
        )

    return handler


def rule_page(console: Console, *, as_json: bool) -> Handler:
    """GET /rules/{rule_id} and /rules/{rule_id}.json: one rule over the period; 404 when it never fired on the
    account's flows."""

    def handler(request: Request, visitor: Visitor) -> Response:
        rule_id = request.path_params["rule_id"]
        now = console.now()
        query, since, until = period_of(dict(request.query_params), now)
        found = browse.rule(console.reader, visitor.scope, rule_id, since, until, today=now.date())
        if found is None:
            raise HTTPException(404, f"no rule {rule_id!r} fired on the flows this account sees")
        if as_json:
            return render.as_json({"period": _period_json(query, since, until), **found})
        return console.page(
            request,
            "rule.html",
            {
                "rule": found,
                "query": query,
                "params": dict(request.query_params) | query,
                "busiest": max((d["findings"] for d in found["days"]), default=0),
            },
        )

    return handler


def routes(console: Console) -> list[BaseRoute]:
    """The rules pages and their twins (a rule id may hold any character, a slash too)."""
    listing = protected(console, rules_list(console))
    return [
        Route("/rules", listing),
        Route("/rules.json", listing),
        Route("/rules.csv", listing),
        Route("/rules/{rule_id:path}.json", protected(console, rule_page(console, as_json=True))),
        Route("/rules/{rule_id:path}", protected(console, rule_page(console, as_json=False))),
    ]
