"""Intake's documents. Client names, contact details, dates of birth, notes and exit-interview comments
live here and nowhere else in the platform."""
from __future__ import annotations

import mongoengine as me

from services.common.mongo import SessionRecord, utcnow
from services.common.outbox import OutboxDocument

DEFAULT_INSTRUMENT = "rapport-short"


class Organisation(me.Document):
    id = me.StringField(primary_key=True)
    name = me.StringField(required=True)
    # Text the organisation supplies for items an instrument ships without (a licensed scale's wording):
    # {instrument_id: {link_id: text}}.
    item_texts = me.DictField()
    created_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "organisations"}


class Clinic(me.Document):
    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    name = me.StringField(required=True)
    # Which alliance instrument this clinic's clients answer (services/common/instruments).
    instrument_id = me.StringField(default=DEFAULT_INSTRUMENT)
    meta = {"collection": "clinics", "indexes": ["org_id"]}


class CounselorProfile(me.EmbeddedDocument):
    specialties = me.ListField(me.StringField())
    languages = me.ListField(me.StringField())
    modalities = me.ListField(me.StringField())
    gender = me.StringField()
    style_notes = me.StringField()
    weekly_capacity = me.IntField(default=0)
    accepting_new_clients = me.BooleanField(default=True)


class Staff(OutboxDocument):
    """A member of an organisation's staff; a counselor is a staff member with role `counselor`."""

    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    # Unique within the organisation only: one organisation must not learn from an answer that an address
    # is taken in another. Signing in with an address two organisations use asks which one.
    email = me.StringField(required=True)
    display_name = me.StringField(required=True)
    password_hash = me.StringField(required=True)
    role = me.StringField(required=True)
    clinic_ids = me.ListField(me.StringField())
    supervisor_id = me.StringField()
    active = me.BooleanField(default=True)
    # Raised whenever the member's sessions must end (deactivated, new role, clinics or password, signed
    # out); tokens carry the version they were issued with (services/common/sessions.py).
    token_version = me.IntField(default=0)
    counselor = me.EmbeddedDocumentField(CounselorProfile)
    created_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "staff", "indexes": ["org_id", {"fields": ("org_id", "email"), "unique": True}]}


class Assignment(me.EmbeddedDocument):
    assignment_id = me.StringField(required=True)
    counselor_id = me.StringField(required=True)
    previous_counselor_id = me.StringField()
    assigned_by = me.StringField(required=True)
    assigned_at = me.DateTimeField(default=utcnow)
    referral_id = me.StringField()


class ContactConsent(me.EmbeddedDocument):
    """The client's consent to be contacted, per channel, as recorded by a staff member at a time."""
    email = me.BooleanField(required=True)
    sms = me.BooleanField(required=True)
    recorded_by = me.StringField(required=True)
    recorded_at = me.DateTimeField(required=True)


class Client(OutboxDocument):
    id = me.StringField(primary_key=True)
    intake_id = me.StringField(required=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    first_name = me.StringField(required=True)
    last_name = me.StringField(required=True)
    date_of_birth = me.DateField()
    email = me.StringField()
    phone = me.StringField()
    concerns = me.ListField(me.StringField())
    preferences = me.DictField()
    urgency = me.StringField(required=True)
    notes = me.StringField()
    counselor_id = me.StringField()
    # Every consent given or withdrawn, oldest first: the last one holds (none: no consent).
    consents = me.ListField(me.EmbeddedDocumentField(ContactConsent))
    assignments = me.ListField(me.EmbeddedDocumentField(Assignment))
    # The assignments' ids again, as plain strings: FerretDB 1.24 cannot match `$ne` through an array of
    # embedded documents, and "not yet recorded" is what makes an assignment happen at most once.
    assignment_ids = me.ListField(me.StringField())
    created_by = me.StringField(required=True)
    created_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "clients", "indexes": [("org_id", "clinic_id", "created_at"), "counselor_id"]}


class Session(me.Document):
    """A session that took place: what feedback links and exit interviews refer to."""

    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    counselor_id = me.StringField(required=True)
    number = me.IntField(required=True)
    held_on = me.DateField(required=True)
    recorded_by = me.StringField(required=True)
    created_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "sessions",
            "indexes": [{"fields": ("client_id", "number"), "unique": True}]}


class FeedbackRequest(SessionRecord):
    """A signed link sent to a client; answered at most once (the answer's id is this request's id)."""

    kind = me.StringField(required=True, choices=("feedback", "exit_interview"))
    session_id = me.StringField(required=True)
    instrument_id = me.StringField()
    expires_at = me.DateTimeField(required=True)
    answered_at = me.DateTimeField()
    created_by = me.StringField(required=True)
    created_at = me.DateTimeField(default=utcnow)
    # Why a link was made for a session the client had answered (domain.REISSUE_REASONS), and a note.
    reissue_reason = me.StringField()
    reissue_note = me.StringField()
    # When it last went to the client (sent or reminded) and how many reminders it had: what the reminder
    # pass reads; the deliveries themselves are LinkDelivery documents.
    last_sent_at = me.DateTimeField()
    reminders_sent = me.IntField(default=0)
    meta = {"collection": "feedback_requests", "indexes": [("org_id", "client_id"), ("answered_at", "expires_at")]}


class LinkDelivery(me.Document):
    """A link sent to a client by e-mail or text message. Recorded before it is sent (outcome `sending`),
    then `sent` or `failed`; a reminder's id derives from its link and number, so it is recorded once."""

    id = me.StringField(primary_key=True)
    request_id = me.StringField(required=True)
    org_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    channel = me.StringField(required=True, choices=("email", "sms"))
    purpose = me.StringField(required=True, choices=("link", "reminder"))
    sent_by = me.StringField()  # the staff member; None for the worker's reminders
    at = me.DateTimeField(required=True)
    outcome = me.StringField(required=True, choices=("sending", "sent", "failed"))
    error = me.StringField()  # a class of failure (DeliveryError), never the server's words
    meta = {"collection": "link_deliveries", "indexes": ["request_id"]}


class FeedbackSubmission(SessionRecord, OutboxDocument):
    """A session's rating (one per session: the id derives from client and session number)."""

    instrument_id = me.StringField(required=True)
    answers = me.DictField(required=True)
    # The staff member who entered it through the API; None when the client answered a link.
    submitted_by = me.StringField()
    created_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "feedback", "indexes": [("org_id", "clinic_id", "client_id")]}


class ExitInterview(SessionRecord, OutboxDocument):
    """A client's answers to the exit interview; id = its request's. The comment stays in intake."""

    comfortable = me.IntField(required=True)
    style_fit = me.IntField(required=True)
    confident_progress = me.IntField(required=True)
    outside_expertise = me.BooleanField(required=True)
    wants_someone_else = me.BooleanField(required=True)
    comment = me.StringField()
    created_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "exit_interviews", "indexes": [("org_id", "client_id")]}


def drop_global_email_index() -> None:
    """Earlier versions made an e-mail unique across organisations (index email_1); per organisation now."""
    collection = Staff._get_collection()
    if "email_1" in collection.index_information():
        collection.drop_index("email_1")


# Every document class whose pending events the outbox relay must publish.
OUTBOX_DOCUMENTS: list[type[OutboxDocument]] = [Client, Staff, FeedbackSubmission, ExitInterview]
