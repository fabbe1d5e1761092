"""Notify's handlers: plain functions, listed in COMMAND_HANDLERS and EVENT_HANDLERS at the bottom.

Events: alerts, referrals and assignments become notifications (see domain.route_*); counselor.updated and
staff.updated keep the recipient read model (who works where, in which role, under which supervisor).
Commands: a recipient acknowledges or replaces their delivery settings; the worker's clock dispatches.

Creating a notification (an event) and sending it (Dispatch) are separate steps: the event handlers only
write documents with planned deliveries, so a Kafka redelivery can never send anything twice, and a
dispatch pass resumes after any crash from what the documents say.

E-mail and the crash window, honestly: a delivery is marked "sending" (with its deterministic Message-ID)
before the SMTP exchange and "sent" after the server accepted it. A pass that finds a delivery still
"sending" after the lease cannot know whether the server accepted it, and marks it "uncertain" instead of
resending: a crash after acceptance therefore never produces a second e-mail, but a crash during the
exchange (before acceptance) loses that e-mail - at most once for that narrow window. The in-app copy
exists either way and the "uncertain" state is visible in the API. Webhooks take the other side of the
trade: receivers can deduplicate by the X-Rapport-Delivery header, so an interrupted webhook is resent.
"""
from __future__ import annotations

import logging
import secrets
import uuid
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Callable, Iterable

from urllib.parse import urlsplit

from marshmallow import ValidationError
from mongoengine import NotUniqueError
from prometheus_client import Counter
from pymongo.errors import DuplicateKeyError

from services.common import sessions
from services.common.bus import Clock
from services.common.events import CrossTenantEvent, Event, Topic, derived_id, make_event
from services.common.kafka import BatchHandler
from services.common.outbox import Publish, PublishAll, insert_all_once, insert_once, outbox_entry, publish_or_defer

from services.notify import domain, queries
from services.notify.adapters.config import NotifySettings
from services.common.mail import SmtpMailer
from services.notify.adapters.models import AlertAcknowledgement, Notification, RecipientPreferences, StaffMember
from services.common.webhooks import DeliveryError, WebhookPoster
from services.notify.commands import Acknowledge, AcknowledgeMany, Dispatch, ReplacePreferences

log = logging.getLogger(__name__)
PRODUCER = "notify"
ACKNOWLEDGEMENT_NAMESPACE = uuid.UUID("0d6f1c8e-3b7a-4c55-9a0e-6f2d8b1e4c37")
# Exposed by the worker's /metrics (RAPPORT_WORKER_HTTP_PORT): channel and outcome only, never ids.
DELIVERIES = Counter("rapport_notify_deliveries_total", "External deliveries by outcome", ["channel", "outcome"])


# --- notifications from events ------------------------------------------------------------------------------

def _same_organisation(event: Event, *staff_ids: str | None,
                       known_only_elsewhere: Callable[[str, str], bool] = queries.known_only_elsewhere) -> None:
    """An event may only address staff of its own organisation. Staff ids are unique across organisations,
    so an id the read model knows in another organisation and not in this one is refused (CrossTenantEvent)
    rather than given a notification, or a record, under the event's organisation."""
    for staff_id in set(filter(None, staff_ids)):
        if known_only_elsewhere(event.org_id, staff_id):
            raise CrossTenantEvent(f"{event.type}: a staff member of another organisation")


def _notifications(event: Event, drafts: list[domain.Draft], key: str | None = None, *, now: datetime,
                   config: NotifySettings, intake_url: str, referral_url: str | None = None,
                   known_only_elsewhere: Callable[[str, str], bool] = queries.known_only_elsewhere,
                   preferences: Callable[[str, str], domain.Preferences] = queries.preferences_of,
                   ) -> list[Notification]:
    """The event's notifications, not stored yet, once every staff member it names is of its organisation."""
    for draft in drafts:
        _same_organisation(event, draft.recipient_id, draft.counselor_id, known_only_elsewhere=known_only_elsewhere)
    return notifications_for(event.event_id, event.org_id, event.clinic_id, drafts, now=now, intake_url=intake_url,
                             referral_url=referral_url,
                             config=config, key=key, preferences=preferences)


