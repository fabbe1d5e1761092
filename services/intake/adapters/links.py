"""Signed links for clients: whoever holds one may answer one questionnaire once, until it expires.

The token carries the request id and its expiry, signed with the platform secret and a salt per kind of
link, so a feedback token never opens an exit interview and a token cannot be forged or extended. Single
use is enforced by the database (the answer's id is the request id), not by the token.
"""
from __future__ import annotations

from datetime import datetime, timezone

from itsdangerous import BadSignature, URLSafeSerializer

KINDS = ("feedback", "exit_interview")


class LinkInvalid(ValueError):
    """Not a token we signed for this kind of link (mistyped, truncated, forged)."""


class LinkExpired(ValueError):
    """A genuine token past its expiry."""


def _serializer(secret: str, kind: str) -> URLSafeSerializer:
    if kind not in KINDS:
        raise ValueError(f"unknown link kind {kind}")
    return URLSafeSerializer(secret, salt=f"rapport-intake-{kind}-link")


def sign(secret: str, kind: str, request_id: str, expires_at: datetime) -> str:
    return _serializer(secret, kind).dumps({"r": request_id, "e": int(expires_at.timestamp())})


def verify(secret: str, kind: str, token: str, now: datetime | None = None) -> str:
    """The request id a token names; LinkInvalid or LinkExpired otherwise."""
    try:
        claims = _serializer(secret, kind).loads(token)
    except BadSignature:
        raise LinkInvalid() from None
    if not isinstance(claims, dict) or not isinstance(claims.get("r"), str) or not isinstance(claims.get("e"), int):
        raise LinkInvalid()
    if (now or datetime.now(timezone.utc)).timestamp() >= claims["e"]:
        raise LinkExpired()
    return claims["r"]


# Where each kind of link opens (services/intake/entrypoints/pages.py: /f/<token>, /x/<token>).
PATHS = {"feedback": "f", "exit_interview": "x"}


def url(base_url: str, secret: str, kind: str, request_id: str, expires_at: datetime) -> str:
    """The address the client opens: intake's public URL, the kind's path and the signed token."""
    return f"{base_url.rstrip('/')}/{PATHS[kind]}/{sign(secret, kind, request_id, expires_at)}"
