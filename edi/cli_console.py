"""The console's commands: ``edi users list|add|remove|passwd`` and ``edi serve``. Registered on the ``edi`` group by
:mod:`edi.cli` (which renders errors); each parses, calls one library function, prints.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from edi import accounts
from edi.accounts import AccountError
from edi.store import open_store
from edi.text import printable

if TYPE_CHECKING:
    from edi.cli import Context


def _password(password_stdin: bool, confirm: bool = True) -> str:
    """The new password: the first line of standard input, or asked twice on the terminal (never echoed)."""
    if password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise AccountError("--password-stdin: standard input is empty (give the password on its first line)")
        return accounts.check_password(line.rstrip("\r\n"))
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask the password on: give it on standard input with --password-stdin")
    text: str = click.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return accounts.check_password(text)


@click.group(name="users")
def users_group() -> None:
    """Console accounts (`edi serve`): operators see every sender, sender accounts their own.

    \b
    Passwords are hashed with Argon2id in the tracking store; never shown, never stored.
    Examples:
      edi users add alice --role operator
      edi users add acme-ops --role sender --sender acme
      printf '%s\\n' "$PASSWORD" | edi users passwd alice --password-stdin
      edi users list
    """


@users_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per account.")
@click.pass_obj
def users_list(ctx: Context, as_json: bool) -> None:
    """List the console accounts (name, role, sender, created).

    \b
    Example:
      edi users list --json | jq -r 'select(.role == "operator") | .name'
    """
    store = open_store(ctx.settings.workspace.layout())
    try:
        users = accounts.list_users(store)
    finally:
        store.close()
    if as_json:
        for u in users:
            click.echo(json.dumps({"name": u.name, "role": u.role, "sender": u.sender, "created_at": u.created_at}))
        return
    if not users:
        click.echo("no accounts (edi users add NAME --role operator)")
        return
    click.echo(f"{'NAME':24} {'ROLE':9} {'SENDER':16} CREATED")
    for u in users:
        click.echo(printable(f"{u.name:24} {u.role:9} {u.sender or '-':16} {u.created_at}"))


@users_group.command(name="add")
@click.argument("name")
@click.option("--role", type=click.Choice(accounts.ROLES), required=True, help="operator: everything; sender: its own.")
@click.option("--sender", help="For --role sender: the sender id (as in config.toml) whose flows it sees.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.pass_obj
def users_add(ctx: Context, name: str, role: str, sender: str | None, password_stdin: bool) -> None:
    """Create a console account; asks for its password (twice) unless --password-stdin.

    \b
    Examples:
      edi users add alice --role operator
      edi users add acme-ops --role sender --sender acme --password-stdin < secret.txt
    """
    settings = ctx.settings
    if sender is not None and settings.sender(sender) is None:
        known = ", ".join(s.id for s in settings.senders) or "none declared"
        raise AccountError(f"--sender {sender!r} is not a sender of {settings.path} (senders: {known})")
    password = _password(password_stdin)
    store = open_store(settings.workspace.layout())
    try:
        user = accounts.add_user(store, name, role, password, datetime.now(UTC), sender=sender)
    finally:
        store.close()
    click.echo(printable(f"account {user.name} created ({user.role}" + (f" of {user.sender})" if user.sender else ")")))


@users_group.command(name="remove")
@click.argument("name")
@click.pass_obj
def users_remove(ctx: Context, name: str) -> None:
    """Delete a console account (its sessions end at once).

    \b
    Example:
      edi users remove acme-ops
    """
    store = open_store(ctx.settings.workspace.layout())
    try:
        accounts.remove_user(store, name, datetime.now(UTC))
    finally:
        store.close()
    click.echo(printable(f"account {name} removed"))


@users_group.command(name="passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.pass_obj
def users_passwd(ctx: Context, name: str, password_stdin: bool) -> None:
    """Set a new password for an account (asked twice unless --password-stdin); its open sessions end.

    \b
    Example:
      edi users passwd alice
      printf '%s\\n' "$PASSWORD" | edi users passwd alice --password-stdin
    """
    store = open_store(ctx.settings.workspace.layout())
    try:
        if accounts.find_user(store, name) is None:
            raise AccountError(f"no account {name!r} (`edi users list` shows them)")
        accounts.set_password(store, name, _password(password_stdin), datetime.now(UTC))
    finally:
        store.close()
    click.echo(printable(f"password of {name} changed; its sessions ended"))


@click.command(name="serve")
@click.option("--host", help="Address to listen on (default: [console] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="TCP port (default: [console] port, 8080; 0 = any free).")
@click.pass_obj
def serve_cmd(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the web console ("Suivi des flux") until SIGTERM or SIGINT (Ctrl-C).

    \b
    Operators see every flow, the dashboard, rule statistics and can requeue failed
    flows; a sender account sees only its own sender's flows. Log in with an account
    made by `edi users add`. It only reads the store and the workspace's files (plus
    logins and audited actions), so it runs beside `batch`, `watch` and `schedule`.

    \b
    It listens on 127.0.0.1 by default. To open it to others, listen on another address
    (--host 0.0.0.0) behind a TLS reverse proxy, with [console] secure_cookies = true.

    \b
    Example:
      edi users add alice --role operator
      edi serve --port 8080        # then open http://127.0.0.1:8080/
    """
    from edi.serve import serve  # here: every other command starts without uvicorn and Starlette

    settings = ctx.settings
    chosen_host = host or settings.console.host
    chosen_port = settings.console.port if port is None else port

    def ready(url: str) -> None:
        click.echo(printable(f"edi console on {url} (Ctrl-C stops it)"))

    serve(settings, chosen_host, chosen_port, on_ready=ready)
    click.echo("console stopped")
