"""Passwords (argon2id) and sign-in: the only place that turns an e-mail and a password into an identity."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.common import audit, ratelimit
from services.common.auth import Identity

from .models import Clinic, Staff

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
# Verified against when the e-mail is unknown, so that a wrong e-mail takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("rapport-no-such-account")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


# Sign-in attempts per account and per address in a 15-minute window, counted across every process.
ATTEMPT_WINDOW_S = 15 * 60
ATTEMPTS_PER_ACCOUNT = 10
ATTEMPTS_PER_ADDRESS = 100


def throttle(email: str, address: str | None) -> ratelimit.Decision:
    """Count a sign-in attempt; refused once the account or the address made too many."""
    by_account = ratelimit.hit("signin-account", normalise_email(email), ATTEMPTS_PER_ACCOUNT, ATTEMPT_WINDOW_S)
    by_address = ratelimit.hit("signin-address", address or "unknown", ATTEMPTS_PER_ADDRESS, ATTEMPT_WINDOW_S)
    return by_account if not by_account.allowed else by_address


def sign_in(email: str, password: str, request_id: str | None) -> Identity | None:
    """Authenticate and leave a record in the audit trail either way (ids only, never the e-mail)."""
    identity = authenticate(email, password)
    audit.record("intake", "sign-in", "ok" if identity else "refused", request_id=request_id,
                 actor=identity.staff_id if identity else None, role=identity.role if identity else None,
                 org_id=identity.org_id if identity else None)
    return identity


def authenticate(email: str, password: str) -> Identity | None:
    staff = Staff.objects(email=normalise_email(email), active=True).first()
    try:
        _hasher.verify(staff.password_hash if staff else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if staff is None:
        return None
    if _hasher.check_needs_rehash(staff.password_hash):
        Staff.objects(id=staff.id).update_one(set__password_hash=hash_password(password))
    return identity_of(staff)


def identity_of(staff: Staff) -> Identity:
    """Admins carry every clinic of their organisation, so pages can offer them a choice of clinic."""
    clinics = staff.clinic_ids
    if staff.role == "admin":
        clinics = [c.id for c in Clinic.objects(org_id=staff.org_id).only("id")] or clinics
    return Identity(staff_id=staff.id, org_id=staff.org_id, clinic_ids=tuple(clinics), role=staff.role)


def normalise_email(email: str) -> str:
    return email.strip().lower()
