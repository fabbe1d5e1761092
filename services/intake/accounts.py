"""Passwords (argon2id) and sign-in: the only place that turns an e-mail and a password into an identity."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.common.auth import Identity

from .models import Clinic, Staff

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10
# Verified against when the e-mail is unknown, so that a wrong e-mail takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("rapport-no-such-account")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


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
