"""Shared fixtures of the console's tests: a workspace whose flows the real batch processed, its accounts, and a
logged-in Starlette TestClient per account.

The workspace (built once per test session: a batch takes seconds) holds every sample of ``flows/`` plus the flows
the console must show safely or act on: :data:`HOSTILE_NAME` carrying :data:`HOSTILE_INVOICE`, a name with a bidi
override and an escape sequence (:data:`BIDI_NAME`), and one acme flow that failed for edi's own reason (an injected
fault) and waits in ``failed/``. Tests that only read use :func:`shared`; a test that writes (requeue, logout,
passwords) takes :func:`writable`, a copy of it of its own. Pages added later join :data:`PROTECTED`: the access
tests of ``tests/web/test_pages.py`` run over it, and fail when an app route is missing from it.
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from starlette.testclient import TestClient

from edi import accounts, faults
from edi.config import load_settings
from edi.runner import init_workspace, run_batch
from edi.store import open_store
from edi.web.app import create_app
from flows.drop import drop
from tests.conftest import DEFAULT_CONFIG, FLOWS, FixedClock, Workspace
from tests.lifecycle_rows import add_status

PASSWORD = "secret-pass-1"
HOSTILE_TEXT = "<script>alert(1)</script> \u202eevil\x1b[31m"  # a recipient's words that must show as text
# role -> (account name, role, sender)
ACCOUNTS = {
    "operator": ("alice", "operator", None),
    "acme": ("acme-ops", "sender", "acme"),
    "opdemat": ("opdemat-ops", "sender", "opdemat"),
}
HOSTILE_NAME = "<b onmouseover=alert(1)>x.xml"
HOSTILE_INVOICE = '"><img src=x onerror=alert(1)>'
BIDI_NAME = "bill\u202egnp.\x1b[31mxml"
CONFIG = DEFAULT_CONFIG + '\n[validation]\nrules = ["xsd", "en16931"]\n'

# Every page and twin that needs a login: a path ("{flow}" stands for a flow id) and what it is ("page" answers
# HTML, "twin" JSON or CSV). A new page joins this list; test_pages.py checks that no app route is missing from it.
PROTECTED = [
    ("/", "page"),
    ("/dashboard.json", "twin"),
    ("/flows", "page"),
    ("/flows.json", "twin"),
    ("/flows.csv", "twin"),
    ("/flows/{flow}", "page"),
    ("/flows/{flow}.json", "twin"),
    ("/flows/{flow}/original", "page"),
    ("/flows/{flow}/ack.json", "twin"),
    ("/flows/{flow}/ack.xml", "page"),
    ("/dashboard.csv", "twin"),
    ("/invoices", "page"),
    ("/invoices.json", "twin"),
    ("/invoices.csv", "twin"),
    ("/invoices/{flow}/1", "page"),  # an invoice: document 1 of a flow ("{idx:int}" in the route)
    ("/invoices/{flow}/1.json", "twin"),
    ("/rules", "page"),
    ("/rules.json", "twin"),
    ("/rules.csv", "twin"),
    ("/rules/{rule}", "page"),
    ("/rules/{rule}.json", "twin"),
    ("/metrics", "twin"),
]
RULE = "BR-CO-16"  # "{rule}": a rule one of acme's sample flows breaks (16-business-rule-broken.xml)
OPERATORS_ONLY = {"/metrics"}  # a sender account gets 403 there
# the routes that need no login
PUBLIC = {"/login", "/logout", "/healthz", "/static"}


def ubl_invoice(number: str) -> bytes:
    """The acme UBL sample (integrated when processed) with another invoice number."""
    text = (FLOWS / "acme" / "01-ubl-invoice.xml").read_text(encoding="utf-8")
    old = "<cbc:ID>FA-2026-0001</cbc:ID>"
    assert text.count(old) == 1
    return text.replace(old, f"<cbc:ID>{escape(number)}</cbc:ID>").encode("utf-8")


@dataclass
class Console:
    """A workspace the batch processed, and the ids of the flows tests look at."""

    ws: Workspace
    flows: list[dict[str, Any]]

    def flow_id(self, sender: str, file_name: str) -> str:
        """The id of the flow of this sender and file name."""
        (found,) = [f["flow_id"] for f in self.flows if f["sender"] == sender and f["file_name"] == file_name]
        return str(found)

    @property
    def failed_id(self) -> str:
        """The acme flow that waits in failed/."""
        (found,) = [f["flow_id"] for f in self.flows if f["status"] == "IN_EN_ATTENTE_RETRAITEMENT"]
        return str(found)


def _inject(spec: str) -> None:
    """EDI_FAULTS for this process (read once per process: the cache is cleared)."""
    if spec:
        os.environ["EDI_FAULTS"] = spec
    else:
        os.environ.pop("EDI_FAULTS", None)
    faults._faults.cache_clear()
    faults._reached.clear()


def build(folder: Path) -> Workspace:
    """A workspace in ``folder``: every sample, the hostile flows, one failed flow, processed by the real batch;
    the accounts of :data:`ACCOUNTS`."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.toml"
    config.write_text(textwrap.dedent(CONFIG).format(directory=FLOWS / "directory.toml"), encoding="utf-8")
    settings = load_settings(config)
    init_workspace(settings)
    ws = Workspace(config, settings)
    drop(ws.root / "inbox")
    ws.drop("acme", HOSTILE_NAME, ubl_invoice(HOSTILE_INVOICE))
    ws.drop("acme", BIDI_NAME, ubl_invoice("FA-2026-BIDI"))
    run_batch(settings)
    ws.drop("acme", "will-fail.xml", ubl_invoice("FA-2026-FAIL"))
    _inject("pipeline.after_decide=raise")
    try:
        run_batch(settings)
    finally:
        _inject("")
    store = open_store(settings.workspace.layout())
    try:
        for name, role, sender in ACCOUNTS.values():
            accounts.add_user(store, name, role, PASSWORD, datetime.now(UTC), sender=sender)
    finally:
        store.close()
    return ws