def notifications_for(source_event_id: str, org_id: str, clinic_id: str, drafts: Iterable[domain.Draft], *,
                      now: datetime, intake_url: str, config: NotifySettings, escalation_of: str | None = None,
                      referral_url: str | None = None,
                      key: str | None = None,
                      preferences: Callable[[str, str], domain.Preferences] = queries.preferences_of,
                      ) -> list[Notification]:
    """One notification per draft, not stored yet, with its external deliveries planned from the
    recipient's `preferences`.

    The id derives from (source event, recipient) - or (`key`, recipient) when several events announce
    the same thing - so a redelivered event or a retried escalation finds the notification it created
    before instead of making a second one.
    """
    created = []
    for draft in drafts:
        prefs = preferences(org_id, draft.recipient_id)
        plans = domain.plan_deliveries(draft.kind, draft.severity, now, prefs, config.digest_hour)
        deliveries = {p.channel: {"status": domain.PENDING, "due_at": p.due_at, "attempts": 0,
                                  "last_error": None, "digest": p.digest} for p in plans}
        created.append(Notification(
            id=domain.notification_id(key or source_event_id, draft.recipient_id), org_id=org_id,
            clinic_id=clinic_id, recipient_id=draft.recipient_id, kind=draft.kind, severity=draft.severity,
            client_id=draft.client_id, counselor_id=draft.counselor_id, source_event_id=source_event_id,
            rule=draft.rule, dimension=draft.dimension, session_number=draft.session_number,
            referral_id=draft.referral_id, alert_id=draft.alert_id, alert_kind=draft.alert_kind,
            rules=list(draft.rules), link=domain.notification_link(draft, intake_url, referral_url),
            **_score_fields(draft.scores),
            created_at=now, deliveries=deliveries, escalation_of=escalation_of,
            next_delivery_at=min((p.due_at for p in plans), default=None),
            escalate_at=domain.escalate_at(draft.kind, draft.severity, now,
                                           timedelta(seconds=config.escalate_after_s))))
    return created


def _score_fields(scores: domain.AlertScores | None) -> dict[str, Any]:
    if scores is None:
        return {}
    return {"total": scores.total, "usual_total": scores.usual, "subscales": dict(scores.subscales),
            "usual_subscales": dict(scores.usual_subscales)}


def _new_client_key(event: Event) -> str:
    # Registering a client with a counselor publishes intake.submitted and client.assigned in one request
    # (one correlation id): the counselor hears of the new client once, whichever event arrives first.
    return f"{event.correlation_id}.new_client"


def handle_alliance_dropped_batch(events: list[Event], publish_all: PublishAll, *, clock: Clock,
                                  config: NotifySettings, intake_url: str) -> None:
    """Alerts come in bursts (a clinic's evening of feedback, a replay): a poll's alerts are checked and
    stored together, with one insert for all their notifications, and each recipient's organisation and
    settings looked up once. Idempotent by itself - a notification's id derives from its event and
    recipient - so the loop keeps no processed-event record for it."""
    known_only_elsewhere, preferences = cache(queries.known_only_elsewhere), cache(queries.preferences_of)
    now = clock()
    insert_all_once([notification for event in events
                     for notification in _notifications(event, domain.route_alliance_dropped(event.payload),
                                                        now=now, config=config, intake_url=intake_url,
                                                        known_only_elsewhere=known_only_elsewhere,
                                                        preferences=preferences)])


def handle_referral_recommended(event: Event, publish: Publish, *, clock: Clock, config: NotifySettings,
                                intake_url: str, referral_url: str) -> None:
    staff = queries.clinic_staff(event.org_id, event.clinic_id)
    insert_all_once(_notifications(event, domain.route_referral_recommended(event.payload, event.clinic_id, staff),
                                   now=clock(), config=config, intake_url=intake_url, referral_url=referral_url))


