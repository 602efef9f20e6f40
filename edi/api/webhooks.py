"""The Flow Service's webhooks (XP Z12-013 Annex A, tag Webhook): a client subscribes to its own sender's flows.

- ``GET {base}/v1/webhooks``: the client's own webhooks, ``{count, webhookIds, webhooks}`` (the standard requires
  ``webhookIds`` and defines ``webhooks``: both are given; the ``signingKey`` only at creation).
- ``POST {base}/v1/webhooks`` ``{callbackUrl, flowTypes, flowDirection, ackStatus}``: 201 ``{webhookId (a UUID),
  signingKey (256 bits, base64), createdAt}``; a callback the operator does not allow (:mod:`edi.api.callbacks`), an
  ``ackStatus`` of ``Pending`` (a webhook fires when a flow is acknowledged: it would never fire), an unknown field
  or value: 400 with the standard's Error body saying why.
- ``DELETE {base}/v1/webhooks/{webhookUid}``: 204; another client's webhook is 404 as an unknown one is; its events
  not sent yet are never sent.

Reads the store through the app's reader, writes ``api_webhooks`` (and the events of a deleted webhook) through
:meth:`edi.api.app.Api.store`, makes the workspace's webhook key on the first webhook (:mod:`edi.api.signing`).
Raises :class:`edi.api.errors.ApiError` for what it refuses.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from edi.accounts import record_action
from edi.api import signing
from edi.api.app import Api, answer, threaded
from edi.api.callbacks import CallbackRefused, check_url
from edi.api.clients import ApiClient
from edi.api.errors import INVALID_REQUEST, MISSING_REQUIRED_FIELD, MISSING_RESOURCE, ApiError
from edi.api.standard import FLOW_DIRECTIONS, FLOW_TYPES
from edi.clock import iso
from edi.tracking import Tracking

ACK_STATUSES = ("Ok", "Error")  # Pending is the standard's too, refused: no webhook fires before the acknowledgement
FIELDS = ("callbackUrl", "flowTypes", "flowDirection", "ackStatus")
MAX_BODY = 16 * 1024
MAX_WEBHOOKS = 20  # per client


def _refuse(message: str, code: str = INVALID_REQUEST) -> ApiError:
    return ApiError(400, code, message)


def parse(body: bytes) -> dict[str, Any]:
    """The webhook a POST body asks for: ``callback_url``, ``flow_types`` (a list), ``flow_direction`` and
    ``ack_status`` (None: any); raises :class:`ApiError` 400 for anything else."""
    if len(body) > MAX_BODY:
        raise _refuse(f"the body is longer than {MAX_BODY} bytes")
    try:
        given = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _refuse("the body is not JSON: send {callbackUrl, flowTypes, flowDirection, ackStatus}") from None
    if not isinstance(given, dict):
        raise _refuse("the body is not a JSON object: send {callbackUrl, flowTypes, flowDirection, ackStatus}")
    unknown = sorted(str(k) for k in given if k not in FIELDS)
    if unknown:
        raise _refuse(f"unknown field {', '.join(unknown)} (a webhook has {', '.join(FIELDS)})")
    url = given.get("callbackUrl")
    if url is None:
        raise _refuse("callbackUrl is required", MISSING_REQUIRED_FIELD)
    if not isinstance(url, str):
        raise _refuse("callbackUrl must be a string")
    types = given.get("flowTypes")
    if types is None:
        types = []
    if not isinstance(types, list) or not all(isinstance(t, str) and t in FLOW_TYPES for t in types):
        raise _refuse(f"flowTypes must be a list of the standard's flow types ({', '.join(FLOW_TYPES)})")
    direction = given.get("flowDirection")
    if direction is not None and direction not in FLOW_DIRECTIONS:
        raise _refuse("flowDirection must be In or Out (or left out: both)")
    status = given.get("ackStatus")
    if status == "Pending":
        raise _refuse("ackStatus Pending would never fire: a webhook is called when a flow is acknowledged (Ok, Error)")
    if status is not None and status not in ACK_STATUSES:
        raise _refuse("ackStatus must be Ok or Error (or left out: both)")
    return {
        "callback_url": url,
        "flow_types": list(dict.fromkeys(types)),
        "flow_direction": direction,
        "ack_status": status,
    }


def create(store: Tracking, client: ApiClient, asked: Mapping[str, Any], key: bytes, at: datetime) -> dict[str, str]:
    """Store a webhook of ``client``; returns the standard's WebhookIdParam (its signing key included)."""
    webhook_id = str(uuid.uuid4())
    with store.transaction():
        (count,) = store.db.conn.execute(
            "SELECT count(*) FROM api_webhooks WHERE client_id = ?", [client.client_id]
        ).fetchone()
        if count >= MAX_WEBHOOKS:
            raise _refuse(f"a client has at most {MAX_WEBHOOKS} webhooks: delete one first")
        store.db.conn.execute(
            "INSERT INTO api_webhooks (webhook_id, client_id, callback_url, flow_types, flow_direction, ack_status, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                webhook_id,
                client.client_id,
                asked["callback_url"],
                json.dumps(asked["flow_types"]),
                asked["flow_direction"],
                asked["ack_status"],
                iso(at),
            ],
        )
    record_action(store, at, f"api:{client.name}", "webhooks.create", webhook_id, str(asked["callback_url"])[:200])
    return {
        "webhookId": webhook_id,
        "signingKey": signing.encoded(signing.signing_key(key, webhook_id)),
        "createdAt": iso(at),
    }


