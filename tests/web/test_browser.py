"""The console in a real browser: Debian's chromium, headless, driven by Playwright, against the real `edi serve` on
a workspace whose flows the real `edi batch` processed. An operator logs in, walks every page of the navigation,
filters and pages the flows, opens a flow, downloads its acknowledgement, requeues a failed flow and logs out; a
hostile file name and invoice number show as text. Not one console error, failed request, unexpected error answer,
dialog or request beyond 127.0.0.1 on the way; a full-page screenshot of each page is saved in the test's tmp_path.

Skips, saying why, where chromium or the playwright package is missing (`.ci/run` installs chromium as root).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.lifecycle_rows import add_status
from tests.web.browser import (
    HOSTILE_FILE,
    HOSTILE_INVOICE,
    NO_BROWSER,
    PAGE_SIZE,
    PAGE_TIMEOUT_MS,
    PASSWORD,
    ConsoleWorkspace,
    Served,
    Watch,
    launch,
    make_console_workspace,
    serve,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(NO_BROWSER is not None, reason=f"no browser to drive: {NO_BROWSER}"),
]

NAV = ["Dashboard", "Flows", "Invoices", "Rules"]  # the navigation every page shows, in this order


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> ConsoleWorkspace:
    return make_console_workspace(tmp_path_factory.mktemp("console-ws"))


@pytest.fixture(scope="module")
def console(ws: ConsoleWorkspace) -> Iterator[Served]:
    with serve(ws.config, ws.config.parent / "serve.log") as served:
        print(f"\nedi serve listening on {served.url} after {served.started_in:.2f} s")
        yield served
    assert '"console bug"' not in served.log_text()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, seconds = launch(playwright)
        print(f"\nchromium {browser.version} started in {seconds:.2f} s")
        yield browser
        browser.close()


@dataclass
class Visit:
    """One browser tab on the console, watched, and the screenshots taken of it."""

    page: Page
    watch: Watch
    url: str
    shots: Path
    taken: int = 0

    def shot(self, name: str) -> Path:
        """A full-page screenshot of what the tab shows, numbered in the order taken."""
        self.taken += 1
        path = self.shots / f"{self.taken:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def path(self) -> str:
        return urlsplit(self.page.url).path

    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.page.url).query)

    def log_in(self) -> None:
        """Log in as alice through the form (the console sends a visitor there first)."""
        self.page.goto(self.url)
        assert self.path() == "/login" and self.query() == {"next": ["/"]}
        self.page.get_by_label("User name").fill("alice")
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(self.url)

    def nav(self, name: str) -> int:
        """Follow the navigation link ``name``; the status of the page it opens. From an error page without the
        navigation (a 404 shows none), through the brand's link to the dashboard first."""
        if self.page.locator("header nav").count() == 0:
            with self.page.expect_navigation():
                self.page.locator("header a.brand").click()
        link = self.page.locator("header nav a", has_text=name)
        with self.page.expect_response(lambda r: r.request.resource_type == "document") as answer:
            link.click()
        self.page.wait_for_load_state()
        return answer.value.status

    def filter_flows(self, **fields: str) -> None:
        """Fill the flows' filter form (selects and text fields by name) and submit it."""
        form = self.page.locator("form.filters")
        for name, value in fields.items():
            field = form.locator(f"[name={name}]")
            if field.evaluate("e => e.tagName") == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)
        with self.page.expect_navigation():
            form.get_by_role("button", name="Filter").click()

    def listed(self) -> list[str]:
        """The flow ids of the flows list's rows, top to bottom."""
        return self.page.locator("table.grid tbody td.name a").evaluate_all("links => links.map(a => a.title)")

    def assert_clean(self) -> None:
        """Nothing went wrong in the browser, and no dialog ever opened."""
        assert self.watch.dialogs == []
        assert self.watch.problems == []


@pytest.fixture
def visit(browser: Browser, console: Served, tmp_path: Path) -> Iterator[Visit]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield Visit(page, Watch(page, console.url), console.url, tmp_path)
    finally:
        context.close()


