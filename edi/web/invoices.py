"""The invoices page (``/invoices`` and its ``.json`` and ``.csv`` twins): every invoice the store read, searched by
seller and number, buyer, recipient, issue date, reception period and current lifecycle status, each linking to its
own page (``/invoices/{flow_id}/{idx}`` and its ``.json`` twin: its lifecycle timeline) and to its flow.

One function returns the page's data; the HTML, JSON and CSV are renderings of it. Reads through
:mod:`edi.browse.invoices` (scoped to the account's sender); raises what :mod:`edi.web.app` maps to answers.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from edi import accounts
from edi.browse import invoices as browse
from edi.lifecycle import deposit
from edi.lifecycle.labels import label
from edi.lifecycle.rules import RECIPIENT_STATUSES, Order, order
from edi.lifecycle.timeline import recorded_after_decision
from edi.web import render
from edi.web.app import Console, Forbidden, Visitor, twin
from edi.web.pages import Endpoint, Handler, decode_cursor, encode_cursor, export_limit, page_limit, posted, protected

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
    """GET /invoices/{flow_id}/{idx} and its .json twin: one invoice, its current status and its lifecycle; for an
    operator, on a delivered invoice, the form that records a recipient's status."""

    def handler(request: Request, visitor: Visitor) -> Response:
        params = request.path_params
        found = browse.invoice(console.reader, visitor.scope, params["flow_id"], params["idx"])
        if twin(request) == ".json":
            return render.as_json(found)
        document = found["document"]
        history = recorded_after_decision(document.get("lifecycle") or [])
        delivered = document.get("status") == "200" and bool(document.get("recipient"))
        can_follow = [s for s in sorted(RECIPIENT_STATUSES) if order(history, s)[0] is Order.NEW]
        extra = {
            "can_set_status": visitor.user.operator and delivered and bool(can_follow),
            "recipient_statuses": [(s, label(s)) for s in can_follow],  # only those the order rules allow next
            "deposited": request.query_params.get("done") == "status",
        }
        return console.page(request, "invoice.html", {**found, **extra})

    return handler


def invoice_status(console: Console) -> Endpoint:
    """POST /invoices/{flow_id}/{idx}/status (operators, with the CSRF token): a recipient's status for a delivered
    invoice, deposited as its partner's CDAR message (:mod:`edi.lifecycle.deposit`: the next batch checks, records
    and relays it), recorded as done by whom. A status that cannot be recorded answers 409 saying why."""

    def call(request: Request, form: dict[str, str]) -> Response:
        visitor = console.require(request)
        console.check_csrf(request, visitor, form.get("csrf"))
        if not visitor.user.operator:
            raise Forbidden("only an operator account may record a recipient's status")
        flow_id, idx = request.path_params["flow_id"], request.path_params["idx"]
        found = browse.invoice(console.reader, visitor.scope, flow_id, idx)
        document = found["document"]
        invoice: dict[str, Any] = {**document, "flow_id": found["flow"]["flow_id"], "idx": idx}
        invoice["sender"] = found["flow"]["sender"]
        history = recorded_after_decision(document.get("lifecycle") or [])
        now = console.now()
        try:
            prepared = deposit.prepare(
                invoice,
                form.get("status", ""),
                console.settings.senders,
                now,
                history=history,
                reason=form.get("reason", "").strip() or None,
                text=form.get("text", "").strip() or None,
                by=visitor.user.name,
            )
            deposit.deposit(console.layout, prepared)
        except deposit.StatusRefused as exc:
            return console.page(request, "error.html", {"status": 409, "message": str(exc)}, 409)
        key = f"{invoice['flow_id']}~{idx}"
        with console.store() as store:
            accounts.record_action(store, now, visitor.user.name, "status", key, prepared.name)
        return RedirectResponse(f"/invoices/{invoice['flow_id']}/{idx}?done=status", status_code=303)

    return posted(call)


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
        Route("/invoices/{flow_id}/{idx:int}/status", invoice_status(console), methods=["POST"]),
    ]
