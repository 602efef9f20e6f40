"""Console sessions, CSRF tokens and the login brake (edi/web/auth.py), alone and through the app's routes."""

from __future__ import annotations

import base64
import json
from http.cookies import SimpleCookie

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from edi.cli import main
from edi.web import auth
from tests.web.conftest import ACCOUNTS, PASSWORD, Site, csrf_of, login

KEY = b"k" * 32


def cookie_header(answer: object, name: str) -> str:
    """The Set-Cookie header that sets ``name``."""
    (header,) = [h for h in answer.headers.get_list("set-cookie") if h.startswith(name + "=")]  # type: ignore[attr-defined]
    return header


def attributes(header: str) -> dict[str, str]:
    morsel = next(iter(SimpleCookie(header).values()))
    return {k: v for k, v in morsel.items() if v}


# -- the pure parts --------------------------------------------------------------------------------------------


def test_a_session_cookie_reads_back_as_its_session() -> None:
    """A cookie made for a session reads back as that session while it is not idle."""
    session, cookie = auth.new_session(KEY, "alice", 1000.0)
    assert auth.read_session(KEY, cookie, 1000.0 + 59, 60) == session


@pytest.mark.parametrize(
    "alter",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),
        lambda c: (
            c.split(".")[0] + "." + auth.sign(b"x" * 32, "session", base64.urlsafe_b64decode(c.split(".")[0] + "=="))
        ),
        lambda c: (
            base64.urlsafe_b64encode(json.dumps(["root", "s", 0, 1000]).encode()).decode().rstrip("=")
            + "."
            + c.split(".")[1]
        ),
        lambda c: c.split(".")[0],
        lambda c: c + ".x",
        lambda c: "",
        lambda c: "%%%.%%%",
        lambda c: c + "A" * 5000,
    ],
    ids=["mac", "other-key", "other-body", "no-mac", "extra-dot", "empty", "not-base64", "huge"],
)
def test_an_altered_cookie_is_no_session(alter: object) -> None:
    """A cookie whose body or MAC was changed, signed with another key, cut or padded is no session."""
    _, cookie = auth.new_session(KEY, "alice", 1000.0)
    assert auth.read_session(KEY, alter(cookie), 1000.0, 60) is None  # type: ignore[operator]


def test_a_session_idle_past_the_timeout_or_used_in_the_future_is_none() -> None:
    """A session unused for longer than the idle timeout, or claiming a use in the future, is no session."""
    _, cookie = auth.new_session(KEY, "alice", 1000.0)
    assert auth.read_session(KEY, cookie, 1000.0 + 61, 60) is None
    assert auth.read_session(KEY, cookie, 1000.0 - auth.REFRESH_SECONDS - 1, 3600) is None


def test_a_session_mac_is_not_a_csrf_token_nor_the_reverse() -> None:
    """The session's signature and its CSRF token are HMACs under different purposes: one never passes as the other."""
    session, cookie = auth.new_session(KEY, "alice", 1000.0)
    assert auth.csrf_ok(KEY, session.sid, auth.csrf_token(KEY, session.sid))
    assert not auth.csrf_ok(KEY, session.sid, cookie.split(".")[1])
    assert not auth.csrf_ok(KEY, session.sid, None) and not auth.csrf_ok(KEY, None, "x")
    assert not auth.csrf_ok(KEY, "other", auth.csrf_token(KEY, session.sid))


def test_the_brake_waits_after_five_failures_doubling_and_forgets_an_hour_later() -> None:
    """Five failures are free; then each try waits 2 s, 4 s, ... after the last one; an hour later all is forgotten."""
    brake = auth.LoginBrake()
    keys = ("user:alice", "address:1.2.3.4")
    for n in range(auth.FAILURES_FREE):
        assert brake.wait(keys, 100.0 + n) == 0
        brake.failed(keys, 100.0 + n)
    last = 100.0 + auth.FAILURES_FREE - 1
    assert brake.wait(keys, last) == auth.BRAKE_FIRST_SECONDS
    brake.failed(keys, last + 2)
    assert brake.wait(keys, last + 2) == 2 * auth.BRAKE_FIRST_SECONDS
    assert brake.wait(("user:bob", "address:1.2.3.4"), last + 2) > 0  # the address is slowed too
    assert brake.wait(keys, last + 2 + auth.FAILURES_FORGOTTEN_SECONDS + 1) == 0


