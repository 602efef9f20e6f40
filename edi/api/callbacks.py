"""Where a webhook may call, and the call itself: no request ever goes to an address the operator did not allow.

- :func:`check_url` (at creation): ``https://`` only (``http://`` only to a loopback address written as such, which
  never leaves the machine); no user or password, no fragment; the host (and port) must be in ``[api]
  webhook_allowed_hosts``: ``erp.example.fr`` (that host, the scheme's default port), ``*.example.fr`` (its
  subdomains, not itself), ``erp.example.fr:8443`` (that port only); and its name must resolve to addresses
  :func:`usable` accepts.
- :func:`post` (each delivery): checks the URL again against the settings as they are now, resolves the name again,
  connects to an accepted address it resolved (never resolving twice: a name that changes its answer between the
  check and the connection gains nothing), verifies TLS against the host's name, sends one POST, and does not
  follow redirects (a 3xx is a failed delivery).

:func:`usable`: a name must not resolve to a loopback, link-local (cloud metadata's 169.254.169.254), multicast,
unspecified or reserved address; such an address is reached only when the URL names it literally and the operator
allowed it. Private networks (10/8, 192.168/16, ...) are allowed: an ERP on the LAN is a normal callback, and the
operator named its host.

Reads DNS and the network; writes nothing; raises :class:`CallbackRefused` (a URL that may not be called, with why)
and :class:`CallbackFailed` (a call that did not succeed, with the HTTP status when there was one).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from edi.errors import EdiError

MAX_URL = 2048
MAX_ANSWER = 64 * 1024  # bytes of a callback's answer read (and thrown away)
USER_AGENT = "edi-webhooks"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(EdiError):
    """A callback URL that may not be called (the message says why)."""


class CallbackFailed(EdiError):
    """A call that did not succeed: not reached, timed out, or answered other than 2xx."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Target:
    """A callback URL taken apart: what to connect to and what to ask for."""

    url: str
    https: bool
    host: str  # lower case, IPv6 without brackets
    port: int
    path: str  # with its query
    literal: Address | None  # the host, when it is an IP address


def check_url(url: str, allowed: Sequence[str], *, resolve: bool = True) -> Target:
    """The URL taken apart, if a webhook may call it (see the module); raises :class:`CallbackRefused`."""
    target = _parse(url)
    if not host_allowed(target.host, target.port, target.https, allowed):
        shown = f"{target.host}:{target.port}"
        if not allowed:
            raise CallbackRefused(
                f"callbacks are not allowed to any host: the operator has not set [api] webhook_allowed_hosts "
                f"({shown} would need to be listed)"
            )
        raise CallbackRefused(f"{shown} is not a host the operator allows callbacks to ([api] webhook_allowed_hosts)")
    if not target.https and not (target.literal is not None and target.literal.is_loopback):
        raise CallbackRefused("the callback must be https:// (http:// only to a loopback address such as 127.0.0.1)")
    if resolve:
        addresses(target)
    return target


def _parse(url: str) -> Target:
    if not isinstance(url, str) or not url or len(url) > MAX_URL or not url.isascii() or not url.isprintable():
        raise CallbackRefused(f"callbackUrl must be an absolute https:// URL of at most {MAX_URL} ASCII characters")
    if any(c in url for c in " \\"):
        raise CallbackRefused("callbackUrl must not contain spaces or backslashes")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CallbackRefused(f"callbackUrl is not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        raise CallbackRefused("callbackUrl must be an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callbackUrl must not carry a user or a password")
    if parts.fragment:
        raise CallbackRefused("callbackUrl must not have a #fragment")
    host = parts.hostname.lower().rstrip(".")
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
        if not all(0 < len(label) < 64 for label in host.split(".")) or len(host) > 253:
            raise CallbackRefused(f"{host!r} is not a host name") from None
    https = scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, https, host, port or (443 if https else 80), path, literal)


def host_allowed(host: str, port: int, https: bool, allowed: Sequence[str]) -> bool:
    """Whether an entry of ``[api] webhook_allowed_hosts`` allows ``host:port``."""
    default = 443 if https else 80
    for entry in allowed:
        name, _, given = entry.lower().rpartition(":") if _has_port(entry) else (entry.lower(), "", "")
        if (int(given) if given else default) != port:
            continue
        name = name.strip("[]")
        if name.startswith("*."):
            if host.endswith(name[1:]) and host != name[2:]:
                return True
        elif host == name:
            return True
    return False


def _has_port(entry: str) -> bool:
    head, sep, tail = entry.rpartition(":")
    return bool(sep) and tail.isdigit() and (not head.count(":") or head.endswith("]"))


def usable(address: Address, target: Target) -> bool:
    """Whether a webhook may connect to ``address`` for ``target`` (see the module)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    special = (
        address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
    )
    return not special or address == target.literal


def addresses(target: Target) -> list[Address]:
    """The addresses the target's host resolves to now that a webhook may connect to; raises
    :class:`CallbackRefused` when it resolves to none, or to one it may not."""
    if target.literal is not None:
        found: list[Address] = [target.literal]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise CallbackRefused(f"{target.host} does not resolve: {exc}") from None
        found = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if address not in found:
                found.append(address)
    refused = [a for a in found if not usable(a, target)]
    if refused or not found:
        raise CallbackRefused(
            f"{target.host} resolves to an address callbacks may not reach ({', '.join(map(str, refused))})"
        )
    return found


class _PinnedHTTP(http.client.HTTPConnection):
    """A plain connection to one address already checked (a loopback callback): nothing resolves the name again."""

    def __init__(self, target: Target, address: Address, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = str(address)

    def connect(self) -> None:
        """Connect to the pinned address."""
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """A TLS connection to one address already checked, speaking to the host by its name (Host header, SNI, the
    certificate checked against the name): nothing resolves the name again."""

    def __init__(self, target: Target, address: Address, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = str(address)
        self._tls = context

    def connect(self) -> None:
        """Connect to the pinned address, then TLS."""
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def post(
    url: str,
    payload: bytes,
    headers: Mapping[str, str],
    allowed: Sequence[str],
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> int:
    """POST ``payload`` (JSON) to a callback the settings allow now; return the 2xx status. Raises
    :class:`CallbackRefused` (the URL or what it resolves to is not allowed now) and :class:`CallbackFailed`."""
    target = check_url(url, allowed, resolve=False)
    found = addresses(target)
    tls = (context or ssl.create_default_context()) if target.https else None
    error: CallbackFailed | None = None
    for address in found:
        connection: http.client.HTTPConnection = (
            _PinnedHTTPS(target, address, timeout, tls) if tls is not None else _PinnedHTTP(target, address, timeout)
        )
        try:
            connection.request(
                "POST",
                target.path,
                body=payload,
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            )
            answer = connection.getresponse()
            answer.read(MAX_ANSWER)
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, TLS: try the next address
            error = CallbackFailed(f"{target.host} ({address}): {type(exc).__name__}: {exc}")
            continue
        finally:
            connection.close()
        status = answer.status
        if 200 <= status < 300:
            return status
        if 300 <= status < 400:
            where = answer.getheader("Location", "")[:200]
            raise CallbackFailed(f"answered {status}, a redirect (to {where!r}): redirects are not followed", status)
        raise CallbackFailed(f"answered {status} {answer.reason}"[:200], status)
    assert error is not None
    raise error
