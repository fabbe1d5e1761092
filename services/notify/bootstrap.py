"""Notify's wiring (services/common/wiring.py): besides a publisher and a clock, its handlers get notify's
settings, the SMTP mailer, the webhook poster and the base URLs of the links they put in messages (intake's
client records, referral's pages); the worker runs a dispatch pass every `dispatch_poll_s`."""
from __future__ import annotations

from typing import Any

from services.common.bus import MessageBus
from services.common.config import Settings
from services.common.wiring import ServiceWiring
from services.common.worker import PeriodicTask

from services.notify import handlers
from services.notify.adapters.config import NotifySettings, notify_settings
from services.common.mail import SmtpMailer
from services.notify.adapters.models import AlertAcknowledgement
from services.common.webhooks import Allowance, WebhookPoster
from services.notify.commands import Dispatch


def dependencies(settings: Settings, config: NotifySettings | None = None) -> dict[str, Any]:
    config = config or notify_settings()
    development = settings.environment == "development"
    return {"config": config, "intake_url": settings.intake_url, "referral_url": settings.referral_url,
            "notify_url": settings.notify_url,
            "allow_http_webhooks": development, "mailer": SmtpMailer(config),
            "poster": WebhookPoster(config.webhook_timeout_s, Allowance.parse(config.webhook_allowed),
                                    allow_http=development)}


def tasks(settings: Settings, bus: MessageBus) -> list[PeriodicTask]:
    """The sending phase: due deliveries out, overdue alerts escalated (see handlers.dispatch)."""
    return [PeriodicTask("dispatcher", notify_settings().dispatch_poll_s, lambda: bus.handle(Dispatch()))]


WIRING = ServiceWiring("notify", handlers.COMMAND_HANDLERS, handlers.EVENT_HANDLERS,
                       outbox_documents=(AlertAcknowledgement,), dependencies=dependencies, tasks=tasks)
bootstrap, event_handlers, worker = WIRING.bootstrap, WIRING.event_handlers, WIRING.worker