# -- sessions through the app ----------------------------------------------------------------------------------


def test_the_session_cookie_is_httponly_samesite_strict_for_the_whole_console(site: Site) -> None:
    """The session cookie is HttpOnly, SameSite=Strict, Path=/ and not Secure by default."""
    client = site.client()
    answer = login(client, "alice")
    assert answer.status_code == 303
    flags = attributes(cookie_header(answer, auth.SESSION_COOKIE))
    assert flags["httponly"] is True and flags["samesite"].lower() == "strict" and flags["path"] == "/"
    assert "secure" not in flags


def test_secure_cookies_makes_both_cookies_secure(secure_site: Site) -> None:
    """With [console] secure_cookies = true the login and session cookies are Secure."""
    client = TestClient(secure_site.app, base_url="https://127.0.0.1", follow_redirects=False)
    form = client.get("/login")
    assert attributes(cookie_header(form, auth.LOGIN_COOKIE))["secure"] is True
    answer = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf": csrf_of(form.text)})
    assert answer.status_code == 303
    assert attributes(cookie_header(answer, auth.SESSION_COOKIE))["secure"] is True


def test_an_altered_session_cookie_is_sent_to_the_login_form(site: Site, operator: TestClient) -> None:
    """A session cookie changed by one character is no session: the page redirects to /login."""
    value = operator.cookies[auth.SESSION_COOKIE]
    body, mac = value.split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged[0] = "acme-ops"
    tampered = base64.urlsafe_b64encode(json.dumps(forged, separators=(",", ":")).encode()).decode().rstrip("=")
    operator.cookies.set(auth.SESSION_COOKIE, f"{tampered}.{mac}")
    assert operator.get("/flows").status_code == 303


def test_an_idle_session_ends_and_a_used_one_lives_on(site: Site) -> None:
    """Idle past idle_minutes, a session must log in again; used every few minutes it is refreshed and stays."""
    idle = site.console.ws.settings.console.idle_minutes * 60
    busy, lazy = site.client("operator"), site.client("acme")
    for _ in range(4):  # four times half the timeout: the busy one is used each time, the lazy one never
        site.clock.advance(idle / 2)
        answer = busy.get("/flows.json")
        assert answer.status_code == 200
        assert auth.SESSION_COOKIE in answer.cookies  # a fresh cookie with the new time of last use
    assert lazy.get("/flows").status_code == 303
    assert lazy.get("/flows").headers["location"] == "/login?next=%2Fflows"
    assert busy.get("/flows").status_code == 200


def test_logout_ends_the_session_for_good(own_site: Site) -> None:
    """After POST /logout the same cookie value is refused, even if a client kept it."""
    client = own_site.client("operator")
    kept = client.cookies[auth.SESSION_COOKIE]
    answer = client.post("/logout", data={"csrf": csrf_of(client.get("/flows").text)})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    replay = own_site.client()
    replay.cookies.set(auth.SESSION_COOKIE, kept)
    assert replay.get("/flows").status_code == 303
    assert replay.get("/flows.json").status_code == 401


@pytest.mark.parametrize("command", ["passwd", "remove"])
def test_a_new_password_or_a_removed_account_ends_its_sessions(command: str, own_site: Site) -> None:
    """`edi users passwd` and `edi users remove` end the account's open sessions; other accounts keep theirs."""
    client, other = own_site.client("acme"), own_site.client("operator")
    assert client.get("/flows").status_code == 200
    own_site.clock.advance(1)  # the command runs after the login
    args = ["--config", str(own_site.console.ws.config), "users", command, "acme-ops"]
    result = CliRunner().invoke(
        main, [*args, "--password-stdin"] if command == "passwd" else args, input="another-pass-2\n"
    )
    assert result.exit_code == 0, result.output
    assert client.get("/flows").status_code == 303
    assert other.get("/flows").status_code == 200