def handle_referral_decided(event: Event, publish: Publish, *, clock: Clock) -> None:
    """A decided referral - accepted, declined, or superseded by another assignment - leaves nothing to
    review: the supervisors' "referral to review" notifications stop being open (and their pending e-mails
    and webhooks are skipped, as for any acknowledged notification). Who is told of the move itself is
    routed from client.assigned (domain.route_client_assigned)."""
    Notification.objects(org_id=event.org_id, referral_id=event.payload.referral_id,
                         kind=domain.REFERRAL_RECOMMENDED, acknowledged_at=None).update(
        set__acknowledged_at=clock(), unset__escalate_at=True)


def handle_intake_submitted(event: Event, publish: Publish, *, clock: Clock, config: NotifySettings,
                            intake_url: str) -> None:
    insert_all_once(_notifications(event, domain.route_intake_submitted(event.payload), _new_client_key(event),
                                   now=clock(), config=config, intake_url=intake_url))


def handle_client_assigned(event: Event, publish: Publish, *, clock: Clock, config: NotifySettings,
                           intake_url: str, referral_url: str) -> None:
    staff = queries.clinic_staff(event.org_id, event.clinic_id)
    # A referral's move is announced once per assignment event; a registration's once per request.
    key = None if event.payload.referral_id else _new_client_key(event)
    insert_all_once(_notifications(event, domain.route_client_assigned(event.payload, event.clinic_id, staff), key,
                                   now=clock(), config=config, intake_url=intake_url, referral_url=referral_url))


# --- the recipient read model -------------------------------------------------------------------------------

def handle_staff_updated(event: Event, publish: Publish) -> None:
    p = event.payload
    _same_organisation(event, p.staff_id, p.supervisor_id)
    sessions.handle_staff_updated(event, publish)
    _upsert_staff(event.org_id, p.staff_id, event.occurred_at, role=p.role, clinic_ids=p.clinic_ids,
                  supervisor_id=p.supervisor_id, active=p.active)


def handle_counselor_updated(event: Event, publish: Publish) -> None:
    # The directory entry says nothing about the role; a staff.updated role (e.g. a supervisor who also
    # counsels) is kept, and a counselor unknown so far is recorded as one.
    p = event.payload
    _same_organisation(event, p.counselor_id, p.supervisor_id)
    _upsert_staff(event.org_id, p.counselor_id, event.occurred_at, default_role="counselor",
                  clinic_ids=p.clinic_ids, supervisor_id=p.supervisor_id, active=p.active)


def _upsert_staff(org_id: str, staff_id: str, as_of: datetime, default_role: str | None = None,
                  **fields) -> None:
    """Apply a staff record unless a newer event already did (events of one staff member may be
    redelivered or, across producers, arrive out of order)."""
    key = StaffMember.key(org_id, staff_id)
    collection = StaffMember._get_collection()
    changed = collection.update_one({"_id": key, "as_of": {"$lte": as_of}}, {"$set": {**fields, "as_of": as_of}})
    if changed.matched_count:
        return
    try:
        collection.insert_one({"_id": key, "org_id": org_id, "staff_id": staff_id, "as_of": as_of,
                               "role": fields.get("role") or default_role, **fields})
    except DuplicateKeyError:
        pass  # a newer record is stored: this event is stale


# --- what recipients ask --------------------------------------------------------------------------------------

def acknowledge(cmd: Acknowledge, publish: Publish, clock: Clock) -> Notification:
    """Acknowledge once; later calls keep the first time and answer. Acknowledging also cancels the
    escalation. For an alliance alert, what the counselor did goes to scoring (alert.acknowledged), which
    counts which repairs are followed by recovery."""
    return _acknowledge(queries.own_notification(cmd.identity, cmd.notification_id), cmd.action, clock(), publish)


def acknowledge_many(cmd: AcknowledgeMany, publish: Publish, clock: Clock) -> list[Notification]:
    """The inbox's bulk acknowledgement: each one as if acknowledged alone, with the same action. Every id is
    checked to be the caller's own before any is acknowledged, so a foreign or unknown id changes nothing."""
    now = clock()
    return [_acknowledge(n, cmd.action, now, publish)
            for n in queries.own_notifications(cmd.identity, cmd.notification_ids)]


