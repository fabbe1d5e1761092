"""Notify's own settings (its SMTP relay for alerts to staff, webhooks, retries, escalation), read from
RAPPORT_NOTIFY_<NAME> variables.

They sit beside the shared Settings because only notify sends alerts to staff; intake's messages to clients
use the shared RAPPORT_SMTP_* (services/common/config.py). The SMTP fields and the sender are shared:
services/common/mail.py.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from functools import cache
from typing import Any, Mapping

from services.common.config import coerce
from services.common.mail import SmtpSettings

PREFIX = "RAPPORT_NOTIFY_"


@dataclass(frozen=True)
class NotifySettings(SmtpSettings):
    webhook_timeout_s: float = 5.0
    # Internal webhook receivers the deployment allows, by host name or network (comma-separated, e.g.
    # "10.20.0.0/16,hooks.internal.example"). Every other internal address is refused.
    webhook_allowed: str = ""
    # A channel that failed this many times is marked failed; the in-app copy stays.
    max_attempts: int = 5
    retry_base_s: float = 30.0
    retry_max_s: float = 3600.0
    # A "high" alert nobody acknowledged within this time goes to the counselor's supervisor.
    escalate_after_s: float = 4 * 3600.0
    # How often the worker's dispatcher looks for due deliveries and escalations.
    dispatch_poll_s: float = 1.0
    # Local hour at which a recipient's daily digest goes out.
    digest_hour: int = 8

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> "NotifySettings":
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(f"{PREFIX}{field.name.upper()}")
            if raw is not None:
                values[field.name] = coerce(field.type, raw, f"{PREFIX}{field.name.upper()}")
        return replace(cls(**values), **dict(overrides or {}))


@cache
def notify_settings() -> NotifySettings:
    """The process's notify settings, read once from the environment."""
    return NotifySettings.load()
