"""`edi users list|add|remove|passwd` and `edi serve --help` (edi/cli_console.py) through CliRunner on a real
workspace: what they print, their one-line errors and exit codes, and what they store."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from edi.cli import main
from tests.conftest import Workspace

PASSWORD = "secret-pass-1"


def users(ws: Workspace, *args: str, stdin: str | None = PASSWORD + "\n") -> object:
    """`edi --config <ws> users ARGS`, the password on standard input."""
    return CliRunner().invoke(main, ["--config", str(ws.config), "users", *args], input=stdin)


def errors(result: object) -> list[str]:
    """What a command said on stderr besides log lines."""
    return [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("{")]  # type: ignore[attr-defined]


def stored(ws: Workspace) -> list[dict[str, object]]:
    conn = sqlite3.connect(ws.root / "tracking.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM users ORDER BY name")]
    finally:
        conn.close()


def test_add_an_operator_and_a_sender_then_list_them(workspace: Workspace) -> None:
    """`users add` makes an operator and a sender account (--sender); `users list` and `--json` show them."""
    made = users(workspace, "add", "alice", "--role", "operator", "--password-stdin")
    assert made.exit_code == 0 and made.stdout == "account alice created (operator)\n"  # type: ignore[attr-defined]
    made = users(workspace, "add", "acme-ops", "--role", "sender", "--sender", "acme", "--password-stdin")
    assert made.exit_code == 0 and made.stdout == "account acme-ops created (sender of acme)\n"  # type: ignore[attr-defined]
    listed = users(workspace, "list", stdin=None)
    lines = listed.stdout.splitlines()  # type: ignore[attr-defined]
    assert listed.exit_code == 0 and lines[0].split() == ["NAME", "ROLE", "SENDER", "CREATED"]
    assert [line.split()[:3] for line in lines[1:]] == [["acme-ops", "sender", "acme"], ["alice", "operator", "-"]]
    as_json = [json.loads(line) for line in users(workspace, "list", "--json", stdin=None).stdout.splitlines()]  # type: ignore[attr-defined]
    assert [(u["name"], u["role"], u["sender"]) for u in as_json] == [
        ("acme-ops", "sender", "acme"),
        ("alice", "operator", None),
    ]
    assert all(set(u) == {"name", "role", "sender", "created_at"} for u in as_json)


def test_the_store_keeps_an_argon2id_hash_never_the_password(workspace: Workspace) -> None:
    """The users table holds an Argon2id hash of the password; the password itself is nowhere in the store."""
    assert users(workspace, "add", "alice", "--role", "operator", "--password-stdin").exit_code == 0  # type: ignore[attr-defined]
    (row,) = stored(workspace)
    assert str(row["password_hash"]).startswith("$argon2id$")
    assert PASSWORD.encode() not in (workspace.root / "tracking.sqlite").read_bytes()


def test_an_empty_list_says_how_to_add_an_account(workspace: Workspace) -> None:
    """`users list` with no account says how to make one; `--json` prints nothing."""
    assert users(workspace, "list", stdin=None).stdout == "no accounts (edi users add NAME --role operator)\n"  # type: ignore[attr-defined]
    assert users(workspace, "list", "--json", stdin=None).stdout == ""  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (
            ["add", "bob", "--role", "sender", "--sender", "nobody", "--password-stdin"],
            PASSWORD,
            "--sender 'nobody' is not a sender",
        ),
        (["add", "bob", "--role", "sender", "--password-stdin"], PASSWORD, "a sender account needs --sender"),
        (
            ["add", "bob", "--role", "operator", "--sender", "acme", "--password-stdin"],
            PASSWORD,
            "--sender is only for --role sender",
        ),
        (["add", "--role", "operator", "--password-stdin", "--", "-bob"], PASSWORD, "not a valid account name"),
        (["add", "bo b", "--role", "operator", "--password-stdin"], PASSWORD, "not a valid account name"),
        (["add", "a" * 65, "--role", "operator", "--password-stdin"], PASSWORD, "not a valid account name"),
        (["add", "bob\x1b[2J", "--role", "operator", "--password-stdin"], PASSWORD, "not a valid account name"),
        (["add", "bob", "--role", "operator", "--password-stdin"], "short", "the password is too short"),
        (["add", "bob", "--role", "operator", "--password-stdin"], " " * 12, "the password is only spaces"),
        (["add", "bob", "--role", "operator", "--password-stdin"], "x" * 1025, "the password is too long"),
        (["add", "bob", "--role", "operator", "--password-stdin"], None, "standard input is empty"),
        (["add", "bob", "--role", "operator"], PASSWORD, "--password-stdin"),
        (["remove", "ghost"], None, "no account 'ghost'"),
        (["passwd", "ghost", "--password-stdin"], PASSWORD, "no account 'ghost'"),
    ],
    ids=[
        "undeclared-sender",
        "sender-without-sender",
        "operator-with-sender",
        "dash-name",
        "space-name",
        "long-name",
        "control-name",
        "short-password",
        "blank-password",
        "long-password",
        "no-stdin",
        "no-terminal",
        "remove-unknown",
        "passwd-unknown",
    ],
)
def test_a_refused_command_says_why_in_one_line(
    workspace: Workspace, args: list[str], stdin: str | None, says: str
) -> None:
    """A bad name, role, sender or password, or an unknown account, is one line on stderr and exit 1 (2 for a
    usage error), with no traceback and no account made."""
    result = users(workspace, *args, stdin=None if stdin is None else stdin + "\n")
    assert result.exit_code in (1, 2), result.output  # type: ignore[attr-defined]
    (line,) = errors(result)
    assert line.startswith("Error: ") and says in line and "\x1b" not in line
    assert "Traceback" not in result.output and stored(workspace) == []  # type: ignore[attr-defined]


def test_a_duplicate_account_is_refused_and_keeps_its_password(workspace: Workspace) -> None:
    """Adding a name that exists is refused in one line (naming `users passwd`); the first account is untouched."""
    assert users(workspace, "add", "alice", "--role", "operator", "--password-stdin").exit_code == 0  # type: ignore[attr-defined]
    before = stored(workspace)
    again = users(workspace, "add", "alice", "--role", "operator", "--password-stdin", stdin="other-pass-22\n")
    assert again.exit_code == 1  # type: ignore[attr-defined]
    assert errors(again) == ["Error: account 'alice' exists already (`edi users passwd alice` sets a new password)"]
    assert stored(workspace) == before


def test_passwd_changes_the_hash_and_remove_deletes_the_account(workspace: Workspace) -> None:
    """`users passwd` stores a new hash and ends sessions from now on; `users remove` deletes the account; both are
    in the audit trail."""
    assert users(workspace, "add", "alice", "--role", "operator", "--password-stdin").exit_code == 0  # type: ignore[attr-defined]
    (before,) = stored(workspace)
    changed = users(workspace, "passwd", "alice", "--password-stdin", stdin="another-pass-2\n")
    assert changed.exit_code == 0 and changed.stdout == "password of alice changed; its sessions ended\n"  # type: ignore[attr-defined]
    (after,) = stored(workspace)
    assert after["password_hash"] != before["password_hash"] and after["sessions_since"] is not None
    removed = users(workspace, "remove", "alice", stdin=None)
    assert removed.exit_code == 0 and removed.stdout == "account alice removed\n" and stored(workspace) == []  # type: ignore[attr-defined]
    conn = sqlite3.connect(workspace.root / "tracking.sqlite")
    try:
        trail = [r[0] for r in conn.execute("SELECT action FROM actions WHERE target = 'alice' ORDER BY id")]
    finally:
        conn.close()
    assert trail == ["users.add", "users.passwd", "users.remove"]


def test_users_needs_a_workspace(make_workspace: object) -> None:
    """`users list` before `edi init` is one line telling to run it, exit 1."""
    ws = make_workspace(init=False)  # type: ignore[operator]
    result = users(ws, "list", stdin=None)
    assert result.exit_code == 1 and "edi init" in errors(result)[0] and len(errors(result)) == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("command", "teaches"),
    [
        (["users"], ["edi users add alice --role operator", "--sender acme", "--password-stdin", "edi users list"]),
        (["users", "add", "--help"], ["Examples:", "--role sender --sender acme", "--password-stdin"]),
        (["users", "passwd", "--help"], ["Example:", "--password-stdin", "sessions end"]),
        (["users", "remove", "--help"], ["Example:", "edi users remove"]),
        (["users", "list", "--help"], ["Example:", "--json"]),
        (["serve", "--help"], ["Example:", "edi serve --port 8080", "--host 0.0.0.0", "secure_cookies", "SIGTERM"]),
    ],
    ids=["users", "add", "passwd", "remove", "list", "serve"],
)
def test_help_teaches_with_examples(command: list[str], teaches: list[str]) -> None:
    """Each console command's --help shows how to use it with an example."""
    result = CliRunner().invoke(main, [*command, "--help"] if command[-1] != "--help" else command)
    assert result.exit_code == 0
    for text in teaches:
        assert text in result.output, text
