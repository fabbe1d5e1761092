"""The worker's sending phase: picks due deliveries from the database, sends them, records the outcome.

Creating a notification (consumer) and sending it (dispatcher) are separate steps: the consumer only writes
documents with planned deliveries, so a Kafka redelivery can never send anything twice, and the dispatcher
can resume after any crash from what the documents say.

E-mail and the crash window, honestly: a delivery is marked "sending" (with its deterministic Message-ID)
before the SMTP exchange and "sent" after the server accepted it. A dispatcher that finds a delivery still
"sending" after the lease cannot know whether the server accepted it, and marks it "uncertain" instead of
resending: a crash after acceptance therefore never produces a second e-mail, but a crash during the
exchange (before acceptance) loses that e-mail - at most once for that narrow window. The in-app copy
exists either way and the "uncertain" state is visible in the API. Webhooks take the other side of the
trade: receivers can deduplicate by the X-Rapport-Delivery header, so an interrupted webhook is resent.
"""
from __future__ import annotations

import json
import logging
import smtplib
import ssl
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Callable

from prometheus_client import Counter

from services.common.config import Settings
from services.common.mongo import utcnow

from services.notify import domain
from services.notify.adapters.config import NotifySettings
from services.notify.adapters.models import Notification, RecipientPreferences
from services.notify.notifications import escalate_due
from services.notify.adapters.webhooks import Allowance, DeliveryError, WebhookPoster

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Exposed by the worker's /metrics (RAPPORT_WORKER_HTTP_PORT): channel and outcome only, never ids.
DELIVERIES = Counter("rapport_notify_deliveries_total", "External deliveries by outcome", ["channel", "outcome"])


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


def webhook_body(n: Notification) -> bytes:
    """What a webhook receives: ids, codes and links only."""
    return json.dumps({
        "notification_id": n.id, "kind": n.kind, "severity": n.severity, "org_id": n.org_id,
        "clinic_id": n.clinic_id, "recipient_id": n.recipient_id, "client_id": n.client_id,
        "counselor_id": n.counselor_id, "rule": n.rule, "rules": list(n.rules or []), "alert_id": n.alert_id,
        "alert_kind": n.alert_kind, "dimension": n.dimension, "suggestion": n.suggestion,
        "session_number": n.session_number, "referral_id": n.referral_id, "link": n.link,
        "created_at": n.created_at.isoformat()}, separators=(",", ":"), sort_keys=True).encode()


def email_body(notifications: list[Notification], notify_url: str) -> str:
    lines = ["You have notifications in Rapport.", ""]
    for n in notifications:
        details = [domain.SUBJECTS.get(n.kind, n.kind), f"severity {n.severity}"]
        details += [f"dimension {n.dimension}"] if n.dimension else []
        details += [f"rules {', '.join(n.rules)}" if n.rules else f"rule {n.rule}"] if (n.rules or n.rule) else []
        details += [f"session {n.session_number}"] if n.session_number else []
        lines += [" - ".join(details)]
        lines += [f"  {domain.ALERT_KIND_WORDS[n.alert_kind]}."] if n.alert_kind in domain.ALERT_KIND_WORDS else []
        lines += [f"  What to try first: {n.suggestion}"] if n.suggestion else []
        lines += [f"  Client record: {n.link}", f"  Acknowledge: {notify_url.rstrip('/')}/inbox/{n.id}", ""]
    return "\n".join(lines)


