"""The webhook routes (edi.api.webhooks): list, create, delete, each client its own; callbacks only where the operator
allows; the signing key given once and never stored."""

from __future__ import annotations

import base64
import json
import stat
import uuid
from typing import Any

import pytest

from edi.api.signing import KEY_FILE
from tests.api.conftest import BASE, Service
from tests.conftest import REPO
from tests.hook_server import HookServer

HOOKS = f"{BASE}/v1/webhooks"
SPEC = REPO.parent / "shared" / "specs" / "afnor-flow-service-1.3.0.json"


def test_with_no_allowed_host_every_callback_is_refused(service: Service) -> None:
    """By default ([api] webhook_allowed_hosts = []) a webhook cannot be made: 400 saying the operator allows no
    host, and nothing is stored."""
    client = service.add_client("erp")
    answer = service.http.post(
        HOOKS, json={"callbackUrl": "https://erp.example.fr/hook"}, headers=service.headers(client)
    )
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "INVALID_REQUEST"
    assert "webhook_allowed_hosts" in answer.json()["errorMessage"]
    listed = service.http.get(HOOKS, headers=service.headers(client)).json()
    assert listed == {"count": 0, "webhookIds": [], "webhooks": []}


def test_create_list_delete(hooked: Service, hooks: HookServer) -> None:
    """POST gives 201 {webhookId (a UUID), signingKey (256 bits, base64), createdAt}; GET lists it with its
    filters (count, webhookIds and webhooks, no signing key); DELETE is 204, then 404."""
    client = hooked.add_client("erp")
    headers = hooked.headers(client)
    asked = {"callbackUrl": hooks.url(), "flowTypes": ["CustomerInvoice"], "flowDirection": "Out", "ackStatus": "Error"}
    made = hooked.http.post(HOOKS, json=asked, headers=headers)
    assert made.status_code == 201, made.text
    body = made.json()
    assert set(body) == {"webhookId", "signingKey", "createdAt"}
    assert str(uuid.UUID(body["webhookId"])) == body["webhookId"]
    assert len(base64.b64decode(body["signingKey"], validate=True)) == 32
    listed = hooked.http.get(HOOKS, headers=headers).json()
    assert listed["count"] == 1 and listed["webhookIds"] == [body["webhookId"]]
    assert listed["webhooks"] == [{"webhookId": body["webhookId"], "createdAt": body["createdAt"], **asked}]
    gone = hooked.http.delete(f"{HOOKS}/{body['webhookId']}", headers=headers)
    assert gone.status_code == 204 and gone.content == b""
    again = hooked.http.delete(f"{HOOKS}/{body['webhookId']}", headers=headers)
    assert again.status_code == 404 and again.json()["errorCode"] == "MISSING_RESOURCE"
    assert hooked.http.get(HOOKS, headers=headers).json()["count"] == 0


