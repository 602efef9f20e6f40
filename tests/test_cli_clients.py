"""`edi clients add|list|remove|token|revoke|secret` (edi/cli_clients.py) through CliRunner on a real workspace:
what they print, their one-line errors and exit codes, what they store, and that what they make opens the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from edi.api import clients
from edi.cli import main
from edi.web.app import create_app
from tests.api.conftest import PROBE, add_probe
from tests.conftest import Workspace, store_rows


def run(ws: Workspace, *args: str) -> Result:
    """`edi --config <ws> clients ARGS`."""
    return CliRunner().invoke(main, ["--config", str(ws.config), "clients", *args])


def errors(result: Result) -> list[str]:
    """What a command said on stderr besides log lines."""
    return [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("{")]


def opens(ws: Workspace, headers: dict[str, str]) -> int:
    """The status of a request to the API (the probe route) with these headers."""
    app = create_app(ws.settings)
    add_probe(app)
    with TestClient(app) as http:
        return http.get(PROBE, headers=headers).status_code


def token_of(ws: Workspace, client_id: str, secret: str) -> int:
    """The status of POST /oauth2/token with this id and secret."""
    with TestClient(create_app(ws.settings)) as http:
        return http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        ).status_code


@pytest.mark.parametrize("command", [[], ["add"], ["list"], ["remove"], ["token"], ["revoke"], ["secret"]])
def test_every_clients_command_has_help_with_an_example(command: list[str]) -> None:
    """`edi clients ... --help` works without a configuration file and teaches by example."""
    result = CliRunner().invoke(main, ["clients", *command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


def test_add_prints_the_secret_once_and_it_gets_a_token(workspace: Workspace) -> None:
    """`clients add` prints the client id, the secret and that it will not be shown again; the store keeps only a
    hash; the id and secret get a token from /oauth2/token."""
    made = run(workspace, "add", "erp-acme", "--sender", "acme")
    assert made.exit_code == 0, made.output
    lines = made.stdout.splitlines()
    assert lines[0] == "client erp-acme created for sender acme"
    client_id = lines[1].removeprefix("client id:").strip()
    secret = lines[2].removeprefix("client secret:").strip()
    assert "will not be shown again" in lines[3]
    assert secret.encode() not in (workspace.root / "tracking.sqlite").read_bytes()
    assert token_of(workspace, client_id, secret) == 200


def test_add_json_is_exactly_the_id_and_the_secret(workspace: Workspace) -> None:
    """`clients add --json` prints exactly {"client_id", "client_secret"} and nothing else."""
    made = run(workspace, "add", "erp", "--sender", "acme", "--json")
    assert made.exit_code == 0
    body = json.loads(made.stdout)
    assert list(body) == ["client_id", "client_secret"] and made.stdout.count("\n") == 1
    assert token_of(workspace, body["client_id"], body["client_secret"]) == 200


def test_add_refuses_an_unknown_sender_a_bad_name_and_a_twin_in_one_line(workspace: Workspace) -> None:
    """An unknown sender (naming the known ones), a bad name and an existing name are one line each, exit 1,
    and nothing is made."""
    unknown = run(workspace, "add", "erp", "--sender", "nobody")
    assert unknown.exit_code == 1
    assert errors(unknown) == [
        f"Error: --sender 'nobody' is not a sender of {workspace.config} (senders: acme, opdemat)"
    ]
    bad = run(workspace, "add", "../erp", "--sender", "acme")
    assert bad.exit_code == 1 and len(errors(bad)) == 1 and "not a valid client name" in errors(bad)[0]
    assert store_rows(workspace, "SELECT * FROM api_clients") == []
    assert run(workspace, "add", "erp", "--sender", "acme").exit_code == 0
    twin = run(workspace, "add", "erp", "--sender", "opdemat")
    assert twin.exit_code == 1 and len(errors(twin)) == 1 and "exists already" in errors(twin)[0]
    missing = run(workspace, "add", "erp2")
    assert missing.exit_code == 2 and "--sender" in missing.stderr


def test_list_shows_clients_and_their_live_tokens_never_a_secret(workspace: Workspace) -> None:
    """`clients list` shows name, id, sender, creation and live tokens; --json the same fields; neither shows a
    secret, a token or a hash."""
    assert run(workspace, "list").stdout == "no API clients (edi clients add NAME --sender ID)\n"
    made = json.loads(run(workspace, "add", "erp", "--sender", "acme", "--json").stdout)
    run(workspace, "add", "billing", "--sender", "opdemat")
    token = json.loads(run(workspace, "token", "erp", "--json").stdout)["token"]
    listed = run(workspace, "list")
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CLIENT", "ID", "SENDER", "CREATED", "TOKENS"]
    assert [line.split()[0] for line in lines[1:]] == ["billing", "erp"]
    assert lines[2].endswith("0 + 1 long-lived")
    as_json = [json.loads(line) for line in run(workspace, "list", "--json").stdout.splitlines()]
    assert as_json[1] | {"created_at": None} == {
        "name": "erp",
        "client_id": made["client_id"],
        "sender": "acme",
        "created_at": None,
        "access_tokens": 0,
        "bearer_tokens": 1,
    }
    everything = listed.stdout + run(workspace, "list", "--json").stdout
    assert made["client_secret"] not in everything and token not in everything and "argon2" not in everything


def test_token_lasts_bearer_days_or_days_and_opens_the_api(workspace: Workspace) -> None:
    """`clients token` makes a long-lived token lasting [api] bearer_days (or --days), shown once, that opens the
    API; a bad --days and an unknown client are one line."""
    run(workspace, "add", "erp", "--sender", "acme")
    before = datetime.now(UTC)
    made = json.loads(run(workspace, "token", "erp", "--json").stdout)
    until = datetime.fromisoformat(made["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=365) <= until - before < timedelta(days=365, minutes=1)
    short = json.loads(run(workspace, "token", "erp", "--days", "0.5", "--json").stdout)
    assert datetime.fromisoformat(short["expires_at"].replace("Z", "+00:00")) - before < timedelta(days=0.51)
    shown = run(workspace, "token", "erp", "--days", "2")
    assert shown.exit_code == 0 and shown.stdout.splitlines()[1].startswith(clients.BEARER_PREFIX)
    assert "will not be shown again" in shown.stdout
    assert opens(workspace, {"Authorization": f"Bearer {made['token']}"}) == 200
    assert run(workspace, "token", "erp", "--days", "0").exit_code == 2
    nobody = run(workspace, "token", "nobody")
    assert nobody.exit_code == 1 and errors(nobody) == ["Error: no client 'nobody' (`edi clients list` shows them)"]


def test_revoke_ends_every_token_now_and_keeps_the_secret(workspace: Workspace) -> None:
    """`clients revoke` sets revoked_at on every live token of the client (401 from then on); its secret still
    gets a token."""
    made = json.loads(run(workspace, "add", "erp", "--sender", "acme", "--json").stdout)
    tokens = [json.loads(run(workspace, "token", "erp", "--json").stdout)["token"] for _ in range(2)]
    revoked = run(workspace, "revoke", "erp")
    assert revoked.exit_code == 0 and revoked.stdout == "2 token(s) of erp revoked\n"
    assert all(r["revoked_at"] for r in store_rows(workspace, "SELECT revoked_at FROM api_tokens"))
    assert [opens(workspace, {"Authorization": f"Bearer {t}"}) for t in tokens] == [401, 401]
    assert token_of(workspace, made["client_id"], made["client_secret"]) == 200


def test_secret_replaces_the_secret(workspace: Workspace) -> None:
    """`clients secret` prints a new secret (shown once); the old one gets no token, the new one does."""
    old = json.loads(run(workspace, "add", "erp", "--sender", "acme", "--json").stdout)
    new = json.loads(run(workspace, "secret", "erp", "--json").stdout)
    assert new["client_id"] == old["client_id"] and new["client_secret"] != old["client_secret"]
    assert token_of(workspace, old["client_id"], old["client_secret"]) == 401
    assert token_of(workspace, new["client_id"], new["client_secret"]) == 200
    shown = run(workspace, "secret", "erp")
    assert shown.exit_code == 0 and "will not be shown again" in shown.stdout


def test_remove_ends_the_client_and_its_tokens(workspace: Workspace) -> None:
    """`clients remove` deletes the client and its tokens (its token is 401); a second remove is one line, exit 1."""
    run(workspace, "add", "erp", "--sender", "acme")
    token = json.loads(run(workspace, "token", "erp", "--json").stdout)["token"]
    removed = run(workspace, "remove", "erp")
    assert removed.exit_code == 0 and removed.stdout == "client erp removed; its tokens no longer open the API\n"
    assert (
        store_rows(workspace, "SELECT * FROM api_clients") == []
        and store_rows(workspace, "SELECT * FROM api_tokens") == []
    )
    assert opens(workspace, {"Authorization": f"Bearer {token}"}) == 401
    again = run(workspace, "remove", "erp")
    assert again.exit_code == 1 and errors(again) == ["Error: no client 'erp' (`edi clients list` shows them)"]


def test_each_change_is_audited_by_edi_clients(workspace: Workspace) -> None:
    """Every change the commands make is one row in actions, by `edi clients`, naming the client."""
    for args in (["add", "erp", "--sender", "acme"], ["token", "erp"], ["revoke", "erp"], ["secret", "erp"]):
        assert run(workspace, *args).exit_code == 0
    assert run(workspace, "remove", "erp").exit_code == 0
    done = store_rows(workspace, "SELECT user, action, target FROM actions ORDER BY id")
    assert [(a["user"], a["action"], a["target"]) for a in done] == [
        ("edi clients", f"clients.{verb}", "erp") for verb in ("add", "token", "revoke", "secret", "remove")
    ]


def test_a_lost_store_is_one_line(workspace: Workspace) -> None:
    """Without the tracking store, `clients list` says so in one line naming `edi store rebuild`, exit 1."""
    (workspace.root / "tracking.sqlite").unlink()
    result = run(workspace, "list")
    assert result.exit_code == 1 and len(errors(result)) == 1 and "edi store rebuild" in errors(result)[0]
