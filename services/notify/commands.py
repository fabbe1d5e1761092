"""What staff (API and pages) and the worker's clock ask notify to do.

Notify's other writes come from events (alerts, referrals, assignments, staff changes): see EVENT_HANDLERS.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from services.common.auth import Identity


@dataclass(frozen=True)
class Acknowledge:
    """The recipient saw a notification; for an alliance alert, `action` says what they did about it."""

    identity: Identity
    notification_id: str
    action: str | None = None


@dataclass(frozen=True)
class AcknowledgeMany:
    """The inbox's bulk acknowledgement: several of the recipient's notifications at once, with one `action`
    for the alliance alerts among them (a client's alerts are often dealt with in one session)."""

    identity: Identity
    notification_ids: tuple[str, ...]
    action: str | None = None


@dataclass(frozen=True)
class ReplacePreferences:
    """A staff member's own delivery settings, all at once (the API's PUT, the preferences page)."""

    identity: Identity
    email: str | None
    webhook_url: str | None
    channels: Mapping[str, list[str]] = field(default_factory=dict)
    quiet_hours: Mapping[str, str] | None = None
    timezone: str = "UTC"
    daily_digest: bool = False
    rotate_webhook_secret: bool = False


@dataclass(frozen=True)
class Dispatch:
    """One pass of the sending phase (the worker's clock asks every few seconds): settle interrupted sends,
    escalate overdue alerts, send what is due."""
