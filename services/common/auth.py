"""Staff identity shared by every service: signed tokens (JWT, HS256) and tenant scoping.

Intake signs a token when a staff member signs in; every service verifies it with the shared secret, so no
service has to ask another who the caller is. A token names the organisation, the clinics and the role;
every query for client data is narrowed by them, and what is outside them is answered as "not found".
Browsers carry the token in an HttpOnly cookie that is re-issued on activity, so a session lapses after
`session_idle_minutes` without requests, and ends for good `session_max_hours` after the sign-in whatever
the activity; API callers send it as `Authorization: Bearer`.

A token also carries its sign-in (session id and time) and the staff member's token version. Intake raises
the version when the member is deactivated, changes role or clinics, gets a new password or signs out, and
tells every service (staff.updated); each refuses tokens of an older version (services/common/sessions.py).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
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
    # The staff member's token version when the token was issued: a later version revokes it.
    token_version: int = 0
    # The sign-in the token belongs to, and when it happened (the session's absolute lifetime runs from it).
    session_id: str = ""
    signed_in_at: datetime | None = None

    def signed_in(self, now: datetime | None = None) -> "Identity":
        """This identity as a new sign-in: a session id of its own, starting now."""
        return replace(self, session_id=uuid.uuid4().hex, signed_in_at=now or datetime.now(timezone.utc))

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

    def client_filter(self) -> dict:
        """The filter for client data: the caller's clinics (admins: the organisation), and for a counselor
        their own clients (documents naming the counselor in `counselor_id`) in any clinic of the
        organisation.

        A counselor's access follows the assignment, not the clinics in their token: a telehealth counselor
        of one clinic who takes a client of another (an accepted referral) must open that client's record,
        their own sessions' scores and their notifications. Whether a counselor may take a client of that
        clinic is decided once, when the client is assigned (intake's `domain.check_assignment`: same
        clinic, or telehealth); checking the clinic again here would only lock out a counselor the
        organisation placed there. The counterpart: a counselor moved to another clinic keeps seeing the
        clients still assigned to them until they are reassigned."""
        if self.role == "counselor":
            return {"org_id": self.org_id, "counselor_id": self.staff_id}
        return self.clinic_filter()


def issue_token(settings: Settings, identity: Identity, now: datetime | None = None) -> str:
    """A token for the identity's session (a new one when it has none): it expires after the idle time, and
    never later than the session's absolute lifetime."""
    now = now or datetime.now(timezone.utc)
    if not identity.session_id:
        identity = identity.signed_in(now)
    signed_in_at = identity.signed_in_at or now
    ends = signed_in_at + timedelta(hours=settings.session_max_hours)
    claims = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": identity.staff_id, "org": identity.org_id,
        "clinics": list(identity.clinic_ids), "role": identity.role, "iat": now,
        "exp": min(now + timedelta(minutes=settings.session_idle_minutes), ends), "jti": uuid.uuid4().hex,
        "ver": identity.token_version, "sid": identity.session_id, "auth": int(signed_in_at.timestamp()),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def verify_token(settings: Settings, token: str, now: datetime | None = None) -> Identity:
    try:
        # One algorithm only: a token that says alg=none or RS256 is rejected, never trusted.
        claims = jwt.decode(token, settings.jwt_secret, algorithms=[ALGORITHM], audience=AUDIENCE,
                            issuer=ISSUER, options={"require": ["exp", "iat", "sub", "org", "role"]})
    except jwt.PyJWTError as exc:
        raise AuthError(type(exc).__name__) from None
    role, clinics, version = claims.get("role"), claims.get("clinics", []), claims.get("ver", 0)
    if role not in ROLES or not isinstance(clinics, list) or not isinstance(version, int):
        raise AuthError("InvalidClaims")
    signed_in_at = datetime.fromtimestamp(claims.get("auth", claims["iat"]), timezone.utc)
    if (now or datetime.now(timezone.utc)) - signed_in_at > timedelta(hours=settings.session_max_hours):
        raise AuthError("SessionEnded")  # however active: a session has an absolute lifetime
    return Identity(staff_id=str(claims["sub"]), org_id=str(claims["org"]),
                    clinic_ids=tuple(str(c) for c in clinics), role=role, token_version=version,
                    session_id=str(claims.get("sid", "")), signed_in_at=signed_in_at)


def token_age(settings: Settings, token: str, now: datetime | None = None) -> timedelta:
    """How long ago a (valid) token was issued; used to re-issue browser cookies on activity."""
    claims = jwt.decode(token, settings.jwt_secret, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER)
    return (now or datetime.now(timezone.utc)) - datetime.fromtimestamp(claims["iat"], timezone.utc)
