"""The invoices page (``/invoices`` and its ``.json`` and ``.csv`` twins): every invoice the store read, searched by
seller and number, buyer, recipient, issue date, reception period and current lifecycle status, each linking to its
own page (``/invoices/{flow_id}/{idx}`` and its ``.json`` twin: its lifecycle timeline) and to its flow.

One function returns the page's data; the HTML, JSON and CSV are renderings of it. Reads through
:mod:`edi.browse.invoices` (scoped to the account's sender); raises what :mod:`edi.web.app` maps to answers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edi.browse import invoices as browse
from edi.lifecycle.labels import label
from edi.web import render
from edi.web.app import Console, Visitor, twin
from edi.web.pages import Handler, decode_cursor, encode_cursor, export_limit, page_limit, protected

CURSOR_KIND = "invoices"


def invoices_list(console: Console) -> Handler:
    """GET /invoices, /invoices.json, /invoices.csv: the same filters, the same rows (the CSV every match)."""

    def handler(request: Request, visitor: Visitor) -> Response:
        params = dict(request.query_params)
        filters = browse.parse_invoice_filters(params)
        key = decode_cursor(console, params.get("cursor"), CURSOR_KIND, browse.KEY)
        after = browse.check_key(key) if key else None
        kind = twin(request)
        if kind == ".csv":
            limit = export_limit(params.get("limit"))
            every = browse.iter_invoices(console.reader, visitor.scope, filters, after=after, limit=limit)
            return render.csv_stream(browse.COLUMNS, every, "invoices.csv")
        rows, last = browse.invoices_page(
            console.reader, visitor.scope, filters, after=after, limit=page_limit(console, request)
        )
        cursor = encode_cursor(console, last, CURSOR_KIND)
        if kind == ".json":
            return render.as_json({"invoices": rows, "next": cursor})
        query = filters.query()
        if params.get("limit"):
            query["limit"] = params["limit"]
        return console.page(
            request,
            "invoices.html",
            {
                "invoices": rows,
                "next": cursor,
                "query": query,
                "params": params,
                "statuses": [(s, label(s)) for s in browse.STATUSES],
                "senders": [] if visitor.scope else [s.id for s in console.settings.senders],
                "first_page": after is None,
            },
        )

    return handler


def invoice_page(console: Console) -> Handler:
    """GET /invoices/{flow_id}/{idx} and its .json twin: one invoice, its current status and its lifecycle."""

    def handler(request: Request, visitor: Visitor) -> Response:
        params = request.path_params
        found = browse.invoice(console.reader, visitor.scope, params["flow_id"], params["idx"])
        if twin(request) == ".json":
            return render.as_json(found)
        return console.page(request, "invoice.html", found)

    return handler


def routes(console: Console) -> list[BaseRoute]:
    """The invoices page and its twins, and each invoice's page and its twin."""
    page = protected(console, invoices_list(console))
    one = protected(console, invoice_page(console))
    return [
        Route("/invoices", page),
        Route("/invoices.json", page),
        Route("/invoices.csv", page),
        Route("/invoices/{flow_id}/{idx:int}.json", one),
        Route("/invoices/{flow_id}/{idx:int}", one),
    ]