def _acknowledge(notification: Notification, action: str | None, now: datetime, publish: Publish) -> Notification:
    first = Notification.objects(id=notification.id, acknowledged_at=None).update_one(
        set__acknowledged_at=now, set__action=action, unset__escalate_at=True)
    if first and notification.alert_id and notification.kind == domain.ALLIANCE_DROPPED:
        record = insert_once(AlertAcknowledgement(
            id=notification.id, org_id=notification.org_id, alert_id=notification.alert_id, action=action,
            acknowledged_at=now, pending_events=[outbox_entry(make_event(Topic.ALERT_ACKNOWLEDGED, {
                "alert_id": notification.alert_id, "client_id": notification.client_id,
                "counselor_id": notification.counselor_id or notification.recipient_id,
                "acknowledged_by": notification.recipient_id, "action": action},
                org_id=notification.org_id, clinic_id=notification.clinic_id, producer=PRODUCER,
                event_id=derived_id(ACKNOWLEDGEMENT_NAMESPACE, notification.id), occurred_at=now),
                key=notification.client_id)]))
        publish_or_defer(record, publish)
    return Notification.objects.get(id=notification.id)


def replace_preferences(cmd: ReplacePreferences, clock: Clock,
                        allow_http_webhooks: bool) -> tuple[RecipientPreferences, str | None]:
    """Store the new settings; returns them and the webhook secret if one was generated just now.

    A secret is generated for a new webhook URL or on request (rotation) and dropped with the URL, so a
    receiver's secret never outlives the endpoint it was made for. Outside development a webhook goes over
    https only (where it may go is checked at each delivery): ValidationError naming the field otherwise.
    """
    url = cmd.webhook_url
    if url and not allow_http_webhooks and urlsplit(url).scheme != "https":
        raise ValidationError({"webhook_url": ["Use an https:// address."]})
    prefs = queries.stored_preferences(cmd.identity)
    new_secret = None
    if url and (url != prefs.webhook_url or not prefs.webhook_secret or cmd.rotate_webhook_secret):
        new_secret = secrets.token_hex(32)
    quiet = cmd.quiet_hours or {}
    prefs.email, prefs.webhook_url = cmd.email, url
    prefs.webhook_secret = new_secret or (prefs.webhook_secret if url else None)
    prefs.channels = {kind: sorted(set(channels)) for kind, channels in cmd.channels.items()}
    prefs.quiet_start, prefs.quiet_end = quiet.get("start"), quiet.get("end")
    prefs.timezone, prefs.daily_digest, prefs.updated_at = cmd.timezone, cmd.daily_digest, clock()
    try:
        prefs.save()
    except NotUniqueError:
        # A first save that lost to another first save of the same person's settings (two tabs, a double
        # submit): those are stored now, so replacing them is an ordinary save; the last one wins.
        return replace_preferences(cmd, clock, allow_http_webhooks)
    return prefs, new_secret


# --- the sending phase ------------------------------------------------------------------------------------------

def dispatch(cmd: Dispatch, clock: Clock, config: NotifySettings, intake_url: str, notify_url: str,
             mailer: SmtpMailer, poster: WebhookPoster) -> None:
    now = clock()
    _settle_interrupted(now, _lease(config))
    # Escalations first, so that the supervisor's e-mail goes out in this same pass.
    _escalate_due(now, intake_url=intake_url, config=config)
    _send_due(now, config, notify_url, mailer, poster)


def _lease(config: NotifySettings) -> timedelta:
    """A delivery "sending" for longer than this belongs to a dispatch pass that died mid-send."""
    return timedelta(seconds=2 * max(config.smtp_timeout_s, config.webhook_timeout_s) + 5)


def _delivery_fields(channel: str, **values: Any) -> dict[str, Any]:
    """`$set` paths of one channel's delivery record (see Notification.deliveries)."""
    return {f"deliveries.{channel}.{name}": value for name, value in values.items()}


