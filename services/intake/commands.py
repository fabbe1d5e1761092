"""What staff and clients ask intake to do; built by the HTTP entrypoints (pages and JSON) from validated
input. `actor` is the signed-in staff member; client links carry no actor, only the request id."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Mapping

from services.common.auth import Identity


@dataclass(frozen=True)
class SeedOrganisation:
    """An organisation, its clinics and its first admin: the operator's step before anyone can sign in
    (`python -m services.intake.entrypoints.seed`). What exists already is left as it is."""

    org_id: str
    org_name: str
    clinics: Mapping[str, str]  # clinic id -> name
    admin_email: str
    admin_name: str
    admin_password: str


@dataclass(frozen=True)
class CreateClinic:
    actor: Identity
    name: str
    instrument_id: str


@dataclass(frozen=True)
class UpdateClinic:
    actor: Identity
    clinic_id: str
    changes: dict[str, Any]


@dataclass(frozen=True)
class CreateStaff:
    actor: Identity
    email: str
    display_name: str
    password: str
    role: str
    clinic_ids: list[str]
    supervisor_id: str | None = None
    counselor: dict[str, Any] | None = None


@dataclass(frozen=True)
class UpdateStaff:
    """Changes to a staff member; `counselor` holds changes to the directory profile."""
    actor: Identity
    staff_id: str
    changes: dict[str, Any]


@dataclass(frozen=True)
class SignOut:
    """End every session of the signed-in staff member (on every device)."""
    actor: Identity


@dataclass(frozen=True)
class RegisterClient:
    actor: Identity
    clinic_id: str
    first_name: str
    last_name: str
    concerns: list[str]
    date_of_birth: date | None = None
    email: str | None = None
    phone: str | None = None
    preferences: dict[str, Any] = field(default_factory=dict)
    urgency: str = "routine"
    notes: str | None = None
    counselor_id: str | None = None
    # Consent to be contacted, per channel ({"email": bool, "sms": bool}); empty: none recorded.
    contact_consent: Mapping[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class AssignCounselor:
    actor: Identity
    client_id: str
    counselor_id: str


@dataclass(frozen=True)
class RecordSession:
    actor: Identity
    client_id: str
    held_on: date
    counselor_id: str | None = None
    number: int | None = None


@dataclass(frozen=True)
class CreateFeedbackRequest:
    actor: Identity
    client_id: str
    session_id: str
    kind: str
    valid_for: timedelta
    # Required when the client answered this session already (domain.check_reissue).
    reissue_reason: str | None = None
    reissue_note: str | None = None


@dataclass(frozen=True)
class RecordContactConsent:
    """The client agrees to (or withdraws from) being contacted by e-mail and by text message."""
    actor: Identity
    client_id: str
    email: bool
    sms: bool


@dataclass(frozen=True)
class SendLink:
    """Send an open link to the client by e-mail or text message, with their consent."""
    actor: Identity
    request_id: str
    channel: str


@dataclass(frozen=True)
class SendDueReminders:
    """The worker's pass: remind clients of open links they have not answered (domain.reminder_due)."""


@dataclass(frozen=True)
class SubmitFeedback:
    """Staff entering a client's answers through the API (a paper form, a kiosk)."""
    actor: Identity
    client_id: str
    session_number: int
    answers: dict[str, Any]
    counselor_id: str | None = None
    instrument_id: str | None = None


@dataclass(frozen=True)
class AnswerFeedbackLink:
    request_id: str
    answers: dict[str, Any]


@dataclass(frozen=True)
class AnswerExitInterview:
    request_id: str
    answers: dict[str, Any]