def test_an_operator_walks_the_console_without_one_error(visit: Visit, ws: ConsoleWorkspace) -> None:
    """Log in (a wrong password first), every nav page, filter and page the flows, open a flow and download its
    acknowledgement, requeue a failed flow, log out: no console error, failed request or unexpected error answer."""
    page = visit.page
    page.goto(visit.url)
    assert visit.path() == "/login"
    visit.shot("login")
    visit.watch.expect("/login", 401)
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("alert").wait_for()
    assert page.get_by_role("alert").inner_text() == "Wrong user name or password."
    visit.shot("login-refused")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(visit.url)
    assert page.locator("header .who").inner_text().startswith("alice · operator")

    # every page of the navigation, through its link
    assert page.locator("header nav a").all_inner_texts()[: len(NAV)] == NAV
    links = page.locator("header nav a")
    hrefs = links.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    for name, href in zip(links.all_inner_texts(), hrefs, strict=True):
        status = visit.nav(name)
        assert visit.path() == href
        visit.shot(f"nav-{name.lower()}")
        assert status == 200, f"{name} ({href}) answered {status}"
        assert page.locator("header nav a[aria-current=page]").inner_text() == name

    # the flows, filtered through the form, then the next page
    assert visit.nav("Flows") == 200
    visit.filter_flows(sender="acme", status="IN_REJETE")
    assert visit.query() == {"sender": ["acme"], "status": ["IN_REJETE"]}
    matching = sorted(
        (f for f, row in ws.flows.items() if row["sender"] == "acme" and row["status"] == "IN_REJETE"), reverse=True
    )
    assert len(matching) > PAGE_SIZE
    assert visit.listed() == matching[:PAGE_SIZE]
    assert set(page.locator("table.grid tbody .badge").all_inner_texts()) == {"IN_REJETE"}
    visit.shot("flows-filtered")
    with page.expect_navigation():
        page.get_by_role("link", name="Older »").click()
    assert visit.listed() == matching[PAGE_SIZE : 2 * PAGE_SIZE]
    assert page.locator("select[name=sender]").input_value() == "acme"
    assert page.locator("select[name=status]").input_value() == "IN_REJETE"
    visit.shot("flows-page-2")

    # a flow, and its acknowledgement downloaded
    chosen = matching[PAGE_SIZE]
    with page.expect_navigation():
        page.locator(f"table.grid a[title='{chosen}']").click()
    assert visit.path() == f"/flows/{chosen}"
    assert chosen in page.locator("h1").inner_text()
    visit.shot("flow")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Acknowledgement (JSON)").click()
    download = download_info.value
    assert download.suggested_filename == f"{chosen}.json"
    body = Path(download.path()).read_bytes()
    assert body == ws.ack(chosen).read_bytes()
    ack = json.loads(body)
    assert (ack["flow_id"], ack["status"], ack["file_name"]) == (chosen, "IN_REJETE", ws.flows[chosen]["file_name"])

    # the failed flow, requeued
    assert visit.nav("Flows") == 200
    visit.filter_flows(status="IN_EN_ATTENTE_RETRAITEMENT")
    assert visit.listed() == [ws.failed]
    visit.shot("flows-failed")
    with page.expect_navigation():
        page.get_by_role("link", name="failing.xml").click()
    assert page.locator("h1 .badge").inner_text() == "IN_EN_ATTENTE_RETRAITEMENT"
    failure = page.locator(".timeline details")  # the traceback, folded under its last line
    assert failure.locator("summary").inner_text() == "OSError: [Errno 5] Input/output error (injected at write.ack)"
    assert not failure.locator("pre").is_visible()
    failure.locator("summary").click()
    assert failure.locator("pre").inner_text().startswith("Traceback (most recent call last):\n")
    visit.shot("flow-failed")
    with page.expect_navigation():
        page.get_by_role("button", name="Requeue this flow").click()
    assert visit.path() == f"/flows/{ws.failed}" and visit.query() == {"done": ["requeued"]}
    assert page.get_by_role("status").inner_text().startswith("Requeued")
    assert page.locator("h1 .badge").inner_text() == "IN_RECU"
    audit = page.locator(".timeline li.action").all_inner_texts()
    assert any("alice" in line and "requeue" in line for line in audit), audit
    assert page.get_by_role("button", name="Requeue this flow").count() == 0
    visit.shot("flow-requeued")

    # log out: the dashboard asks for a login again
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    assert visit.path() == "/login"
    page.goto(visit.url)
    assert visit.path() == "/login" and visit.query() == {"next": ["/"]}
    visit.shot("logged-out")
    visit.assert_clean()


