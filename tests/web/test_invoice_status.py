"""The invoice page's form that records a recipient's status (POST /invoices/{flow_id}/{idx}/status): operators only,
with the CSRF token; the status is deposited as the partner's CDAR message, which the next real batch checks,
records and relays; what cannot be recorded answers 409 saying why, and nothing is deposited."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from edi.config import load_settings
from edi.lifecycle.validate import check
from edi.runner import run_batch
from tests.conftest import Workspace
from tests.web.conftest import Console, Site, _flows, _site, csrf_of

PARTNER = '\n[[senders]]\nid = "ville-pa"\nsellers = []\nrecipients = ["ville-exemple"]\n'


@pytest.fixture
def partner_site(_built: Path, tmp_path: Path) -> Iterator[Site]:
    """A copy of the processed workspace where ville-pa speaks for the Ville d'Exemple."""
    folder = tmp_path / "copy"
    shutil.copytree(_built, folder)
    config = folder / "config.toml"
    config.write_text(config.read_text(encoding="utf-8") + PARTNER, encoding="utf-8")
    ws = Workspace(config, load_settings(config))
    yield from _site(Console(ws, _flows(ws)))


def inbox(site: Site) -> list[Path]:
    folder = site.console.ws.inbox("ville-pa")
    return sorted(folder.iterdir()) if folder.exists() else []


def test_an_operator_records_a_status_that_the_next_batch_relays(partner_site: Site) -> None:
    """The form on acme's FA-2026-0001 (to the Ville d'Exemple): 303 back to the page saying so, one valid CDAR
    message in ville-pa's inbox; the next batch records it (the page's timeline shows it) and relays it to acme."""
    flow = partner_site.console.flow_id("acme", "01-ubl-invoice.xml")
    operator = partner_site.client("operator")
    page = operator.get(f"/invoices/{flow}/1").text
    assert 'action="/invoices/' in page and "Record a recipient" in page
    answer = operator.post(
        f"/invoices/{flow}/1/status",
        data={"csrf": csrf_of(page), "status": "210", "reason": "CMD_ERR", "text": "<b>commande</b> inconnue"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"/invoices/{flow}/1?done=status"
    [message] = inbox(partner_site)
    assert [f for f in check(message.read_bytes()) if f.fatal] == []
    assert "Status deposited" in operator.get(answer.headers["location"]).text

    run_batch(partner_site.console.ws.settings)

    timeline = operator.get(f"/invoices/{flow}/1.json").json()["document"]["lifecycle"]
    assert [(s["status"], s["by"], s["reason"]) for s in timeline] == [
        ("200", "edi", None),
        ("210", "ville-pa", "CMD_ERR"),
    ]
    page = operator.get(f"/invoices/{flow}/1").text
    assert "&lt;b&gt;commande&lt;/b&gt; inconnue" in page and "<b>commande" not in page
    [ack] = partner_site.console.ws.acks("ville-pa")
    relay = json.loads(ack.read_text())["documents"][0]["lifecycle"]["relay"]
    assert (partner_site.console.ws.root / "acks" / "acme" / relay).is_file()


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"status": "207"}, "needs a reason code"),
        ({"status": "213", "reason": "DOUBLON"}, "is not a status a recipient may set"),
        ({"status": "210", "reason": "PAS_UN_MOTIF"}, "is not allowed for status 210"),
        ({"status": "204", "text": "x" * 1001}, "1 to 1000 characters"),
    ],
)
def test_a_status_that_cannot_be_recorded_answers_409_and_deposits_nothing(
    partner_site: Site, form: dict[str, str], says: str
) -> None:
    """Each refusal is a 409 page that says why (escaped), and the partner's inbox stays empty."""
    flow = partner_site.console.flow_id("acme", "01-ubl-invoice.xml")
    operator = partner_site.client("operator")
    token = csrf_of(operator.get(f"/invoices/{flow}/1").text)
    answer = operator.post(f"/invoices/{flow}/1/status", data={"csrf": token, **form})
    assert answer.status_code == 409 and says in answer.text, answer.text
    assert inbox(partner_site) == []


def test_no_partner_no_form_and_only_an_operator_with_the_token_may_post(partner_site: Site) -> None:
    """A credit note to Dupont (no partner speaks for it) answers 409 naming the missing declaration; a sender account
    sees no form and gets 403; a post without the CSRF token is 403; a rejected invoice shows no form."""
    dupont = partner_site.console.flow_id("acme", "02-ubl-creditnote.xml")
    operator = partner_site.client("operator")
    token = csrf_of(operator.get(f"/invoices/{dupont}/1").text)
    answer = operator.post(f"/invoices/{dupont}/1/status", data={"csrf": token, "status": "204"})
    assert answer.status_code == 409 and "no partner speaks for recipient" in answer.text
    assert operator.post(f"/invoices/{dupont}/1/status", data={"status": "204"}).status_code == 403
    acme: TestClient = partner_site.client("acme")
    page = acme.get(f"/invoices/{dupont}/1").text
    assert "Record a recipient" not in page
    assert acme.post(f"/invoices/{dupont}/1/status", data={"csrf": csrf_of(page), "status": "204"}).status_code == 403
    rejected = partner_site.console.flow_id("acme", "06-missing-service-code.xml")
    assert "Record a recipient" not in operator.get(f"/invoices/{rejected}/1").text
    assert inbox(partner_site) == []
