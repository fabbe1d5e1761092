"""Creating, acknowledging and escalating notifications: the steps shared by handlers, API and worker."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Callable, Iterable

from services.common.events import Topic, derived_id, make_event
from services.common.outbox import Publish, insert_all_once, insert_once, outbox_entry, publish_or_defer

from services.notify import domain
from services.notify.adapters.config import NotifySettings
from services.notify.adapters.models import AlertAcknowledgement, Notification, RecipientPreferences, StaffMember

log = logging.getLogger(__name__)
PRODUCER = "notify"
ACKNOWLEDGEMENT_NAMESPACE = uuid.UUID("0d6f1c8e-3b7a-4c55-9a0e-6f2d8b1e4c37")


def preferences_of(org_id: str, staff_id: str) -> domain.Preferences:
    stored = RecipientPreferences.objects(id=RecipientPreferences.key(org_id, staff_id)).first()
    return stored.to_domain() if stored else domain.Preferences()


def clinic_staff(org_id: str, clinic_id: str) -> list[domain.Staff]:
    return [s.to_domain() for s in StaffMember.objects(org_id=org_id, clinic_ids=clinic_id, active=True)]


def create_notifications(source_event_id: str, org_id: str, clinic_id: str, drafts: Iterable[domain.Draft], *,
                         now: datetime, intake_url: str, config: NotifySettings,
                         escalation_of: str | None = None, key: str | None = None) -> list[Notification]:
    """Store `notifications_for` the drafts in one round trip; each comes back as stored.

    The id derives from (source event, recipient) - or (`key`, recipient) when several events announce
    the same thing - so a redelivered event or a retried escalation finds the notification it created
    before instead of making a second one.
    """
    return insert_all_once(notifications_for(source_event_id, org_id, clinic_id, drafts, now=now,
                                             intake_url=intake_url, config=config, escalation_of=escalation_of,
                                             key=key))


def notifications_for(source_event_id: str, org_id: str, clinic_id: str, drafts: Iterable[domain.Draft], *,
                      now: datetime, intake_url: str, config: NotifySettings, escalation_of: str | None = None,
                      key: str | None = None,
                      preferences: Callable[[str, str], domain.Preferences] = preferences_of) -> list[Notification]:
    """One notification per draft, not stored yet, with its external deliveries planned from the
    recipient's `preferences`."""
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
            rules=list(draft.rules), link=domain.client_link(intake_url, draft.client_id),
            created_at=now, deliveries=deliveries, escalation_of=escalation_of,
            next_delivery_at=min((p.due_at for p in plans), default=None),
            escalate_at=domain.escalate_at(draft.kind, draft.severity, now,
                                           timedelta(seconds=config.escalate_after_s))))
    return created


def acknowledge(notification: Notification, now: datetime, action: str | None = None,
                publish: Publish | None = None) -> Notification:
    """Acknowledge once; later calls keep the first time and answer. Acknowledging also cancels the
    escalation. For an alliance alert, what the counselor did goes to scoring (alert.acknowledged), which
    counts which repairs are followed by recovery."""
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
        if publish is not None:
            publish_or_defer(record, publish)
    return Notification.objects.get(id=notification.id)


def supervisor_of(org_id: str, staff_id: str) -> str | None:
    member = StaffMember.objects(id=StaffMember.key(org_id, staff_id)).first()
    return member.supervisor_id if member and member.supervisor_id else None


def escalate_due(now: datetime, *, intake_url: str, config: NotifySettings, limit: int = 100) -> int:
    """Send each unacknowledged alert whose escalation time has passed to the counselor's supervisor.

    Due times live on the notifications, so a restarted worker picks up where it stopped; the escalation's
    id derives from the alert, so a pass interrupted after creating it does not create a second one.
    """
    escalated = 0
    for alert in Notification.objects(escalate_at__lte=now, acknowledged_at=None, escalated_at=None).limit(limit):
        supervisor = supervisor_of(alert.org_id, alert.counselor_id or alert.recipient_id)
        if supervisor is None:
            # The read model may learn the supervisor later (staff.updated): look again after a while.
            log.warning("no supervisor known for escalation of %s", alert.id)
            Notification.objects(id=alert.id).update_one(
                set__escalate_at=now + timedelta(seconds=config.retry_max_s))
            continue
        create_notifications(alert.source_event_id, alert.org_id, alert.clinic_id,
                             [domain.escalation_draft(alert.draft(), supervisor)], now=now,
                             intake_url=intake_url, config=config, escalation_of=alert.id,
                             key=f"{alert.source_event_id}.escalation")
        Notification.objects(id=alert.id, escalated_at=None).update_one(
            set__escalated_at=now, set__escalated_to=supervisor, unset__escalate_at=True)
        escalated += 1
    return escalated
