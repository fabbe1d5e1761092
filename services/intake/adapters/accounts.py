"""Passwords (argon2id) and sign-in: the only place that turns an e-mail and a password into an identity."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.common import audit, ratelimit
from services.common.auth import Identity

from services.intake.adapters.models import Clinic, Staff

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


class SignInAmbiguous(Exception):
    """The e-mail and password open accounts of several organisations: the caller must say which."""


# Accounts with one e-mail, across organisations, that a sign-in tries at most.
MAX_ACCOUNTS_PER_EMAIL = 5


def sign_in(email: str, password: str, request_id: str | None, org_id: str | None = None) -> Identity | None:
    """Authenticate and leave a record in the audit trail either way (ids only, never the e-mail): a refusal
    is filed under the organisation of each account the e-mail names, so its admins see attempts on it."""
    accounts = _accounts(email, org_id)
    try:
        identity = authenticate(accounts, password)
    except SignInAmbiguous:
        _record_attempt(accounts, "ambiguous", request_id)
        raise
    if identity is None:
        _record_attempt(accounts, "refused", request_id)
    else:
        audit.record("intake", "sign-in", "ok", request_id=request_id, actor=identity.staff_id,
                     role=identity.role, org_id=identity.org_id)
    return identity


def record_throttled(email: str, request_id: str | None) -> None:
    """A sign-in refused for too many attempts, in the trail of the organisations of the accounts tried."""
    _record_attempt(_accounts(email, None), "throttled", request_id)


def _accounts(email: str, org_id: str | None) -> list[Staff]:
    where = {"email": normalise_email(email), "active": True, **({"org_id": org_id} if org_id else {})}
    return list(Staff.objects(**where).limit(MAX_ACCOUNTS_PER_EMAIL))


def _record_attempt(accounts: list[Staff], outcome: str, request_id: str | None) -> None:
    for staff in accounts or [None]:
        audit.record("intake", "sign-in", outcome, request_id=request_id,
                     org_id=staff.org_id if staff else None, subject=f"staff_id:{staff.id}" if staff else None)


def authenticate(accounts: list[Staff], password: str) -> Identity | None:
    """The identity of the one account the password opens; None for none; SignInAmbiguous for several."""
    opened = []
    for staff in accounts or [None]:
        try:
            _hasher.verify(staff.password_hash if staff else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            continue
        if staff is not None:
            opened.append(staff)
    if len(opened) > 1:
        raise SignInAmbiguous()
    if not opened:
        return None
    staff = opened[0]
    if _hasher.check_needs_rehash(staff.password_hash):
        Staff.objects(id=staff.id).update_one(set__password_hash=hash_password(password))
    return identity_of(staff).signed_in()


def identity_of(staff: Staff) -> Identity:
    """Admins carry every clinic of their organisation, so pages can offer them a choice of clinic."""
    clinics = staff.clinic_ids
    if staff.role == "admin":
        clinics = [c.id for c in Clinic.objects(org_id=staff.org_id).only("id")] or clinics
    return Identity(staff_id=staff.id, org_id=staff.org_id, clinic_ids=tuple(clinics), role=staff.role,
                    token_version=staff.token_version)


def normalise_email(email: str) -> str:
    return email.strip().lower()
