"""The deposit API's clients: ``edi clients add|list|remove|token|revoke|secret``. Registered on the ``edi`` group by
:mod:`edi.cli` (which renders errors as one line); each parses, calls one function of :mod:`edi.api.clients`,
prints. Every change is audited in the store's ``actions`` (``edi clients`` as the actor).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from edi.api import clients
from edi.api.clients import ClientError
from edi.clock import iso
from edi.store import open_store
from edi.text import printable
from edi.tracking import Tracking

if TYPE_CHECKING:
    from edi.cli import Context

SHOWN_ONCE = "Keep the {what} now: it will not be shown again (a lost one is replaced: `edi clients {verb} {name}`)."


@contextmanager
def _store(ctx: Context) -> Iterator[Tracking]:
    store = open_store(ctx.settings.workspace.layout())
    try:
        yield store
    finally:
        store.close()


def _now() -> datetime:
    return datetime.now(UTC)


@click.group(name="clients")
def clients_group() -> None:
    """Clients of the HTTP deposit API (`edi serve`, docs/api.md): each acts for one sender.

    \b
    A client gets short-lived tokens from POST /oauth2/token with its client id and
    secret (OAuth2 client credentials), or carries a long-lived token made here. The
    secret and the tokens are shown once and kept only hashed. Console accounts
    (`edi users`) never open the API.
    Examples:
      edi clients add erp-acme --sender acme            # prints the client id and secret
      edi clients add erp-acme --sender acme --json | jq -r .client_secret
      edi clients token erp-acme --days 90              # a long-lived bearer token
      edi clients revoke erp-acme                       # every token of it ends now
      edi clients secret erp-acme                       # a new secret; the old one stops working
      edi clients list
      edi clients remove erp-acme
    """


def _echo_credentials(client: clients.ApiClient, secret: str, headline: str, as_json: bool) -> None:
    """A client's id and its new secret (shown once): ``{"client_id", "client_secret"}`` only with --json."""
    if as_json:
        click.echo(json.dumps({"client_id": client.client_id, "client_secret": secret}))
        return
    click.echo(printable(headline))
    click.echo(f"client id:     {client.client_id}")
    click.echo(f"client secret: {secret}")
    click.echo(SHOWN_ONCE.format(what="secret", verb="secret", name=printable(client.name)))


@clients_group.command(name="add")
@click.argument("name")
@click.option("--sender", required=True, help="The sender id (as in config.toml) the client deposits for and sees.")
@click.option("--json", "as_json", is_flag=True, help='Print {"client_id": ..., "client_secret": ...} only.')
@click.pass_obj
def clients_add(ctx: Context, name: str, sender: str, as_json: bool) -> None:
    """Create an API client for one sender; prints its client id and secret (shown once).

    \b
    NAME: 1 to 64 letters, digits, '.', '_', '@' or '-'.
    Examples:
      edi clients add erp-acme --sender acme
      edi clients add erp-acme --sender acme --json > erp-acme.json   # then chmod 600 it
    """
    settings = ctx.settings
    if settings.sender(sender) is None:
        known = ", ".join(s.id for s in settings.senders) or "none declared"
        raise ClientError(f"--sender {sender!r} is not a sender of {settings.path} (senders: {known})")
    with _store(ctx) as store:
        client, secret = clients.add_client(store, name, sender, _now())
    _echo_credentials(client, secret, f"client {client.name} created for sender {client.sender}", as_json)