def _settle_interrupted(now: datetime, lease: timedelta) -> None:
    collection = Notification._get_collection()
    for channel, outcome, note in ((domain.EMAIL, domain.UNCERTAIN, "interrupted while sending; not resent"),
                                   (domain.WEBHOOK, domain.PENDING, "interrupted while sending; resending")):
        stale = _delivery_fields(channel, status=domain.SENDING, sending_since={"$lt": now - lease})
        for doc in collection.find(stale, {"_id": 1}):
            DELIVERIES.labels(channel, outcome if outcome == domain.UNCERTAIN else "resend").inc()
            collection.update_one({"_id": doc["_id"], **_delivery_fields(channel, status=domain.SENDING)},
                                  {"$set": _delivery_fields(channel, status=outcome, last_error=note, due_at=now)})
            _reschedule(doc["_id"])


def _escalate_due(now: datetime, *, intake_url: str, config: NotifySettings, limit: int = 100) -> int:
    """Send each unacknowledged alert whose escalation time has passed to the counselor's supervisor.

    Due times live on the notifications, so a restarted worker picks up where it stopped; the escalation's
    id derives from the alert, so a pass interrupted after creating it does not create a second one.
    """
    escalated = 0
    for alert in Notification.objects(escalate_at__lte=now, acknowledged_at=None, escalated_at=None).limit(limit):
        supervisor = queries.supervisor_of(alert.org_id, alert.counselor_id or alert.recipient_id)
        if supervisor is None:
            # The read model may learn the supervisor later (staff.updated): look again after a while.
            log.warning("no supervisor known for escalation of %s", alert.id)
            Notification.objects(id=alert.id).update_one(
                set__escalate_at=now + timedelta(seconds=config.retry_max_s))
            continue
        insert_all_once(notifications_for(alert.source_event_id, alert.org_id, alert.clinic_id,
                                          [domain.escalation_draft(alert.draft(), supervisor)], now=now,
                                          intake_url=intake_url, config=config, escalation_of=alert.id,
                                          key=f"{alert.source_event_id}.escalation"))
        Notification.objects(id=alert.id, escalated_at=None).update_one(
            set__escalated_at=now, set__escalated_to=supervisor, unset__escalate_at=True)
        escalated += 1
    return escalated


def _send_due(now: datetime, config: NotifySettings, notify_url: str, mailer: SmtpMailer, poster: WebhookPoster,
              limit: int = 100) -> int:
    sent = 0
    for n in Notification.objects(next_delivery_at__lte=now).order_by("next_delivery_at").limit(limit):
        for channel, delivery in sorted((n.deliveries or {}).items()):
            if delivery["status"] == domain.PENDING and delivery["due_at"] <= now:
                sent += _deliver(n, channel, delivery, now, config, notify_url, mailer, poster)
        _reschedule(n.id)
    return sent


def _deliver(n: Notification, channel: str, delivery: dict, now: datetime, config: NotifySettings,
             notify_url: str, mailer: SmtpMailer, poster: WebhookPoster) -> int:
    prefs = RecipientPreferences.objects(id=RecipientPreferences.key(n.org_id, n.recipient_id)).first()
    if n.acknowledged_at is not None:
        return _settle(n.id, channel, domain.SKIPPED, "acknowledged in the app first")
    if channel == domain.EMAIL:
        if not (prefs and prefs.email):
            return _settle(n.id, channel, domain.SKIPPED, "no e-mail address set")
        batch = _digest_batch(n, now) if delivery.get("digest") else [n]
        return _send_email(batch, prefs.email, now, config, notify_url, mailer)
    if not (prefs and prefs.webhook_url and prefs.webhook_secret):
        return _settle(n.id, channel, domain.SKIPPED, "no webhook set")
    if not _claim([n.id], channel, None, now):
        return 0
    try:
        poster.post(prefs.webhook_url, prefs.webhook_secret, domain.webhook_body(n), n.id, now)
    except DeliveryError as exc:
        _failed([n.id], channel, str(exc), now, config)
        return 0
    return _settle(n.id, channel, domain.SENT, None, sent_at=now)