def test_an_account_removed_and_made_again_does_not_revive_old_sessions(own_site: Site) -> None:
    """A session of a removed account stays dead when an account of the same name is made again."""
    client = own_site.client("acme")
    own_site.clock.advance(1)
    config = str(own_site.console.ws.config)
    assert CliRunner().invoke(main, ["--config", config, "users", "remove", "acme-ops"]).exit_code == 0
    again = ["--config", config, "users", "add", "acme-ops", "--role", "sender", "--sender", "acme", "--password-stdin"]
    assert CliRunner().invoke(main, again, input=PASSWORD + "\n").exit_code == 0
    assert client.get("/flows").status_code == 303
    assert own_site.client("acme").get("/flows").status_code == 200


# -- CSRF --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["none", "empty", "other-session", "made-up"])
@pytest.mark.parametrize("action", ["requeue", "logout"])
def test_a_post_without_its_sessions_token_is_403(action: str, token: str, own_site: Site) -> None:
    """POST requeue and logout without the CSRF token, or with another session's, are refused (403) and do nothing."""
    client, other = own_site.client("operator"), own_site.client("operator")
    tokens = {"none": None, "empty": "", "other-session": csrf_of(other.get("/flows").text), "made-up": "A" * 43}
    data = {} if tokens[token] is None else {"csrf": tokens[token]}
    failed = own_site.console.failed_id
    path = f"/flows/{failed}/requeue" if action == "requeue" else "/logout"
    assert client.post(path, data=data).status_code == 403
    assert (own_site.console.ws.root / "failed" / failed).is_dir()
    assert client.get("/flows").status_code == 200  # still logged in


def test_a_login_without_the_forms_token_is_403(site: Site) -> None:
    """POST /login without the login form's token (or with a token for another browser) is refused, right password
    or not."""
    fresh = site.client()
    assert fresh.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 403
    other = site.client()
    token = csrf_of(other.get("/login").text)
    assert fresh.post("/login", data={"username": "alice", "password": PASSWORD, "csrf": token}).status_code == 403
    assert auth.SESSION_COOKIE not in fresh.cookies


# -- the login brake ---------------------------------------------------------------------------------------------


def test_five_failed_logins_brake_the_account_until_the_delay_passes(site: Site) -> None:
    """After 5 wrong passwords for an account, the next login is 429 with Retry-After even with the right password,
    from another address too; once the delay has passed the right password works and resets the account."""
    client = site.client(address="10.0.0.1")
    for _ in range(auth.FAILURES_FREE):
        assert login(client, "alice", "wrong-password").status_code == 401
    for address in ("10.0.0.1", "10.0.0.2"):
        braked = login(site.client(address=address), "alice")
        assert braked.status_code == 429 and "Too many failed logins" in braked.text
        assert 1 <= int(braked.headers["retry-after"]) <= auth.BRAKE_FIRST_SECONDS + 1
    site.clock.advance(auth.BRAKE_FIRST_SECONDS + 0.5)
    assert login(site.client(address="10.0.0.2"), "alice").status_code == 303
    assert login(site.client(address="10.0.0.3"), "alice", "wrong-password").status_code == 401  # counts from 0


def test_five_failed_logins_from_an_address_brake_that_address(site: Site) -> None:
    """Failures spread over several account names from one address brake that address, not the others."""
    names = ["alice", "acme-ops", "opdemat-ops", "nobody", "ghost"]
    for name in names:
        assert login(site.client(address="10.9.9.9"), name, "wrong-password").status_code == 401
    assert login(site.client(address="10.9.9.9"), "acme-ops").status_code == 429
    assert login(site.client(address="10.9.9.8"), "acme-ops").status_code == 303


def test_every_account_of_the_fixtures_can_log_in(site: Site) -> None:
    """The three fixture accounts log in and see the page their role allows."""
    for role in ACCOUNTS:
        assert site.client(role).get("/flows").status_code == 200
