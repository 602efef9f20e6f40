"""The API's app (edi.api.app): mounted at [api] base_path, OAuth2 client credentials, the standard's Error body,
Request-Id echoed."""

from __future__ import annotations

import base64

from tests.api.conftest import BASE, Service


def test_healthcheck_answers_200_without_a_token(service: Service) -> None:
    """GET {base}/v1/healthcheck is 200 while the store can be read, and needs no token."""
    answer = service.http.get(f"{BASE}/v1/healthcheck")
    assert answer.status_code == 200


def test_an_unknown_path_is_the_standard_error(service: Service) -> None:
    """An unknown path under the base is a JSON Error body (errorCode, errorMessage), not the console's page."""
    answer = service.http.get(f"{BASE}/v1/nothing")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["errorCode"] == "MISSING_RESOURCE"


def test_request_id_is_echoed(service: Service) -> None:
    """The Request-Id a client sends comes back in the answer; one that is not a UUID (the standard's format) is a
    400 saying so."""
    rid = "8c1b7f0e-3f0a-4b7e-9c1d-0e6c1e2a9b11"
    assert service.http.get(f"{BASE}/v1/healthcheck", headers={"Request-Id": rid}).headers["request-id"] == rid
    for bad in ("a b", "", "not-a-uuid", rid + "0"):
        answer = service.http.get(f"{BASE}/v1/healthcheck", headers={"Request-Id": bad})
        assert (answer.status_code, answer.json()["errorCode"]) == (400, "INVALID_REQUEST")
        assert "request-id" not in answer.headers


def test_a_token_from_the_basic_header_or_the_form(service: Service) -> None:
    """POST /oauth2/token gives a Bearer token for the client's id and secret, in the Basic header or the form."""
    client = service.add_client("erp")
    by_header = service.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret)
    )
    by_form = service.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": client.secret},
    )
    for answer in (by_header, by_form):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
        assert answer.headers["cache-control"] == "no-store"
    assert by_header.json()["access_token"] != by_form.json()["access_token"]


def test_a_wrong_secret_is_invalid_client(service: Service) -> None:
    """A wrong secret is 401 invalid_client (RFC 6749 §5.2), with a Basic challenge."""
    client = service.add_client("erp")
    answer = service.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, "wrong")
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic")


def test_other_grants_and_bad_headers_are_refused(service: Service) -> None:
    """Another grant type, a Basic header that is not base64, and a JSON body are refused, each with its code."""
    client = service.add_client("erp")
    other = service.http.post("/oauth2/token", data={"grant_type": "password"}, auth=(client.client_id, client.secret))
    assert (other.status_code, other.json()["error"]) == (400, "unsupported_grant_type")
    bad = service.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic !!"}
    )
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_client")
    as_json = service.http.post("/oauth2/token", json={"grant_type": "client_credentials"})
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
    doubled = service.http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_secret": client.secret},
        headers={"Authorization": "Basic " + base64.b64encode(f"{client.client_id}:{client.secret}".encode()).decode()},
    )
    assert (doubled.status_code, doubled.json()["error"]) == (400, "invalid_request")
