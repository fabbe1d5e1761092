"""Intake's documents. Names and contact details live here and nowhere else in the platform."""
from __future__ import annotations

import mongoengine as me

from services.common.mongo import utcnow
from services.common.outbox import OutboxDocument


class ClientDetails(me.EmbeddedDocument):
    first_name = me.StringField(required=True)
    last_name = me.StringField(required=True)
    date_of_birth = me.DateField()
    email = me.StringField()
    phone = me.StringField()


class Intake(OutboxDocument):
    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    client = me.EmbeddedDocumentField(ClientDetails, required=True)
    concerns = me.ListField(me.StringField())
    preferences = me.DictField()
    urgency = me.StringField(required=True)
    notes = me.StringField()
    assigned_counselor_id = me.StringField()
    created_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "intakes", "indexes": [("org_id", "clinic_id", "created_at")]}


class FeedbackSubmission(OutboxDocument):
    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    counselor_id = me.StringField(required=True)
    session_number = me.IntField(required=True)
    instrument_id = me.StringField(required=True)
    answers = me.DictField(required=True)
    created_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "feedback", "indexes": [("org_id", "clinic_id", "client_id")]}


# Every document class whose pending events the outbox relay must publish.
OUTBOX_DOCUMENTS: list[type[OutboxDocument]] = [Intake, FeedbackSubmission]