def _flows(ws: Workspace) -> list[dict[str, Any]]:
    store = open_store(ws.settings.workspace.layout())
    try:
        return list(store.db.query("SELECT flow_id, sender, file_name, status FROM flows ORDER BY flow_id"))
    finally:
        store.close()


@pytest.fixture(scope="session")
def _built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("console") / "ws").config.parent


@pytest.fixture
def shared(_built: Path) -> Console:
    """The session's processed workspace, for tests that only read (logging in writes only to the audit trail)."""
    ws = Workspace(_built / "config.toml", load_settings(_built / "config.toml"))
    return Console(ws, _flows(ws))


@pytest.fixture
def writable(_built: Path, tmp_path: Path) -> Console:
    """A copy of the processed workspace that this test alone may change."""
    folder = tmp_path / "copy"
    shutil.copytree(_built, folder)
    ws = Workspace(folder / "config.toml", load_settings(folder / "config.toml"))
    return Console(ws, _flows(ws))


def csrf_of(html: str) -> str:
    """The hidden CSRF field of a page's form."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no csrf field in the page"
    return found.group(1)


def login(client: TestClient, name: str, password: str = PASSWORD) -> Any:
    """Log in as a browser would (GET the form, POST it with its token); the POST's answer."""
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": name, "password": password, "csrf": token})


@dataclass
class Site:
    """One console app over a workspace, its clock, and clients for it."""

    console: Console
    clock: FixedClock
    app: Any

    def client(self, role: str | None = None, address: str = "testclient") -> TestClient:
        """A client (a browser) from ``address``, logged in as the account of ``role`` (or not at all)."""
        client = TestClient(self.app, base_url="http://127.0.0.1", follow_redirects=False, client=(address, 50000))
        if role is not None:
            answer = login(client, ACCOUNTS[role][0])
            assert answer.status_code == 303, answer.text
        return client


def _site(console: Console, secure: bool = False) -> Iterator[Site]:
    clock = FixedClock(datetime.now(UTC))
    settings = console.ws.settings
    if secure:
        settings = replace(settings, console=replace(settings.console, secure_cookies=True))
    app = create_app(settings, clock=clock)
    yield Site(console, clock, app)
    app.state.console.reader.close()


@pytest.fixture
def site(shared: Console) -> Iterator[Site]:
    """The console over the shared workspace (an app of its own: its own clock and login brake)."""
    yield from _site(shared)


@pytest.fixture
def own_site(writable: Console) -> Iterator[Site]:
    """The console over a workspace copy of this test's own."""
    yield from _site(writable)


@pytest.fixture
def secure_site(shared: Console) -> Iterator[Site]:
    """The console over the shared workspace with ``[console] secure_cookies = true``."""
    yield from _site(shared, secure=True)


@pytest.fixture
def operator(site: Site) -> TestClient:
    """A client logged in as the operator account."""
    return site.client("operator")


@pytest.fixture
def acme(site: Site) -> TestClient:
    """A client logged in as acme's sender account."""
    return site.client("acme")


@pytest.fixture
def opdemat(site: Site) -> TestClient:
    """A client logged in as opdemat's sender account."""
    return site.client("opdemat")


@pytest.fixture
def anonymous(site: Site) -> TestClient:
    """A client that has not logged in."""
    return site.client()


@dataclass
class Lived:
    """A copy of the processed workspace whose invoices have lived on: statuses recorded after edi's decision."""

    console: Console
    refused: str  # acme's 01-ubl-invoice.xml: 204 then 210 DOUBLON with :data:`HOSTILE_TEXT`; a 211 held
    paid: str  # opdemat's 01-initech-cii-basic.xml: 204 then 211, set by an operator


@pytest.fixture(scope="module")
def lived(_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Lived:
    """The processed workspace copied once per module, with lifecycle rows in the contract's shape on two invoices
    (one per sender) and a held row that is not history yet."""
    folder = tmp_path_factory.mktemp("lived") / "ws"
    shutil.copytree(_built, folder)
    ws = Workspace(folder / "config.toml", load_settings(folder / "config.toml"))
    console = Console(ws, _flows(ws))
    database = ws.settings.workspace.layout().database
    refused = console.flow_id("acme", "01-ubl-invoice.xml")
    paid = console.flow_id("opdemat", "01-initech-cii-basic.xml")
    add_status(database, refused, 1, "204", set_by="ville-partner")
    add_status(database, refused, 1, "210", reason="DOUBLON", text=HOSTILE_TEXT, set_by="ville-partner")
    add_status(database, refused, 1, "211", set_by="ville-partner", state="held")
    add_status(database, paid, 1, "204", set_by="ville-partner")
    add_status(database, paid, 1, "211", set_by="operator:alice", text="virement du 2026-11-30")
    return Lived(console, refused, paid)


@pytest.fixture
def lived_site(lived: Lived) -> Iterator[Site]:
    """The console over the workspace whose invoices have lived on."""
    yield from _site(lived.console)
