"""A deposit survives the server's death at any point (edi.deposits): a live `edi serve` (the real executable) is
killed right after its 202, or at an injected crash between the steps of a deposit, and `edi batch` then processes
what the 202 promised under its flowId, once; what was never promised leaves nothing behind. Faults that raise
instead of killing are answered 503 (nothing deposited) or, once the file is in the inbox, processed all the same."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from edi.web.app import create_app
from tests.api.conftest import BASE, Service
from tests.api.live import INFO, UBL, Live, edi_batch
from tests.conftest import DEFAULT_CONFIG, Workspace, store_rows


@pytest.fixture
def live(workspace: Workspace) -> Iterator[Callable[[str], Live]]:
    """Start live servers of the workspace; each is killed at the end if still alive."""
    started: list[Live] = []

    def start(faults: str = "") -> Live:
        started.append(Live(workspace, faults))
        return started[-1]

    yield start
    for server in started:
        server.kill()


def acks(ws: Workspace) -> list[dict[str, Any]]:
    return [json.loads(p.read_bytes()) for p in ws.acks("acme")]


def pending(ws: Workspace) -> list[str]:
    """Files in tmp/deposits and in acme's inbox."""
    deposits = ws.root / "tmp" / "deposits"
    inbox = ws.inbox("acme").iterdir()
    return sorted([f"tmp/{p.name}" for p in deposits.glob("*")] + [f"inbox/{p.name}" for p in inbox])


def test_a_server_killed_right_after_its_202_loses_nothing(workspace: Workspace, live: Callable[[str], Live]) -> None:
    """kill -9 of `edi serve` right after a 202, then `edi batch`: the flow is processed under the 202's flowId,
    with exactly one acknowledgement, and nothing is left in the inbox or tmp/deposits."""
    server = live("")
    answer = server.deposit(UBL.read_bytes())
    server.kill()
    assert answer.status_code == 202, answer.text
    flow_id = answer.json()["flowId"]
    edi_batch(workspace)
    (ack,) = acks(workspace)
    assert ack["flow_id"] == flow_id and ack["status"] == "IN_INTEGRE" and ack["file_name"] == "F-2026-001.xml"
    assert pending(workspace) == []
    assert [r["flow_id"] for r in store_rows(workspace, "SELECT flow_id FROM flows")] == [flow_id]


@pytest.mark.parametrize(
    ("point", "left"),
    [("deposit.before_record", "tmp"), ("deposit.after_record", "tmp"), ("deposit.after_rename", "inbox")],
)
def test_a_server_killed_in_the_middle_of_a_deposit_loses_nothing(
    workspace: Workspace, live: Callable[[str], Live], point: str, left: str
) -> None:
    """A crash (SIGKILL at an injected point) before the row is committed leaves an unrecorded file that `edi batch`
    removes: no flow. A crash after the commit (before the rename into the inbox, or after it, before the answer)
    leaves a recorded file that `edi batch` processes under the row's flow id, once. The client, which got no
    answer, sends the flow again: it is processed too, and called a duplicate of the first when there was one."""
    server = live(f"{point}=crash")
    with pytest.raises(httpx.TransportError):
        server.deposit(UBL.read_bytes())
    server.kill()
    (where,) = pending(workspace)
    assert where.startswith(f"{left}/")
    recorded = [r["flow_id"] for r in store_rows(workspace, "SELECT flow_id FROM api_deposits")]
    assert len(recorded) == (0 if point == "deposit.before_record" else 1)
    edi_batch(workspace)
    assert pending(workspace) == []
    assert [a["flow_id"] for a in acks(workspace)] == recorded
    retry = live("").deposit(UBL.read_bytes())
    assert retry.status_code == 202, retry.text
    edi_batch(workspace)
    again = {a["flow_id"]: a for a in acks(workspace)}[retry.json()["flowId"]]
    assert again["duplicate_of"] == (recorded[0] if recorded else None)
    assert len(acks(workspace)) == len(recorded) + 1


@pytest.mark.parametrize(
    "fault",
    ["write.deposit=enospc", "deposit.before_record=raise", "deposit.after_record=raise", "place.before_rename=eio"],
)
def test_a_failure_before_the_file_is_in_the_inbox_is_503_and_deposits_nothing(
    service: Service, inject: Callable[[str], None], fault: str
) -> None:
    """A disk or store failure before the rename into the inbox (a full disk while the bytes arrive; durable bytes,
    row committed or not) is answered 503 RESOURCE_ERROR: the row is taken back, the file removed."""
    client = service.add_client("erp")
    headers = service.headers(client)
    inject(fault)
    answer = service.http.post(
        f"{BASE}/v1/flows",
        headers=headers,
        files={"flowInfo": (None, INFO, "application/json"), "file": ("f", UBL.read_bytes(), "application/xml")},
    )
    assert answer.status_code == 503 and answer.json()["errorCode"] == "RESOURCE_ERROR"
    assert pending(service.workspace) == []
    assert store_rows(service.workspace, "SELECT * FROM api_deposits") == []


