"""Sending e-mail over SMTP (STARTTLS and login when configured); every failure is a DeliveryError that
names the kind of failure only, never what the server said about the message."""
from __future__ import annotations

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from services.notify.adapters.config import NotifySettings
from services.notify.adapters.webhooks import DeliveryError


class SmtpMailer:
    def __init__(self, config: NotifySettings):
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
