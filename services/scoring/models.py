from __future__ import annotations

import mongoengine as me

from services.common.mongo import utcnow
from services.common.outbox import OutboxDocument


class AlertRecord(me.EmbeddedDocument):
    alert_id = me.StringField(required=True)
    rule = me.StringField(required=True)
    dimension = me.StringField()
    severity = me.StringField(required=True)
    threshold = me.FloatField(required=True)


class SessionScore(OutboxDocument):
    """One scored session. Its id is the feedback event's id, so a redelivery finds it instead of re-scoring."""

    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    counselor_id = me.StringField(required=True)
    session_number = me.IntField(required=True)
    instrument_id = me.StringField(required=True)
    total = me.FloatField(required=True)
    mean = me.FloatField(required=True)
    subscales = me.DictField()
    alerts = me.EmbeddedDocumentListField(AlertRecord)
    scored_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "session_scores",
            "indexes": [("org_id", "client_id", "session_number"), ("org_id", "counselor_id")]}