def _send_email(batch: list[Notification], to: str, now: datetime, config: NotifySettings, notify_url: str,
                mailer: SmtpMailer) -> int:
    ids = [n.id for n in batch]
    message_id = domain.message_id(ids)
    ids = _claim(ids, domain.EMAIL, message_id, now)
    batch = [n for n in batch if n.id in ids]
    if not batch:
        return 0
    if len(batch) == 1:
        subject = domain.subject(batch[0].kind, batch[0].severity, batch[0].dimension)
    else:
        subject = domain.digest_subject(len(batch))
    try:
        mailer.send(to, subject, domain.email_body(batch, notify_url), message_id, now)
    except DeliveryError as exc:
        _failed(ids, domain.EMAIL, str(exc), now, config)
        return 0
    for notification_id in ids:
        _settle(notification_id, domain.EMAIL, domain.SENT, None, sent_at=now)
        _reschedule(notification_id)
    return len(ids)


def _failed(ids: list[str], channel: str, error: str, now: datetime, config: NotifySettings) -> None:
    for notification_id in ids:
        n = Notification.objects.get(id=notification_id)
        attempts = n.deliveries[channel].get("attempts", 0) + 1
        gave_up = attempts >= config.max_attempts
        due = now + domain.retry_delay(attempts, config.retry_base_s, config.retry_max_s)
        Notification._get_collection().update_one({"_id": notification_id}, {"$set": _delivery_fields(
            channel, status=domain.FAILED if gave_up else domain.PENDING, attempts=attempts, last_error=error,
            due_at=due)})
        DELIVERIES.labels(channel, domain.FAILED if gave_up else "retry").inc()
        log.warning("%s delivery of %s failed (attempt %d): %s", channel, notification_id, attempts, error)
        _reschedule(notification_id)


def _claim(ids: list[str], channel: str, message_id: str | None, now: datetime) -> list[str]:
    """Mark pending deliveries "sending" (compare-and-set); returns the ids this pass now owns."""
    claimed = []
    update = _delivery_fields(channel, status=domain.SENDING, sending_since=now,
                              **({"message_id": message_id} if message_id else {}))
    for notification_id in ids:
        result = Notification._get_collection().update_one(
            {"_id": notification_id, **_delivery_fields(channel, status=domain.PENDING)}, {"$set": update})
        if result.modified_count:
            claimed.append(notification_id)
    return claimed


def _settle(notification_id: str, channel: str, status: str, note: str | None,
            sent_at: datetime | None = None) -> int:
    DELIVERIES.labels(channel, status).inc()
    update = {"status": status, **({"last_error": note} if note else {}), **({"sent_at": sent_at} if sent_at else {})}
    Notification._get_collection().update_one({"_id": notification_id},
                                              {"$set": _delivery_fields(channel, **update)})
    return int(status == domain.SENT)


def _digest_batch(n: Notification, now: datetime) -> list[Notification]:
    """Every digest e-mail of this recipient that is due now, this one included, oldest first."""
    return list(Notification.objects(__raw__={
        "org_id": n.org_id, "recipient_id": n.recipient_id, "acknowledged_at": None,
        **_delivery_fields(domain.EMAIL, status=domain.PENDING, digest=True, due_at={"$lte": now})})
        .order_by("created_at"))


def _reschedule(notification_id: str) -> None:
    """Store the earliest due time of what is still pending (None: nothing left to send)."""
    n = Notification.objects(id=notification_id).only("deliveries").first()
    if n is None:
        return
    due = [d["due_at"] for d in (n.deliveries or {}).values() if d["status"] == domain.PENDING]
    Notification.objects(id=notification_id).update_one(set__next_delivery_at=min(due, default=None))


COMMAND_HANDLERS: dict[type, Callable[..., Any]] = {
    Acknowledge: acknowledge,
    AcknowledgeMany: acknowledge_many,
    ReplacePreferences: replace_preferences,
    Dispatch: dispatch,
}

EVENT_HANDLERS = {
    Topic.ALLIANCE_DROPPED.value: BatchHandler(handle_alliance_dropped_batch),
    Topic.REFERRAL_RECOMMENDED.value: handle_referral_recommended,
    Topic.REFERRAL_DECIDED.value: handle_referral_decided,
    Topic.INTAKE_SUBMITTED.value: handle_intake_submitted,
    Topic.CLIENT_ASSIGNED.value: handle_client_assigned,
    Topic.STAFF_UPDATED.value: handle_staff_updated,
    Topic.COUNSELOR_UPDATED.value: handle_counselor_updated,
}