def listing(conn: sqlite3.Connection, client: ApiClient) -> list[dict[str, Any]]:
    """The client's webhooks, oldest first, as the standard's Webhook (without the signing key)."""
    rows = conn.execute(
        "SELECT webhook_id, created_at, callback_url, flow_types, flow_direction, ack_status FROM api_webhooks "
        "WHERE client_id = ? ORDER BY created_at, webhook_id",
        [client.client_id],
    ).fetchall()
    found = []
    for webhook_id, created_at, url, types, direction, status in rows:
        hook: dict[str, Any] = {"webhookId": webhook_id, "createdAt": created_at, "callbackUrl": url}
        hook["flowTypes"] = json.loads(types or "[]")
        if direction is not None:
            hook["flowDirection"] = direction
        if status is not None:
            hook["ackStatus"] = status
        found.append(hook)
    return found


def delete(store: Tracking, client: ApiClient, webhook_id: str, at: datetime) -> bool:
    """Delete the client's webhook and drop its events not sent yet; False when the client has none of that id."""
    with store.transaction():
        gone = store.db.conn.execute(
            "DELETE FROM api_webhooks WHERE webhook_id = ? AND client_id = ?", [webhook_id, client.client_id]
        ).rowcount
        if gone:
            store.db.conn.execute(
                "UPDATE api_webhook_events SET state = 'skipped', next_attempt_at = NULL, last_error = ? "
                "WHERE webhook_id = ? AND state = 'queued'",
                [f"{iso(at)}: the webhook was deleted", webhook_id],
            )
    if gone:
        record_action(store, at, f"api:{client.name}", "webhooks.delete", webhook_id)
    return bool(gone)


def _list(api: Api) -> Any:
    def call(request: Request) -> Response:
        client = api.client(request)
        with api.reader.reading():
            hooks = listing(api.reader.connection(), client)
        return answer({"count": len(hooks), "webhookIds": [h["webhookId"] for h in hooks], "webhooks": hooks})

    return threaded(call)


def _create(api: Api) -> Any:
    async def endpoint(request: Request) -> Response:
        client = await run_in_threadpool(api.client, request)  # before the body is read
        body = await request.body()
        result: Response = await run_in_threadpool(_created, api, client, body)
        return result

    return endpoint


def _created(api: Api, client: ApiClient, body: bytes) -> Response:
    asked = parse(body)
    try:
        check_url(asked["callback_url"], api.settings.api.webhook_allowed_hosts)
    except CallbackRefused as exc:
        raise _refuse(f"callbackUrl refused: {exc}") from None
    key = signing.workspace_key(api.layout, make=True)
    assert key is not None
    with api.store() as store:
        made = create(store, client, asked, key, api.now())
    return answer(made, 201)


def _delete(api: Api) -> Any:
    def call(request: Request) -> Response:
        client = api.client(request)
        given = str(request.path_params["webhook_uid"])
        try:
            webhook_id = str(uuid.UUID(given))
        except ValueError:
            raise _refuse("webhookUid is not a UUID") from None
        with api.store() as store:
            if not delete(store, client, webhook_id, api.now()):
                raise ApiError(404, MISSING_RESOURCE, "no webhook of yours has this id")
        return Response(status_code=204)

    return threaded(call)


def routes(api: Api) -> list[BaseRoute]:
    """The webhook routes, under the base path."""
    listing, creating = _list(api), _create(api)

    async def webhooks(request: Request) -> Response:  # one route: a 405's Allow names both methods
        answer: Response = await (creating if request.method == "POST" else listing)(request)
        return answer

    return [
        Route("/v1/webhooks", webhooks, methods=["GET", "POST"]),
        Route("/v1/webhooks/{webhook_uid}", _delete(api), methods=["DELETE"]),
    ]
