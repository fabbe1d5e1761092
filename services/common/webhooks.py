"""Webhook deliveries that cannot be turned against the network they are sent from.

A webhook URL is chosen by a staff member; the worker that posts to it sits inside the deployment, beside the
databases and the other services. So a destination is resolved first and refused when any of its addresses
is not a public one (loopback, private, link-local, shared, reserved, multicast, unspecified, and IPv4
mapped into IPv6 likewise) unless the deployment allows it by name or network; the connection is then made
to the vetted address itself (so a DNS answer cannot change between the check and the connection), checked
again once connected, and redirects are never followed. Plain http is for development only. What a failure
says is a class of outcome, never what answered at an address: a refused destination, one that could not
be reached and one that closed the connection all read alike to the person who set the URL.

Shared by notify (staff webhooks) and intake (the SMS gateway's webhook): one poster, one signature.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """Value of X-Rapport-Signature: `t=<ts>,v1=<hex HMAC-SHA256 of "<ts>." + body>`.

    Binding the timestamp lets a receiver reject replays of an old body.
    """
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_webhook(secret: str, header: str, body: bytes) -> bool:
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        expected = sign_webhook(secret, int(parts["t"]), body)
    except (KeyError, ValueError):
        return False
    return hmac.compare_digest(expected, header)


class DeliveryError(Exception):
    """A send that did not go through; the message names a class or status, never addresses or content."""


NOT_ALLOWED = "destination not allowed"
UNREACHABLE = "could not deliver"


@dataclass(frozen=True)
class Allowance:
    """Internal destinations a deployment allows (an organisation's own receiver on its network)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> "Allowance":
        """'10.20.0.0/16, hooks.internal.example, 127.0.0.1' -> networks and host names."""
        hosts, networks = set(), []
        for entry in (e.strip() for e in spec.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def permits(self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return host.lower().rstrip(".") in self.hosts or any(address in n for n in self.networks)


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_global and not address.is_multicast


def vetted_address(host: str, port: int, allowance: Allowance) -> str:
    """The address to connect to; DeliveryError when the name resolves to nothing usable or to any
    address that is neither public nor allowed (a name with one internal address among public ones is
    refused too: which one a connection would use is not ours to choose)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise DeliveryError(UNREACHABLE) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses or not all(is_public(a) or allowance.permits(host, a) for a in addresses):
        raise DeliveryError(NOT_ALLOWED)
    return str(addresses[0])


def check_url(url: str, allow_http: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of a URL a webhook may use; DeliveryError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in (("https", "http") if allow_http else ("https",)) or not parts.hostname:
        raise DeliveryError(NOT_ALLOWED)
    if parts.username or parts.password:
        raise DeliveryError(NOT_ALLOWED)  # credentials in a URL would travel in every log line of it
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class _Pinned:
    """A connection to the vetted address, whatever the name resolves to by then, checked once made."""

    pinned: str
    allowance: Allowance

    def connect(self) -> None:
        sock = socket.create_connection((self.pinned, self.port), self.timeout)
        peer = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
        if not (is_public(peer) or self.allowance.permits(self.host, peer)):
            sock.close()
            raise DeliveryError(NOT_ALLOWED)
        self.sock = self._wrap(sock)

    def _wrap(self, sock: socket.socket) -> socket.socket:
        return sock


class _PinnedHTTP(_Pinned, http.client.HTTPConnection):
    pass


class _PinnedHTTPS(_Pinned, http.client.HTTPSConnection):
    def _wrap(self, sock: socket.socket) -> socket.socket:
        # The certificate is checked against the name in the URL, not the address connected to.
        return self._context.wrap_socket(sock, server_hostname=self.host)


class WebhookPoster:
    def __init__(self, timeout_s: float, allowance: Allowance, allow_http: bool):
        self._timeout_s, self._allowance, self._allow_http = timeout_s, allowance, allow_http

    def post(self, url: str, secret: str, body: bytes, delivery_id: str, now: datetime) -> None:
        scheme, host, port, path = check_url(url, self._allow_http)
        address = vetted_address(host, port, self._allowance)
        if scheme == "https":
            connection = _PinnedHTTPS(host, port, timeout=self._timeout_s, context=ssl.create_default_context())
        else:
            connection = _PinnedHTTP(host, port, timeout=self._timeout_s)
        connection.pinned, connection.allowance = address, self._allowance
        headers = {"Content-Type": "application/json", "User-Agent": "rapport",
                   "X-Rapport-Delivery": delivery_id,
                   "X-Rapport-Signature": sign_webhook(secret, int(now.timestamp()), body)}
        try:
            connection.request("POST", path, body=body, headers=headers)
            status = connection.getresponse().status
        except DeliveryError:
            raise
        except (OSError, http.client.HTTPException):
            raise DeliveryError(UNREACHABLE) from None
        finally:
            connection.close()
        if 300 <= status < 400:
            raise DeliveryError(f"HTTP {status}: redirects are not followed")
        if status >= 400:
            raise DeliveryError(f"HTTP {status}")
