"""The dashboard (``/`` and its twins): what came in over a period and what needs an operator now.

Reads through :mod:`edi.browse`; raises what :mod:`edi.web.app` maps to answers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edi.browse import scoped
from edi.browse.flows import period_bounds, stamp
from edi.clock import iso
from edi.web import render
from edi.web.app import Console, Visitor, twin


def dashboard(console: Console) -> object:
    """GET /, /dashboard.json: flows by status over the period."""

    def handler(request: Request, visitor: Visitor) -> Response:
        params = dict(request.query_params)
        params.setdefault("period", "7d")
        since, until = period_bounds(params, console.now())
        cond, args = scoped(visitor.scope)
        where, values = [cond], list(args)
        if since:
            where.append("flow_id >= ? AND received_at >= ?")
            values += [stamp(since), iso(since)]
        if until:
            where.append("received_at < ?")
            values.append(iso(until))
        rows = console.reader.rows(
            f"SELECT status, count(*) AS flows FROM flows WHERE {' AND '.join(where)} GROUP BY status", values
        )
        data = {"period": params["period"], "by_status": {r["status"]: r["flows"] for r in rows}}
        if twin(request) == ".json":
            return render.as_json(data)
        return console.page(request, "dashboard.html", data)

    return handler


def routes(console: Console) -> list[BaseRoute]:
    """The dashboard's routes."""
    from edi.web.pages import protected

    page = protected(console, dashboard(console))  # type: ignore[arg-type]
    return [Route("/", page), Route("/dashboard.json", page)]