def test_a_failure_after_the_file_is_in_the_inbox_still_processes_it_under_its_id(
    service: Service, inject: Callable[[str], None]
) -> None:
    """A failure once the file is in the inbox and recorded (before the answer) is a 500, and the flow is
    processed all the same, under the recorded id."""
    client = service.add_client("erp")
    headers = service.headers(client)
    inject("deposit.after_rename=raise")
    with TestClient(create_app(service.workspace.settings), raise_server_exceptions=False) as http:
        answer = http.post(
            f"{BASE}/v1/flows",
            headers=headers,
            files={"flowInfo": (None, INFO, "application/json"), "file": ("f", UBL.read_bytes(), "application/xml")},
        )
    inject("")
    assert answer.status_code == 500 and answer.json()["errorCode"] == "INTERNAL_ERROR"
    (row,) = store_rows(service.workspace, "SELECT flow_id FROM api_deposits")
    edi_batch(service.workspace)
    assert [a["flow_id"] for a in acks(service.workspace)] == [row["flow_id"]]


def test_a_5_gb_upload_stops_at_the_limit(make_workspace: Callable[..., Workspace]) -> None:
    """A live server with max_flow_bytes 1 MiB refuses a 5 GB upload (413, or the connection closed under the
    client) having read a few MiB of it, not 5 GB; it keeps nothing and goes on answering."""
    ws = make_workspace(DEFAULT_CONFIG + "\n[limits]\nmax_flow_bytes = 1048576\n")
    server = Live(ws)
    try:
        sent = 0
        boundary = "edi-crash-test-boundary"
        chunk = b"<" + b"x" * (1024 * 1024 - 1)

        def body() -> Iterator[bytes]:
            nonlocal sent
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="flowInfo"\r\n'
                f"Content-Type: application/json\r\n\r\n{INFO}\r\n"
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.xml"\r\n'
                "Content-Type: application/xml\r\n\r\n"
            ).encode()
            for _ in range(5 * 1024):  # 5 GiB
                sent += len(chunk)
                yield chunk
            yield f"\r\n--{boundary}--\r\n".encode()

        headers = {**server.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        try:
            answer = httpx.post(f"{server.url}{BASE}/v1/flows", headers=headers, content=body(), timeout=60)
            assert answer.status_code == 413 and answer.json()["errorCode"] == "FILE_SIZE_EXCEEDED"
        except httpx.TransportError:
            pass  # the server answered and closed the connection while the client was still sending
        assert sent < 64 * 1024 * 1024, f"{sent} bytes sent before the server stopped reading"
        assert httpx.get(f"{server.url}{BASE}/v1/healthcheck", timeout=10).status_code == 200
        assert pending(ws) == []
    finally:
        server.kill()


def test_an_upload_in_progress_is_not_in_the_inbox(workspace: Workspace, live: Callable[[str], Live]) -> None:
    """While a live server is still receiving the file part, its bytes are in tmp/deposits only: the inbox (what
    the scanner sees) is empty until the rename, after which the file is there and tmp/deposits is empty."""
    server = live("")
    boundary = "b0undary"
    halfway, go_on = threading.Event(), threading.Event()
    data = UBL.read_bytes()

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="flowInfo"\r\n\r\n{INFO}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
        ).encode() + data[:3000]
        halfway.set()
        go_on.wait(30)
        yield data[3000:] + f"\r\n--{boundary}--\r\n".encode()

    answers: list[httpx.Response] = []
    headers = {**server.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    sender = threading.Thread(
        target=lambda: answers.append(
            httpx.post(f"{server.url}{BASE}/v1/flows", headers=headers, content=body(), timeout=60)
        )
    )
    sender.start()
    try:
        assert halfway.wait(30)
        deadline = time.monotonic() + 10
        while not pending(workspace) and time.monotonic() < deadline:  # the server has the first bytes soon
            time.sleep(0.05)
        (during,) = pending(workspace)
        assert during.startswith("tmp/") and list(workspace.inbox("acme").iterdir()) == []
    finally:
        go_on.set()
        sender.join(60)
    (answer,) = answers
    assert answer.status_code == 202, answer.text
    assert pending(workspace) == [f"inbox/{answer.json()['flowId']}_F-2026-001.xml"]
