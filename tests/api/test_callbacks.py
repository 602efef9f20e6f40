"""Where webhooks may call (edi.api.callbacks): the operator's allowed hosts, https, the addresses a name resolves
to, checked again at each call; redirects never followed."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import pytest

from edi.api.callbacks import CallbackFailed, CallbackRefused, check_url, host_allowed, post, usable
from tests.hook_server import HookServer, serve
from tests.smtp_server import self_signed


@pytest.mark.parametrize(
    ("host", "port", "https", "allowed", "expected"),
    [
        ("erp.example.fr", 443, True, ["erp.example.fr"], True),
        ("erp.example.fr", 8443, True, ["erp.example.fr"], False),  # no port: the scheme's default only
        ("erp.example.fr", 8443, True, ["erp.example.fr:8443"], True),
        ("erp.example.fr", 443, True, ["erp.example.fr:8443"], False),
        ("a.example.fr", 443, True, ["*.example.fr"], True),
        ("b.a.example.fr", 443, True, ["*.example.fr"], True),
        ("example.fr", 443, True, ["*.example.fr"], False),  # the wildcard is its subdomains, not itself
        ("evilexample.fr", 443, True, ["*.example.fr"], False),
        ("erp.example.fr.evil.com", 443, True, ["erp.example.fr"], False),
        ("127.0.0.1", 80, False, ["127.0.0.1"], True),
        ("erp.example.fr", 443, True, [], False),
    ],
)
def test_which_hosts_an_entry_allows(host: str, port: int, https: bool, allowed: list[str], expected: bool) -> None:
    """An entry allows its host on the scheme's default port, or on the port it names; '*.' its subdomains."""
    assert host_allowed(host, port, https, allowed) is expected


def test_special_addresses_only_when_named_literally() -> None:
    """Loopback, link-local (cloud metadata), unspecified, multicast addresses are refused for a name, and an
    IPv4-mapped IPv6 address is judged as its IPv4; private networks are fine; a literal the operator allowed is."""
    named = check_url("https://erp.example.fr/h", ["erp.example.fr"], resolve=False)
    for text in ("127.0.0.1", "169.254.169.254", "0.0.0.0", "224.0.0.1", "::1", "::ffff:127.0.0.1", "fe80::1"):
        assert not usable(ipaddress.ip_address(text), named), text
    for text in ("10.1.2.3", "192.168.1.10", "93.184.216.34"):
        assert usable(ipaddress.ip_address(text), named), text
    literal = check_url("http://127.0.0.1:8080/h", ["127.0.0.1:8080"])
    assert usable(ipaddress.ip_address("127.0.0.1"), literal)


def test_https_is_required_but_for_loopback() -> None:
    """http:// is refused to a host that is not a loopback address, even an allowed one."""
    with pytest.raises(CallbackRefused, match="must be https"):
        check_url("http://erp.example.fr/h", ["erp.example.fr:80"], resolve=False)
    assert check_url("http://127.0.0.1:9/h", ["127.0.0.1:9"]).https is False


def test_a_name_resolving_to_loopback_is_never_called(hooks: HookServer) -> None:
    """An allowed name that resolves to 127.0.0.1 (localhost) is refused at the call, and nothing reaches the
    server listening there."""
    with pytest.raises(CallbackRefused, match="may not reach"):
        post(f"https://localhost:{hooks.port}/h", b"{}", {}, [f"localhost:{hooks.port}"], 5)
    assert hooks.got() == []


def test_a_host_no_longer_allowed_is_not_called(hooks: HookServer) -> None:
    """The allowed hosts are checked again at each call: once the operator removes the host, nothing is sent."""
    assert post(hooks.url(), b"{}", {}, [f"127.0.0.1:{hooks.port}"], 5) == 200
    with pytest.raises(CallbackRefused):
        post(hooks.url(), b"{}", {}, ["erp.example.fr"], 5)
    assert len(hooks.got()) == 1


def test_a_redirect_is_not_followed(hooks: HookServer) -> None:
    """A 3xx answer is a failed call naming the redirect; its target gets nothing."""
    hooks.script, hooks.location = [302], hooks.url("/elsewhere")
    with pytest.raises(CallbackFailed, match="redirects are not followed") as caught:
        post(hooks.url(), b"{}", {}, [f"127.0.0.1:{hooks.port}"], 5)
    assert caught.value.status == 302
    assert [c.path for c in hooks.got()] == ["/hook"]


def test_a_callback_that_is_down_is_a_failed_call() -> None:
    """Nothing listening: a CallbackFailed without a status (the event waits for its next attempt)."""
    from tests.smtp_server import free_port

    port = free_port()
    with pytest.raises(CallbackFailed) as caught:
        post(f"http://127.0.0.1:{port}/h", b"{}", {}, [f"127.0.0.1:{port}"], 2)
    assert caught.value.status is None


def test_https_verifies_the_certificate_against_the_host(tmp_path: Path) -> None:
    """An https callback is called over TLS to the address checked, its certificate verified for the URL's host: a
    server whose certificate the context trusts gets the call; one it does not trust gets none."""
    made = self_signed(tmp_path)
    if made is None:
        pytest.skip("openssl is not installed")
    cert, key = made
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    server = serve(server_side)
    hooks = next(server)
    try:
        allowed = [f"127.0.0.1:{hooks.port}"]
        trusting = ssl.create_default_context(cafile=str(cert))
        assert post(hooks.url(), b"{}", {}, allowed, 5, trusting) == 200
        with pytest.raises(CallbackFailed, match="CERTIFICATE_VERIFY_FAILED"):
            post(hooks.url(), b"{}", {}, allowed, 5)  # the system's authorities do not know it
        assert len(hooks.got()) == 1
    finally:
        server.close()
