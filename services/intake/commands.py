"""What the front desk and clients ask intake to do; built by the HTTP entrypoints from validated input."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class SubmitIntake:
    org_id: str
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
    assigned_counselor_id: str | None = None


@dataclass(frozen=True)
class SubmitFeedback:
    org_id: str
    clinic_id: str
    client_id: str
    counselor_id: str
    session_number: int
    instrument_id: str
    answers: dict[str, float]
