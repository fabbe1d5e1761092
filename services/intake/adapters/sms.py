"""Text messages to clients, through whichever SMS gateway a deployment chooses: no vendor's API here.

The gateway (or a small bridge in front of it) receives a webhook: POST application/json `{"to", "body"}`,
signed like notify's webhooks (X-Rapport-Signature, services/common/webhooks.py) and sent by the same poster,
which refuses internal addresses the deployment has not allowed. Without RAPPORT_SMS_WEBHOOK_URL there is no
sender and the pages offer no text messages.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Protocol

from services.common.config import Settings
from services.common.webhooks import Allowance, WebhookPoster

GATEWAY_TIMEOUT_S = 5.0  # a front desk waits on the send; a gateway slower than this counts as failed


class SmsSender(Protocol):
    def send(self, to: str, body: str, message_id: str, now: datetime) -> None:
        """Hand the message to the gateway; DeliveryError when it did not take it."""


class WebhookSms:
    def __init__(self, url: str, secret: str, poster: WebhookPoster):
        self._url, self._secret, self._poster = url, secret, poster

    def send(self, to: str, body: str, message_id: str, now: datetime) -> None:
        payload = json.dumps({"to": to, "body": body}, separators=(",", ":")).encode()
        self._poster.post(self._url, self._secret, payload, message_id, now)


def sms_sender(settings: Settings) -> SmsSender | None:
    if not settings.sms_webhook_url:
        return None
    development = settings.environment == "development"
    poster = WebhookPoster(GATEWAY_TIMEOUT_S, Allowance.parse(settings.sms_webhook_allowed),
                           allow_http=development)
    return WebhookSms(settings.sms_webhook_url, settings.sms_webhook_secret, poster)
