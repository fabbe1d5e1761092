"""Intake's wiring (services/common/wiring.py): its handlers need a publisher and a clock, and, to reach
clients with their links, the settings (link addresses, reminder policy), the platform's SMTP mailer and the
SMS sender (None when no gateway is configured). Its worker runs the migration of the e-mail index before it
starts, and a reminder pass every `link_reminder_poll_s`."""
from __future__ import annotations

from typing import Any

from services.common.bus import MessageBus
from services.common.config import Settings
from services.common.mail import SmtpMailer
from services.common.wiring import ServiceWiring
from services.common.worker import PeriodicTask

from services.intake import handlers
from services.intake.adapters.models import OUTBOX_DOCUMENTS, drop_global_email_index
from services.intake.adapters.sms import sms_sender
from services.intake.commands import SendDueReminders


def dependencies(settings: Settings) -> dict[str, Any]:
    return {"settings": settings, "mailer": SmtpMailer(settings), "sms": sms_sender(settings)}


def tasks(settings: Settings, bus: MessageBus) -> list[PeriodicTask]:
    """Reminders of unanswered links (handlers.send_due_reminders); none when the policy allows none."""
    if settings.link_reminder_max <= 0:
        return []
    return [PeriodicTask("link-reminders", settings.link_reminder_poll_s, lambda: bus.handle(SendDueReminders()))]


WIRING = ServiceWiring("intake", handlers.COMMAND_HANDLERS, handlers.EVENT_HANDLERS,
                       outbox_documents=OUTBOX_DOCUMENTS, migrations=(drop_global_email_index,),
                       dependencies=dependencies, tasks=tasks)
bootstrap, event_handlers, worker = WIRING.bootstrap, WIRING.event_handlers, WIRING.worker
