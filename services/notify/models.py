from __future__ import annotations

import mongoengine as me

from services.common.mongo import utcnow


class InboxItem(me.Document):
    """One notification for one recipient. Its id is (source event, recipient): one item per pair."""

    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    recipient_id = me.StringField(required=True)
    kind = me.StringField(required=True)
    client_id = me.StringField(required=True)
    source_event_id = me.StringField(required=True)
    rule = me.StringField()
    dimension = me.StringField()
    severity = me.StringField()
    session_number = me.IntField()
    created_at = me.DateTimeField(default=utcnow)
    acknowledged_at = me.DateTimeField()
    meta = {"collection": "inbox", "indexes": [("org_id", "recipient_id", "created_at")]}

    @staticmethod
    def key(source_event_id: str, recipient_id: str) -> str:
        return f"{source_event_id}:{recipient_id}"
