"""Staff identity shared by every service: signed tokens (JWT, HS256) and tenant scoping.

Intake signs a token when a staff member signs in; every service verifies it with the shared secret, so no
service has to ask another who the caller is. A token names the organisation, the clinics and the role;
every query for client data is narrowed by them, and what is outside them is answered as "not found".
Browsers carry the token in an HttpOnly cookie that is re-issued on activity, so a session lapses after
`session_idle_minutes` without requests; API callers send it as `Authorization: Bearer`.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt

from .config import Settings

ROLES = ("admin", "supervisor", "counselor", "front_desk")
ISSUER = "rapport"
AUDIENCE = "rapport"
ALGORITHM = "HS256"
COOKIE_NAME = "rapport_token"


class AuthError(Exception):
    """No valid identity: missing, malformed, expired or tampered token."""


@dataclass(frozen=True)
class Identity:
    staff_id: str
    org_id: str
    clinic_ids: tuple[str, ...]
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def has_role(self, *roles: str) -> bool:
        return self.role in roles

    def can_access_clinic(self, org_id: str, clinic_id: str) -> bool:
        """Admins see every clinic of their organisation; everyone else only their own clinics."""
        return org_id == self.org_id and (self.is_admin or clinic_id in self.clinic_ids)

    def clinic_filter(self) -> dict:
        """Keyword filter narrowing a mongoengine query to what this identity may see."""
        return {"org_id": self.org_id} if self.is_admin else {"org_id": self.org_id,
                                                               "clinic_id__in": list(self.clinic_ids)}


def issue_token(settings: Settings, identity: Identity, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    claims = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": identity.staff_id, "org": identity.org_id,
        "clinics": list(identity.clinic_ids), "role": identity.role, "iat": now,
        "exp": now + timedelta(minutes=settings.session_idle_minutes), "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def verify_token(settings: Settings, token: str) -> Identity:
    try:
        # One algorithm only: a token that says alg=none or RS256 is rejected, never trusted.
        claims = jwt.decode(token, settings.jwt_secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                            issuer=ISSUER, options={"require": ["exp", "iat", "sub", "org", "role"]})
    except jwt.PyJWTError as exc:
        raise AuthError(type(exc).__name__) from None
    role, clinics = claims.get("role"), claims.get("clinics", [])
    if role not in ROLES or not isinstance(clinics, list):
        raise AuthError("InvalidClaims")
    return Identity(staff_id=str(claims["sub"]), org_id=str(claims["org"]),
                    clinic_ids=tuple(str(c) for c in clinics), role=role)


def token_age(settings: Settings, token: str, now: datetime | None = None) -> timedelta:
    """How long ago a (valid) token was issued; used to re-issue browser cookies on activity."""
    claims = jwt.decode(token, settings.jwt_secret, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER)
    return (now or datetime.now(timezone.utc)) - datetime.fromtimestamp(claims["iat"], timezone.utc)

