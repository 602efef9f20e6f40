"""``edi invoices``: the invoices the store holds with their current lifecycle status, filtered, newest first.
Registered on the ``edi`` group by :mod:`edi.cli` (which renders errors); parses, calls
:func:`edi.browse.invoices.iter_invoices` (the console's query, every sender in scope), prints.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from edi.browse import Reader
from edi.browse.invoices import InvoiceFilters, iter_invoices
from edi.cli_rows import echo_rows
from edi.lifecycle import labels
from edi.store import open_store
from edi.text import printable_all

if TYPE_CHECKING:
    from edi.cli import Context

SQLITE_MAX = 2**63 - 1


def _moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """--since / --until as a moment: a duration back from now or an ISO date / time (a bad value names the
    option); a bare date given to --until means up to its end."""
    if not value:
        return None
    from edi.cli import parse_since  # the same reading as `edi flows --since` (edi.cli is loaded by then)

    moment = parse_since(value, datetime.now(UTC))
    if param.name == "until" and len(value.strip()) == 10 and "-" in value:
        moment += timedelta(days=1)
    return moment


@click.command(name="invoices")
@click.option("--sender", help="Only the invoices this sender deposited.")
@click.option("--seller", help="Only this seller's invoices (its identifier as the invoice gives it).")
@click.option("--buyer", help="Only this buyer's invoices (its identifier as the invoice gives it).")
@click.option("--recipient", help="Only the invoices routed to this directory recipient.")
@click.option(
    "--status",
    type=click.Choice(labels.STATUSES),
    help="Only invoices whose current status is this (200 Déposée ... 213 Rejetée, 501 Irrecevable).",
)
@click.option("--since", callback=_moment, help="Only invoices received since: 30m, 2h, 3d, 1w or an ISO date.")
@click.option("--until", callback=_moment, help="Only invoices received before: 3d, or an ISO date (up to its end).")
@click.option("--number", help="Only the invoices with this number (BT-1), exactly.")
@click.option(
    "--limit", type=click.IntRange(min=1, max=SQLITE_MAX), default=50, show_default=True, help="At most this many."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def invoices_cmd(
    ctx: Context,
    sender: str | None,
    seller: str | None,
    buyer: str | None,
    recipient: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    number: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List invoices with their current status, newest first.

    The current status is the latest one a recipient (or an operator) recorded, else edi's own decision: 200
    Déposée, 213 Rejetée, 501 Irrecevable. `edi show FLOW` gives an invoice's whole lifecycle.

    \b
    Examples:
      edi invoices --since 7d --status 210
      edi invoices --sender acme --recipient ville-exemple
      edi invoices --number FA-2026-0001 --json | jq -r .current_status
    """
    if since is not None and until is not None and until <= since:
        raise click.BadParameter("the end of the period is not after its start", param_hint="'--until'")
    filters = InvoiceFilters(
        invoice=number,
        seller=seller,
        buyer=buyer,
        status=status,
        sender=sender,
        recipient=recipient,
        since=since,
        until=until,
    )
    layout = ctx.settings.workspace.layout()
    open_store(layout).close()  # a store that cannot be used says why, as every command does
    reader = Reader(layout.database)
    try:
        rows = list(iter_invoices(reader, None, filters, limit=limit))
    finally:
        reader.close()
    echo_rows(rows, as_json, render_invoices)


def render_invoices(rows: list[dict[str, Any]]) -> str:
    """Invoices as a table for an operator: a header, then one line per invoice, whatever its values hold."""
    if not rows:
        return "no invoices"
    lines = [f"{'RECEIVED':24} {'SENDER':12} {'INVOICE':20} {'ISSUED':10} {'SELLER':14} {'STATUS':26} DOCUMENT"]
    for row in printable_all(rows):
        status = f"{row['current_status'] or ''} {row['current_label']}".strip()
        lines.append(
            f"{row['received_at'] or '':24} {row['sender'][:12]:12} {(row['invoice_number'] or '-')[:20]:20} "
            f"{row['issue_date'] or '':10} {(row['seller_id'] or '')[:14]:14} {status[:26]:26} "
            f"{row['flow_id']}/{row['idx']}"
        )
    return "\n".join(lines)
