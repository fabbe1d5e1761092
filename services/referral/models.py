from __future__ import annotations

import mongoengine as me

from services.common.mongo import utcnow


class IntakeView(me.Document):
    """Referral's own copy of an intake: ids, concerns and preferences, never a name."""

    id = me.StringField(primary_key=True)  # the intake id
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    concerns = me.ListField(me.StringField())
    preferences = me.DictField()
    urgency = me.StringField()
    assigned_counselor_id = me.StringField()
    source_event_id = me.StringField(required=True)
    received_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "intakes", "indexes": [("org_id", "client_id")]}
