"""What supervisors ask referral to do; built by the HTTP entrypoints (API and pages) from validated input."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.auth import Identity


@dataclass(frozen=True)
class AcceptReferral:
    identity: Identity
    referral_id: str
    counselor_id: str


@dataclass(frozen=True)
class DeclineReferral:
    identity: Identity
    referral_id: str
    reason: str
    note: str | None = None