def test_the_list_answers_the_standards_schema(hooked: Service, hooks: HookServer) -> None:
    """The list validates against the standard's WebhookListResponse as written (its required webhookIds) and each
    item against its Webhook schema; the creation against WebhookIdParam."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    if not SPEC.is_file():
        pytest.skip(f"the standard's OpenAPI file is not at {SPEC}")
    components = json.loads(SPEC.read_text(encoding="utf-8"))["components"]
    client = hooked.add_client("erp")
    headers = hooked.headers(client)
    made = hooked.http.post(HOOKS, json={"callbackUrl": hooks.url(), "flowTypes": []}, headers=headers)
    listed = hooked.http.get(HOOKS, headers=headers).json()

    def check(instance: object, schema: dict[str, Any]) -> None:
        jsonschema_rs.validate({**schema, "components": components}, instance)

    check(listed, components["responses"]["WebhookListResponse"]["content"]["application/json"]["schema"])
    check(made.json(), {"$ref": "#/components/schemas/WebhookIdParam"})
    check(listed["webhooks"][0], {"$ref": "#/components/schemas/Webhook"})


def test_each_client_sees_and_deletes_only_its_own(hooked: Service, hooks: HookServer) -> None:
    """Another client (of the same sender or not) does not list a client's webhook, and deleting it is 404 as for an
    unknown id; the webhook stays."""
    owner, same_sender, other = hooked.add_client("erp"), hooked.add_client("erp2"), hooked.add_client("ops", "opdemat")
    made = hooked.http.post(HOOKS, json={"callbackUrl": hooks.url()}, headers=hooked.headers(owner)).json()
    for stranger in (same_sender, other):
        headers = hooked.headers(stranger)
        assert hooked.http.get(HOOKS, headers=headers).json()["count"] == 0
        refused = hooked.http.delete(f"{HOOKS}/{made['webhookId']}", headers=headers)
        unknown = hooked.http.delete(f"{HOOKS}/{uuid.uuid4()}", headers=headers)
        assert refused.status_code == unknown.status_code == 404
        assert refused.json() == unknown.json()
    assert hooked.http.get(HOOKS, headers=hooked.headers(owner)).json()["count"] == 1


def test_what_a_webhook_may_not_call(hooked: Service, hooks: HookServer) -> None:
    """A host (or port) not allowed, plain http to a host that is not a loopback address, a name that resolves to
    loopback, credentials in the URL, a relative URL: each 400 with a message that says why."""
    client = hooked.add_client("erp")
    headers = hooked.headers(client)
    cases = {
        "https://erp.example.fr/hook": "not a host the operator allows",
        f"http://127.0.0.1:{hooks.port + 1}/hook": "not a host the operator allows",
        f"http://localhost:{hooks.port}/hook": "not a host the operator allows",
        f"http://user:pw@127.0.0.1:{hooks.port}/hook": "user or a password",
        "/hook": "absolute https:// URL",
        "ftp://127.0.0.1/x": "absolute https:// URL",
    }
    for url, said in cases.items():
        answer = hooked.http.post(HOOKS, json={"callbackUrl": url}, headers=headers)
        assert answer.status_code == 400, url
        assert said in answer.json()["errorMessage"], (url, answer.json())
    assert hooked.http.get(HOOKS, headers=headers).json()["count"] == 0


def test_bad_bodies_are_400_with_what_is_wrong(hooked: Service, hooks: HookServer) -> None:
    """A missing callbackUrl is MISSING_REQUIRED_FIELD; an unknown field, flow type, direction or ackStatus (Pending
    included: it would never fire), a body that is not a JSON object: INVALID_REQUEST."""
    headers = hooked.headers(hooked.add_client("erp"))
    url = hooks.url()
    missing = hooked.http.post(HOOKS, json={"flowTypes": []}, headers=headers)
    assert (missing.status_code, missing.json()["errorCode"]) == (400, "MISSING_REQUIRED_FIELD")
    for body, said in (
        ({"callbackUrl": url, "callback": {"url": url}}, "unknown field callback"),
        ({"callbackUrl": url, "flowTypes": ["Invoice"]}, "flowTypes"),
        ({"callbackUrl": url, "flowTypes": "CustomerInvoice"}, "flowTypes"),
        ({"callbackUrl": url, "flowDirection": "Both"}, "flowDirection"),
        ({"callbackUrl": url, "ackStatus": "Pending"}, "never fire"),
        ({"callbackUrl": url, "ackStatus": "ok"}, "ackStatus"),
        ([url], "not a JSON object"),
    ):
        answer = hooked.http.post(HOOKS, json=body, headers=headers)
        assert (answer.status_code, answer.json()["errorCode"]) == (400, "INVALID_REQUEST"), body
        assert said in answer.json()["errorMessage"]
    not_json = hooked.http.post(HOOKS, content=b"{", headers={**headers, "Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert hooked.http.delete(f"{HOOKS}/not-a-uuid", headers=headers).status_code == 400


def test_webhooks_need_a_token(hooked: Service, hooks: HookServer) -> None:
    """Without a token, each webhook route is 401 MISSING_TOKEN."""
    for answer in (
        hooked.http.get(HOOKS),
        hooked.http.post(HOOKS, json={"callbackUrl": hooks.url()}),
        hooked.http.delete(f"{HOOKS}/{uuid.uuid4()}"),
    ):
        assert (answer.status_code, answer.json()["errorCode"]) == (401, "MISSING_TOKEN")


def test_the_signing_key_is_not_in_the_store(hooked: Service, hooks: HookServer) -> None:
    """The signing key is derived from the workspace's key file (made once, mode 0600): neither it nor anything it
    is made from is in the store; a second webhook gets another key."""
    headers = hooked.headers(hooked.add_client("erp"))
    first = hooked.http.post(HOOKS, json={"callbackUrl": hooks.url()}, headers=headers).json()
    second = hooked.http.post(HOOKS, json={"callbackUrl": hooks.url("/other")}, headers=headers).json()
    assert first["signingKey"] != second["signingKey"]
    key_file = hooked.workspace.root / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    master = key_file.read_bytes()
    stored = b"".join(
        p.read_bytes() for p in hooked.workspace.root.glob("tracking.sqlite*") if p.name != "tracking.sqlite-writers"
    )
    for secret in (base64.b64decode(first["signingKey"]), first["signingKey"].encode(), master):
        assert secret not in stored


def test_a_client_has_at_most_twenty_webhooks(hooked: Service, hooks: HookServer) -> None:
    """The 21st webhook of a client is refused (400), the others stay."""
    headers = hooked.headers(hooked.add_client("erp"))
    for i in range(20):
        made = hooked.http.post(HOOKS, json={"callbackUrl": hooks.url(f"/h{i}")}, headers=headers)
        assert made.status_code == 201
    refused = hooked.http.post(HOOKS, json={"callbackUrl": hooks.url()}, headers=headers)
    assert refused.status_code == 400 and "at most 20" in refused.json()["errorMessage"]
    assert hooked.http.get(HOOKS, headers=headers).json()["count"] == 20