class Dispatcher:
    """One pass = settle interrupted sends, escalate what is overdue, send what is due. The worker runs a
    pass every few seconds (a PeriodicTask); `clock` is injectable so tests move time instead of sleeping."""

    def __init__(self, settings: Settings, config: NotifySettings, clock: Clock = utcnow,
                 mailer: SmtpMailer | None = None, poster: WebhookPoster | None = None):
        self._settings, self._config, self._clock = settings, config, clock
        self._mailer = mailer or SmtpMailer(config)
        self._poster = poster or WebhookPoster(config.webhook_timeout_s, Allowance.parse(config.webhook_allowed),
                                               allow_http=settings.environment == "development")
        # A delivery "sending" for longer than this belongs to a dispatcher that died mid-send.
        self._lease = timedelta(seconds=2 * max(config.smtp_timeout_s, config.webhook_timeout_s) + 5)

    def run_once(self) -> None:
        now = self._clock()
        self.settle_interrupted(now)
        # Escalations first, so that the supervisor's e-mail goes out in this same pass.
        escalate_due(now, intake_url=self._settings.intake_url, config=self._config)
        self.send_due(now)

    def settle_interrupted(self, now: datetime) -> None:
        stale = now - self._lease
        collection = Notification._get_collection()
        for channel, outcome, note in ((domain.EMAIL, domain.UNCERTAIN, "interrupted while sending; not resent"),
                                       (domain.WEBHOOK, domain.PENDING, "interrupted while sending; resending")):
            for doc in collection.find({f"deliveries.{channel}.status": domain.SENDING,
                                        f"deliveries.{channel}.sending_since": {"$lt": stale}}, {"_id": 1}):
                DELIVERIES.labels(channel, outcome if outcome == domain.UNCERTAIN else "resend").inc()
                collection.update_one({"_id": doc["_id"], f"deliveries.{channel}.status": domain.SENDING},
                                      {"$set": {f"deliveries.{channel}.status": outcome,
                                                f"deliveries.{channel}.last_error": note,
                                                f"deliveries.{channel}.due_at": now}})
                _reschedule(doc["_id"])

    def send_due(self, now: datetime, limit: int = 100) -> int:
        sent = 0
        for n in Notification.objects(next_delivery_at__lte=now).order_by("next_delivery_at").limit(limit):
            for channel, delivery in sorted((n.deliveries or {}).items()):
                if delivery["status"] == domain.PENDING and delivery["due_at"] <= now:
                    sent += self._deliver(n, channel, delivery, now)
            _reschedule(n.id)
        return sent

    def _deliver(self, n: Notification, channel: str, delivery: dict, now: datetime) -> int:
        prefs = RecipientPreferences.objects(id=RecipientPreferences.key(n.org_id, n.recipient_id)).first()
        if n.acknowledged_at is not None:
            return _settle(n.id, channel, domain.SKIPPED, "acknowledged in the app first")
        if channel == domain.EMAIL:
            if not (prefs and prefs.email):
                return _settle(n.id, channel, domain.SKIPPED, "no e-mail address set")
            batch = _digest_batch(n, now) if delivery.get("digest") else [n]
            return self._send_email(batch, prefs.email, now)
        if not (prefs and prefs.webhook_url and prefs.webhook_secret):
            return _settle(n.id, channel, domain.SKIPPED, "no webhook set")
        if not _claim([n.id], channel, None, now):
            return 0
        try:
            self._poster.post(prefs.webhook_url, prefs.webhook_secret, webhook_body(n), n.id, now)
        except DeliveryError as exc:
            self._failed([n.id], channel, str(exc), now)
            return 0
        return _settle(n.id, channel, domain.SENT, None, sent_at=now)

    def _send_email(self, batch: list[Notification], to: str, now: datetime) -> int:
        ids = [n.id for n in batch]
        message_id = domain.message_id(ids)
        ids = _claim(ids, domain.EMAIL, message_id, now)
        batch = [n for n in batch if n.id in ids]
        if not batch:
            return 0
        if len(batch) == 1:
            subject = domain.subject(batch[0].kind, batch[0].severity, batch[0].dimension)
        else:
            subject = f"[Rapport] Daily digest: {len(batch)} notifications"
        try:
            self._mailer.send(to, subject, email_body(batch, self._settings.notify_url), message_id, now)
        except DeliveryError as exc:
            self._failed(ids, domain.EMAIL, str(exc), now)
            return 0
        for notification_id in ids:
            _settle(notification_id, domain.EMAIL, domain.SENT, None, sent_at=now)
            _reschedule(notification_id)
        return len(ids)

    def _failed(self, ids: list[str], channel: str, error: str, now: datetime) -> None:
        for notification_id in ids:
            n = Notification.objects.get(id=notification_id)
            attempts = n.deliveries[channel].get("attempts", 0) + 1
            gave_up = attempts >= self._config.max_attempts
            due = now + domain.retry_delay(attempts, self._config.retry_base_s, self._config.retry_max_s)
            Notification._get_collection().update_one({"_id": notification_id}, {"$set": {
                f"deliveries.{channel}.status": domain.FAILED if gave_up else domain.PENDING,
                f"deliveries.{channel}.attempts": attempts, f"deliveries.{channel}.last_error": error,
                f"deliveries.{channel}.due_at": due}})
            DELIVERIES.labels(channel, domain.FAILED if gave_up else "retry").inc()
            log.warning("%s delivery of %s failed (attempt %d): %s", channel, notification_id, attempts, error)
            _reschedule(notification_id)


def _claim(ids: list[str], channel: str, message_id: str | None, now: datetime) -> list[str]:
    """Mark pending deliveries "sending" (compare-and-set); returns the ids this dispatcher now owns."""
    claimed = []
    for notification_id in ids:
        update = {f"deliveries.{channel}.status": domain.SENDING, f"deliveries.{channel}.sending_since": now}
        if message_id:
            update[f"deliveries.{channel}.message_id"] = message_id
        result = Notification._get_collection().update_one(
            {"_id": notification_id, f"deliveries.{channel}.status": domain.PENDING}, {"$set": update})
        if result.modified_count:
            claimed.append(notification_id)
    return claimed


def _settle(notification_id: str, channel: str, status: str, note: str | None,
            sent_at: datetime | None = None) -> int:
    DELIVERIES.labels(channel, status).inc()
    update = {f"deliveries.{channel}.status": status}
    if note:
        update[f"deliveries.{channel}.last_error"] = note
    if sent_at:
        update[f"deliveries.{channel}.sent_at"] = sent_at
    Notification._get_collection().update_one({"_id": notification_id}, {"$set": update})
    return int(status == domain.SENT)


def _digest_batch(n: Notification, now: datetime) -> list[Notification]:
    """Every digest e-mail of this recipient that is due now, this one included, oldest first."""
    return list(Notification.objects(__raw__={
        "org_id": n.org_id, "recipient_id": n.recipient_id, "deliveries.email.status": domain.PENDING,
        "deliveries.email.digest": True, "deliveries.email.due_at": {"$lte": now},
        "acknowledged_at": None}).order_by("created_at"))


def _reschedule(notification_id: str) -> None:
    """Store the earliest due time of what is still pending (None: nothing left to send)."""
    n = Notification.objects(id=notification_id).only("deliveries").first()
    if n is None:
        return
    due = [d["due_at"] for d in (n.deliveries or {}).values() if d["status"] == domain.PENDING]
    Notification.objects(id=notification_id).update_one(set__next_delivery_at=min(due, default=None))