def test_a_hostile_file_name_and_invoice_number_show_as_text(visit: Visit, ws: ConsoleWorkspace) -> None:
    """A file name and an invoice number made of markup show literally in the list, the filter form, the flow page
    (facts, findings, the document's excerpt) and error pages: no element made of them, no dialog, even on hover."""
    page = visit.page
    visit.log_in()
    assert visit.nav("Flows") == 200
    visit.filter_flows(invoice=HOSTILE_INVOICE)
    assert visit.listed() == [ws.hostile]
    assert page.locator("input[name=invoice]").input_value() == HOSTILE_INVOICE
    row = page.locator("table.grid tbody tr")
    assert row.locator("td.name a").inner_text() == HOSTILE_FILE
    assert HOSTILE_INVOICE in row.inner_text()
    row.locator("td.name a").hover()
    visit.shot("flows-hostile")

    with page.expect_navigation():
        row.locator("td.name a").click()
    assert page.locator("dd.name").inner_text() == HOSTILE_FILE
    assert page.locator(".document h3").inner_text().startswith(f"1. {HOSTILE_FILE}")
    assert HOSTILE_INVOICE in page.locator(".document .facts").inner_text()
    messages = page.locator("table.findings").inner_text()
    assert f'Valeur actuelle : "{HOSTILE_INVOICE}"' in messages
    excerpt = page.locator("pre.excerpt").first.inner_text()
    assert "<cbc:ID>&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</cbc:ID>" in excerpt
    for text in page.get_by_text(HOSTILE_FILE).all() + page.get_by_text(HOSTILE_INVOICE).all():
        text.hover()
    visit.shot("flow-hostile")

    # error pages that repeat what was asked
    asked = "<b onmouseover=alert(1)>"
    visit.watch.expect(f"/flows/{asked}", 404)
    visit.watch.expect("/flows", 400)
    page.goto(f"{visit.url}flows/{quote(asked)}")
    assert page.locator("h1").inner_text() == "Not found"
    visit.shot("not-found-hostile")
    page.goto(f"{visit.url}flows?sender={quote(asked)}")
    assert asked in page.locator(".notice.bad").inner_text()
    visit.shot("bad-request-hostile")

    page.wait_for_timeout(300)  # time for an injected handler, had there been one, to open its dialog
    assert page.locator("main img, main b, [onmouseover], [onerror]").count() == 0
    visit.assert_clean()


def test_a_flow_page_shows_each_invoices_lifecycle(visit: Visit, ws: ConsoleWorkspace) -> None:
    """With statuses recorded after edi's decision (a 204, then a 210 whose words are markup), the invoice's flow page
    shows its timeline in order, the words as text; its link opens the invoice's page with the same timeline."""
    (flow_id,) = [f for f, row in ws.flows.items() if row["file_name"] == "01-ubl-invoice.xml"]
    database = ws.root / "tracking.sqlite"
    add_status(database, flow_id, 1, "204", set_by="ville-partner")
    add_status(database, flow_id, 1, "210", reason="DOUBLON", text=HOSTILE_INVOICE, set_by="ville-partner")
    add_status(database, flow_id, 1, "211", set_by="ville-partner", state="held")
    page = visit.page
    visit.log_in()
    page.goto(f"{visit.url}flows/{flow_id}")
    steps = page.locator(".document ol.lifecycle li")
    assert steps.count() == 3
    texts = steps.all_inner_texts()
    assert [t.split()[2] for t in texts] == ["200", "204", "210"]
    assert "Déposée" in texts[0] and "by edi" in texts[0]
    assert "Refusée" in texts[2] and "by ville-partner" in texts[2] and "DOUBLON" in texts[2]
    assert page.locator(".document ol.lifecycle q").inner_text() == HOSTILE_INVOICE
    visit.shot("flow-lifecycle")
    with page.expect_navigation():
        page.locator(".document h4 a").click()
    assert visit.path() == f"/invoices/{flow_id}/1"
    assert page.locator("ol.lifecycle li").count() == 3 and "Refusée" in page.locator("h1").inner_text()
    visit.shot("invoice-lifecycle")
    page.wait_for_timeout(300)
    assert page.locator("main img, [onerror]").count() == 0
    visit.assert_clean()


def test_an_operator_records_a_status_through_the_invoice_pages_form(visit: Visit, ws: ConsoleWorkspace) -> None:
    """On the invoice page of a delivered credit note, the form offers the statuses that may come next (not 209, as
    nothing was suspended); the operator picks 204 and records it; with no partner
    declared for its recipient (Dupont), the browser shows the 409 page that says so, and nothing else goes wrong."""
    (flow_id,) = [f for f, row in ws.flows.items() if row["file_name"] == "02-ubl-creditnote.xml"]
    page = visit.page
    visit.log_in()
    page.goto(f"{visit.url}invoices/{flow_id}/1")
    form = page.locator("form.action")
    offered = form.locator("select[name=status] option").evaluate_all("options => options.map(o => o.value)")
    assert offered == ["202", "203", "204", "205", "206", "207", "208", "210", "211", "212"]  # 209 only after 208
    form.locator("select[name=status]").select_option("204")
    form.locator("input[name=text]").fill("<i>reçue</i>")
    visit.watch.expect(f"/invoices/{flow_id}/1/status", 409)
    with page.expect_navigation():
        form.get_by_role("button", name="Record").click()
    assert "no partner speaks for recipient 'dupont'" in page.locator("main").inner_text()
    visit.shot("invoice-status-refused")
    visit.assert_clean()
