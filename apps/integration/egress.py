"""Outbound HTTP to facility webhooks, safe against server-side request forgery (issue 15).

A target is checked when it is subscribed and again at every delivery: https only, an allowed port,
and every address its name resolves to is global (`ipaddress.is_global`, which excludes private,
loopback, link-local, shared 100.64.0.0/10, reserved...) and not multicast, 6to4, Teredo or an
IPv4-mapped private address. The connection then goes to the address that was checked (the name is
kept for SNI, the certificate and Host), so a DNS answer that changes between check and connect
(rebinding) cannot redirect it. Redirects are not followed. Errors are reduced to a few categories
so a delivery log cannot be used to map which internal ports answer.

`resolve` is the one place that asks DNS: the outbound network seam that tests replace.
`CER_WEBHOOK_ALLOW_PRIVATE` (tests and local development only) lifts the address and port checks so a
receiver on 127.0.0.1 can be used; `CER_WEBHOOK_ALLOW_HTTP` allows plain http likewise.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

# Delivery error categories (WebhookAttempt.error / WebhookDelivery.last_error).
REFUSED = "destination_refused"
UNREACHABLE = "unreachable"  # DNS, connection, TLS or timeout: deliberately one category
HTTP_ERROR = "http_error"

TUNNELS = (
    ipaddress.ip_network("2001::/32"),  # Teredo
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64, well-known prefix
    ipaddress.ip_network("64:ff9b:1::/48"),  # NAT64, local use
)


class TargetRefused(ValueError):
    """The URL may not be a webhook target; `reason` is a short machine-readable code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CheckedTarget:
    scheme: str
    host: str
    port: int
    path: str  # path and query
    addresses: tuple[str, ...]


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the seam tests stub: no test ever asks real DNS)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_allowed(text: str) -> bool:
    """Whether an address is on the public internet and unicast (never our own networks)."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address_allowed(str(address.ipv4_mapped))
        if address.sixtofour is not None or any(address in net for net in TUNNELS):
            return False  # tunnels carry an IPv4 address of anyone's choosing
    return address.is_global and not address.is_multicast


def _relaxed() -> bool:
    return bool(getattr(settings, "CER_WEBHOOK_ALLOW_PRIVATE", False))


def target_check(url: str) -> CheckedTarget:
    """Check a webhook URL and resolve it once; raises TargetRefused with a short reason."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("invalid") from None
    scheme = parts.scheme.lower()
    allowed_schemes = {"https", "http"} if getattr(settings, "CER_WEBHOOK_ALLOW_HTTP", False) else {"https"}
    if scheme not in allowed_schemes:
        raise TargetRefused("scheme")
    if parts.username or parts.password:
        raise TargetRefused("credentials")
    host = parts.hostname or ""
    if not host:
        raise TargetRefused("host")
    port = port or (443 if scheme == "https" else 80)
    if not _relaxed() and port not in settings.CER_WEBHOOK_PORTS:
        raise TargetRefused("port")
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        raise TargetRefused("unresolvable") from None
    if not addresses:
        raise TargetRefused("unresolvable")
    if not _relaxed() and not all(address_allowed(a) for a in addresses):
        raise TargetRefused("not_public")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return CheckedTarget(scheme, host, port, path, tuple(addresses))


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str  # "" when delivered (2xx), else one of the categories above


def post(
    target: CheckedTarget, *, body: bytes, headers: dict[str, str], timeout: tuple[float, float]
) -> Outcome:
    """POST to the first checked address of `target` (pinned), without following redirects."""
    address = target.addresses[0]
    common: dict[str, Any] = {
        "port": target.port,
        "timeout": urllib3.Timeout(connect=timeout[0], read=timeout[1]),
        "retries": False,
        "maxsize": 1,
    }
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            **common,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, **common)
    host_header = target.host if target.port in (80, 443) else f"{target.host}:{target.port}"
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            assert_same_host=False,
            preload_content=False,
        )
        status = response.status
        response.drain_conn()
        response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError):
        return Outcome(None, UNREACHABLE)
    finally:
        pool.close()
    return Outcome(status, "" if 200 <= status < 300 else HTTP_ERROR)