@clients_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per client.")
@click.pass_obj
def clients_list(ctx: Context, as_json: bool) -> None:
    """List the API clients: name, client id, sender, created, and the tokens they hold now.

    \b
    Never shows a secret, a token or a hash of one. TOKENS counts the tokens neither
    expired nor revoked: short-lived (from /oauth2/token) + long-lived (`edi clients token`).
    Example:
      edi clients list --json | jq -r 'select(.sender == "acme") | .name'
    """
    now = _now()
    with _store(ctx) as store:
        rows = clients.list_clients(store)
        live = clients.live_tokens(store, now)
    empty = {clients.ACCESS: 0, clients.BEARER: 0}
    if as_json:
        for c in rows:
            held = live.get(c.client_id, empty)
            click.echo(
                json.dumps(
                    {
                        "name": c.name,
                        "client_id": c.client_id,
                        "sender": c.sender,
                        "created_at": c.created_at,
                        "access_tokens": held[clients.ACCESS],
                        "bearer_tokens": held[clients.BEARER],
                    }
                )
            )
        return
    if not rows:
        click.echo("no API clients (edi clients add NAME --sender ID)")
        return
    click.echo(f"{'NAME':24} {'CLIENT ID':24} {'SENDER':16} {'CREATED':24} TOKENS")
    for c in rows:
        held = live.get(c.client_id, empty)
        tokens = f"{held[clients.ACCESS]} + {held[clients.BEARER]} long-lived"
        click.echo(printable(f"{c.name:24} {c.client_id:24} {c.sender:16} {c.created_at:24} {tokens}"))


@clients_group.command(name="remove")
@click.argument("name")
@click.pass_obj
def clients_remove(ctx: Context, name: str) -> None:
    """Delete an API client and every token it holds: its next request is refused (401).

    \b
    Flows it deposited stay, as flows dropped in a folder do.
    Example:
      edi clients remove erp-acme
    """
    with _store(ctx) as store:
        clients.remove_client(store, name, _now())
    click.echo(printable(f"client {name} removed; its tokens no longer open the API"))


def _days(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not 0 < value <= 36500:
        raise click.BadParameter("give a number of days above 0 and at most 36500")
    return value


@clients_group.command(name="token")
@click.argument("name")
@click.option(
    "--days", type=float, callback=_days, help="How long it lasts (default: [api] bearer_days of config.toml)."
)
@click.option("--json", "as_json", is_flag=True, help='Print {"token": ..., "expires_at": ...} only.')
@click.pass_obj
def clients_token(ctx: Context, name: str, days: float | None, as_json: bool) -> None:
    """Make a long-lived bearer token for a client (shown once), for software that cannot do OAuth2.

    \b
    The client sends it as `Authorization: Bearer <token>`. It ends at its date, when the
    client is removed, or with `edi clients revoke`.
    Examples:
      edi clients token erp-acme               # lasts [api] bearer_days
      edi clients token erp-acme --days 30 --json | jq -r .token
    """
    lasting = days if days is not None else ctx.settings.api.bearer_days
    with _store(ctx) as store:
        token, until = clients.issue_bearer_token(store, name, _now(), lasting)
    if as_json:
        click.echo(json.dumps({"token": token, "expires_at": iso(until)}))
        return
    click.echo(printable(f"long-lived token of {name}, valid until {iso(until)}:"))
    click.echo(token)
    click.echo(SHOWN_ONCE.format(what="token", verb="token", name=printable(name)))


@clients_group.command(name="revoke")
@click.argument("name")
@click.pass_obj
def clients_revoke(ctx: Context, name: str) -> None:
    """End every token of a client now, short- and long-lived; it keeps its secret.

    \b
    The client can get new access tokens with its secret; to stop that too, give it a new
    secret (`edi clients secret`) or remove it.
    Example:
      edi clients revoke erp-acme
    """
    with _store(ctx) as store:
        ended = clients.revoke_tokens(store, name, _now())
    click.echo(printable(f"{ended} token(s) of {name} revoked"))


@clients_group.command(name="secret")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help='Print {"client_id": ..., "client_secret": ...} only.')
@click.pass_obj
def clients_secret(ctx: Context, name: str, as_json: bool) -> None:
    """Give a client a new secret (shown once): the old one stops working now.

    \b
    The access tokens got with the old secret end too; long-lived tokens stay (revoke them
    with `edi clients revoke`).
    Example:
      edi clients secret erp-acme
    """
    with _store(ctx) as store:
        secret = clients.new_secret(store, name, _now())
        client = clients.find_client(store, name)
    assert client is not None  # new_secret raised otherwise
    _echo_credentials(client, secret, f"new secret of {name}; the old one no longer works", as_json)
