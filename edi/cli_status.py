"""``edi status set``: record a recipient's lifecycle status for a delivered invoice, for a recipient without CDAR
tooling. Registered on the ``edi`` group by :mod:`edi.cli` (which renders errors); parses, calls
:mod:`edi.lifecycle.deposit`, prints.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from edi.accounts import record_action
from edi.lifecycle import deposit, rules
from edi.store import open_store
from edi.text import printable

if TYPE_CHECKING:
    from edi.cli import Context


@click.group(name="status")
def status_group() -> None:
    """Lifecycle statuses a recipient sets on a delivered invoice (202-212).

    \b
    A recipient's platform returns statuses as CDAR messages in inbox/<partner>/ (a
    partner declared with recipients = [...]). For a recipient without CDAR tooling,
    `edi status set` writes that message on its behalf into the same inbox: the next
    `edi batch` (or the running `edi watch`) checks it like any other (the invoice, the
    status, its reason, the order of statuses), records it and relays it to the
    invoice's sender in acks/<sender>/*.cdar.xml.
    Examples:
      edi status set FA-2026-0001 204
      edi status set 20261126T204626483912-9f3ab2~1 210 --reason CMD_ERR --text "Commande inconnue"
    """


@status_group.command(name="set")
@click.argument("invoice")
@click.argument("status")
@click.option("--reason", help="The reason code (MDT-113), e.g. CMD_ERR; required for 206, 207, 208 and 210.")
@click.option("--text", help="The recipient's words about it (MDT-114).")
@click.option("--partner", help="The partner it is recorded for, when several speak for the recipient.")
@click.option("--seller", help="With an invoice number: the seller id, when several sellers use that number.")
@click.option("--json", "as_json", is_flag=True, help="Say what was deposited as JSON.")
@click.pass_obj
def status_set(
    ctx: Context,
    invoice: str,
    status: str,
    reason: str | None,
    text: str | None,
    partner: str | None,
    seller: str | None,
    as_json: bool,
) -> None:
    """Record STATUS (202-212) for INVOICE on its recipient's behalf.

    INVOICE is <flow_id>/<index> (as `edi invoices` shows it; or ~), a flow id or its start (a
    flow of one document), or an invoice number (BT-1) that one accepted invoice has.
    The status is checked here as far as it can be (the invoice was delivered, the
    status is one a recipient sets, with a reason where the rules want one, a partner
    speaks for the recipient); the order of statuses is checked when it is processed.

    \b
    Example:
      edi status set FA-2026-0001 211
    """
    settings = ctx.settings
    layout = settings.workspace.layout()
    store = open_store(layout)
    try:
        found = deposit.find_invoice(store, invoice, seller)
        now = datetime.now(UTC)
        user = _login()
        history = store.recorded_statuses(found["flow_id"], found["idx"])
        prepared = deposit.prepare(
            found, status, settings.senders, now, history=history, reason=reason, text=text, partner=partner, by=user
        )
        path = deposit.deposit(layout, prepared)
        key = f"{found['flow_id']}~{found['idx']}"
        record_action(store, now, f"cli:{user}", "status", key, f"{status} {reason or ''}".strip())
    finally:
        store.close()
    if as_json:
        out = {"invoice": key, "status": status, "partner": prepared.partner, "file": str(path)}
        click.echo(json.dumps(out, ensure_ascii=False))
        return
    label = rules.label(status.strip())
    click.echo(
        printable(
            f"status {status.strip()} ({label}) for invoice {found['invoice_number']} ({key}) deposited for "
            f"{prepared.partner} as {path}"
        )
    )
    click.echo(
        printable(
            f"the next `edi batch` (or the running `edi watch`) checks it, records it and relays it to "
            f"{found['sender']}; the answer is in {layout.sender_acks(prepared.partner)}/"
        )
    )


def _login() -> str:
    """Who runs the command, for the record."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
