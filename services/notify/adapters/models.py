from __future__ import annotations

from datetime import time

import mongoengine as me

from services.common.mongo import utcnow
from services.common.outbox import OutboxDocument
from services.common.repair import repair_suggestion

from services.notify import domain


class Notification(me.Document):
    """One notification for one recipient; its id is (source event, recipient): one per pair.

    The document is the in-app copy and the record of its external deliveries: `deliveries` maps a channel
    to {status, due_at, attempts, last_error, message_id, digest, sent_at}, updated field by field with
    `$set deliveries.<channel>.<field>` so the dispatcher and an acknowledgement never overwrite each other.
    `next_delivery_at` is the earliest due time of a pending delivery (None when nothing is left), the one
    field the dispatcher queries; `escalate_at` likewise for the escalation step.
    """

    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    recipient_id = me.StringField(required=True)
    kind = me.StringField(required=True, choices=domain.KINDS)
    severity = me.StringField(required=True)
    client_id = me.StringField(required=True)
    counselor_id = me.StringField()
    source_event_id = me.StringField(required=True)
    rule = me.StringField()
    dimension = me.StringField()
    session_number = me.IntField()
    referral_id = me.StringField()
    alert_id = me.StringField()
    alert_kind = me.StringField()
    rules = me.ListField(me.StringField())
    # For alliance alerts, from alliance.dropped (numbers only, see domain.AlertScores): the session's total,
    # the client's usual level before it, the session's goal/task/bond item means and the client's usual
    # level of each (those known; none for alerts stored before they were kept).
    total = me.FloatField()
    usual_total = me.FloatField()
    subscales = me.DictField()
    usual_subscales = me.DictField()
    link = me.StringField(required=True)
    created_at = me.DateTimeField(default=utcnow)
    acknowledged_at = me.DateTimeField()
    # What the counselor did about an alliance alert, asked on acknowledging (services.common.repair).
    action = me.StringField()
    deliveries = me.DictField()
    next_delivery_at = me.DateTimeField()
    escalate_at = me.DateTimeField()
    escalated_at = me.DateTimeField()
    escalated_to = me.StringField()
    # For an escalation: the notification that was not acknowledged in time.
    escalation_of = me.StringField()
    meta = {"collection": "inbox", "indexes": [
        ("org_id", "recipient_id", "created_at"), "next_delivery_at", "escalate_at"]}

    def draft(self) -> domain.Draft:
        return domain.Draft(self.recipient_id, self.kind, self.severity, self.client_id, self.counselor_id,
                            self.rule, self.dimension, self.session_number, self.referral_id, self.alert_id,
                            self.alert_kind, tuple(self.rules or ()), self.scores)

    @property
    def scores(self) -> domain.AlertScores | None:
        """None for other notifications and for alerts stored before scores were kept."""
        if self.total is None:
            return None
        return domain.AlertScores(self.total, self.usual_total, dict(self.subscales or {}),
                                  {s: float(v) for s, v in (self.usual_subscales or {}).items() if v is not None})

    @property
    def suggestion(self) -> str | None:
        return repair_suggestion(self.dimension) if self.alert_id else None

    @property
    def status(self) -> str:
        """failed when some channel gave up, uncertain when a send was interrupted (not resent), pending
        while something is still to go; the in-app copy exists regardless."""
        states = {d.get("status") for d in (self.deliveries or {}).values()}
        for state in (domain.FAILED, domain.UNCERTAIN):
            if state in states:
                return state
        return "pending" if states & {domain.PENDING, domain.SENDING} else "delivered"


class StaffMember(me.Document):
    """The recipient read model: who works in which clinic in which role, and who supervises whom."""

    id = me.StringField(primary_key=True)  # "<org>:<staff id>"
    org_id = me.StringField(required=True)
    staff_id = me.StringField(required=True)
    role = me.StringField(required=True)
    clinic_ids = me.ListField(me.StringField())
    supervisor_id = me.StringField()
    active = me.BooleanField(default=True)
    # occurred_at of the event that last changed the record: an older event arriving late is ignored.
    as_of = me.DateTimeField(required=True)
    meta = {"collection": "staff", "indexes": [("org_id", "clinic_ids")]}

    @staticmethod
    def key(org_id: str, staff_id: str) -> str:
        return f"{org_id}:{staff_id}"

    def to_domain(self) -> domain.Staff:
        return domain.Staff(self.staff_id, self.role, tuple(self.clinic_ids), self.supervisor_id, self.active)


class RecipientPreferences(me.Document):
    """Delivery settings a staff member sets for themself: contact details never travel in events."""

    id = me.StringField(primary_key=True)  # "<org>:<staff id>"
    org_id = me.StringField(required=True)
    staff_id = me.StringField(required=True)
    email = me.StringField()
    webhook_url = me.StringField()
    # Generated by notify and shown once; receivers use it to verify X-Rapport-Signature.
    webhook_secret = me.StringField()
    channels = me.DictField()
    quiet_start = me.StringField()  # "HH:MM", local time
    quiet_end = me.StringField()
    timezone = me.StringField(default="UTC")
    daily_digest = me.BooleanField(default=False)
    updated_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "preferences"}

    @staticmethod
    def key(org_id: str, staff_id: str) -> str:
        return f"{org_id}:{staff_id}"

    def to_domain(self) -> domain.Preferences:
        return domain.Preferences(
            email=self.email or None, webhook_url=self.webhook_url or None,
            channels={k: tuple(v) for k, v in (self.channels or {}).items()},
            quiet_start=_clock(self.quiet_start), quiet_end=_clock(self.quiet_end),
            timezone=self.timezone or "UTC", daily_digest=bool(self.daily_digest))


def _clock(value: str | None) -> time | None:
    return time.fromisoformat(value) if value else None


class AlertAcknowledgement(OutboxDocument):
    """A counselor's acknowledgement of an alliance alert, kept until alert.acknowledged is published (the
    worker's outbox relay sends what the API could not); id = the notification's."""

    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    alert_id = me.StringField(required=True)
    action = me.StringField()
    acknowledged_at = me.DateTimeField(required=True)
    meta = {"collection": "alert_acknowledgements"}
