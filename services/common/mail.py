"""Sending e-mail over SMTP (STARTTLS and login when configured); every failure is a DeliveryError that
names the kind of failure only, never what the server said about the message.

Shared by notify (alerts to staff) and intake (links to clients), each with its own relay settings: intake's
RAPPORT_SMTP_* (services/common/config.py), notify's RAPPORT_NOTIFY_SMTP_* (services/notify/adapters/config.py).
Two because the two audiences often need two senders - a clinic's no-reply address and a transactional relay
for clients, an internal relay for staff - at the cost of configuring the same server twice where one serves.
"""
from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from services.common.webhooks import DeliveryError


@dataclass(frozen=True)
class SmtpSettings:
    """An SMTP relay; the settings of intake and notify extend it. STARTTLS before any credentials are sent."""
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = "rapport@localhost"
    smtp_timeout_s: float = 10.0


class SmtpMailer:
    def __init__(self, config: SmtpSettings):
        self._config = config

    def send(self, to: str, subject: str, body: str, message_id: str, now: datetime) -> None:
        c = self._config
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = c.smtp_from, to, subject
        message["Message-ID"], message["Date"] = message_id, format_datetime(now)
        message.set_content(body)
        try:
            with smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=c.smtp_timeout_s) as smtp:
                if c.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.smtp_username:
                    smtp.login(c.smtp_username, c.smtp_password)
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(type(exc).__name__) from None
