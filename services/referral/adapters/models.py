"""Referral's documents: its own view of counselors and clients, built from events, and the referrals."""
from __future__ import annotations

import mongoengine as me

from services.common.mongo import utcnow
from services.common.outbox import OutboxDocument


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


class CounselorView(me.Document):
    """The latest `counselor.updated` snapshot of a counselor (names stay in intake's directory)."""

    id = me.StringField(primary_key=True)  # the counselor id
    org_id = me.StringField(required=True)
    clinic_ids = me.ListField(me.StringField())
    specialties = me.ListField(me.StringField())
    languages = me.ListField(me.StringField())
    modalities = me.ListField(me.StringField())
    weekly_capacity = me.IntField(default=0)
    caseload = me.IntField(default=0)
    accepting_new_clients = me.BooleanField(default=True)
    supervisor_id = me.StringField()
    gender = me.StringField()
    active = me.BooleanField(default=True)
    # occurred_at of the snapshot applied: an older snapshot delivered late must not overwrite a newer one.
    as_of = me.DateTimeField(required=True)
    meta = {"collection": "counselors", "indexes": [("org_id",)]}


class ClientView(me.Document):
    """What matching needs to know of a client: clinic, concerns, preferences and current counselor."""

    id = me.StringField(primary_key=True)  # the client id
    org_id = me.StringField(required=True)
    clinic_id = me.StringField()
    intake_id = me.StringField()
    concerns = me.ListField(me.StringField())
    preferences = me.DictField()
    counselor_id = me.StringField()
    # occurred_at of the event that set counselor_id: assignments delivered out of order keep the newest.
    counselor_since = me.DateTimeField()
    meta = {"collection": "clients", "indexes": [("org_id",)]}


class ClientAllianceRecord(me.EmbeddedDocument):
    client_id = me.StringField(required=True)
    concerns = me.ListField(me.StringField())
    total = me.FloatField(required=True)
    sessions = me.IntField(required=True)
    score_ids = me.ListField(me.StringField())
    # The sum of the squared normalised totals, for the within-client variance; absent (None: unknown) on
    # records kept before it was.
    sum_squares = me.FloatField(null=True)


class CounselorFit(me.Document):
    """A counselor's measured alliance per concern (running sums), and the clients behind it.

    One document per counselor, replaced under an optimistic version check: FerretDB has no
    multi-document transactions, and keeping the per-client records (with the score ids already counted)
    in the same document as the sums is what makes a redelivered score change nothing.
    """

    id = me.StringField(primary_key=True)  # "<org_id>:<counselor_id>"
    org_id = me.StringField(required=True)
    counselor_id = me.StringField(required=True)
    version = me.IntField(default=0)
    clients = me.EmbeddedDocumentListField(ClientAllianceRecord)
    # concern -> {"total": sum of client means (0..1), "clients": n}
    concerns = me.DictField()
    meta = {"collection": "counselor_fit", "indexes": [("org_id",)]}

    @staticmethod
    def key(org_id: str, counselor_id: str) -> str:
        return f"{org_id}:{counselor_id}"


class DirectoryVersion(me.Document):
    """How often an organisation's matching directory changed: what each process's cached directory is checked
    against before a recommendation (adapters/directory_cache.py). One document per organisation, read and
    bumped by `_id` only (the one look-up FerretDB indexes)."""

    id = me.StringField(primary_key=True)  # the org id
    counselors = me.IntField(default=0)  # counselor.updated snapshots stored
    sessions = me.IntField(default=0)  # scored sessions folded into fits
    meta = {"collection": "directory_versions"}


class DirectoryChange(me.Document):
    """Which counselor the organisation's `counselors` version number N stands for: a process whose directory
    is a few changes behind reads those counselors by `_id` and replaces their rows, instead of building the
    whole directory again (adapters/directory_cache.py)."""

    id = me.StringField(primary_key=True)  # "<org_id>:<N, zero-padded>"
    counselor_id = me.StringField(required=True)
    meta = {"collection": "directory_changes"}

    @staticmethod
    def key(org_id: str, number: int) -> str:
        return f"{org_id}:{number:012d}"


class ParkedEvent(me.Document):
    """A trigger or score that arrived before the client's intake (topics are not ordered between each
    other); handled again once `intake.submitted` has told referral who the client is."""

    id = me.StringField(primary_key=True)  # the event id
    org_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    event = me.DictField(required=True)
    parked_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "parked_events", "indexes": [("org_id", "client_id")]}


class StrengthRecord(me.EmbeddedDocument):
    """The evidence behind a candidate's strength part for one concern of the client (domain.Strength):
    without enough evidence only the counts, estimate, sd, effect and usual None."""

    concern = me.StringField(required=True)
    clients = me.IntField(required=True)
    sessions = me.IntField(required=True)
    estimate = me.FloatField(null=True)
    sd = me.FloatField(null=True)
    effect = me.FloatField(null=True)
    usual = me.FloatField(null=True)


class CandidateRecord(me.EmbeddedDocument):
    counselor_id = me.StringField(required=True)
    score = me.FloatField(required=True)
    reasons = me.ListField(me.StringField())
    # The score's parts (domain.PARTS -> what each added; they sum to the score) and the strength evidence
    # per concern of the client; empty on referrals made before they were kept.
    parts = me.DictField()
    strengths = me.EmbeddedDocumentListField(StrengthRecord)


class Referral(OutboxDocument):
    """A recommendation for one client, from one trigger event (its id derives from that event's id)."""

    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    current_counselor_id = me.StringField()
    reason = me.StringField(required=True)
    trigger_event_id = me.StringField(required=True)
    correlation_id = me.StringField(required=True)
    # The id of the referral.recommended event that announced it, to trace it on the topic.
    announced_event_id = me.StringField(required=True)
    candidates = me.EmbeddedDocumentListField(CandidateRecord)
    # How the candidates were weighed: the weights applied (domain.PARTS; specialty already raised when
    # `outside_expertise`), the counselors excluded by id (the one the client is leaving) and how many
    # counselors each hard constraint removed (domain.EXCLUSIONS -> count). Empty on older referrals.
    weights = me.DictField()
    outside_expertise = me.BooleanField(default=False)
    excluded_counselor_ids = me.ListField(me.StringField())
    excluded = me.DictField()
    status = me.StringField(required=True)
    created_at = me.DateTimeField(default=utcnow)
    decided_by = me.StringField()
    decided_at = me.DateTimeField()
    chosen_counselor_id = me.StringField()
    decline_reason = me.StringField()
    # The supervisor's own words: stays here, never in an event.
    decision_note = me.StringField()
    meta = {"collection": "referrals",
            "indexes": [("org_id", "clinic_id", "status", "created_at"), ("org_id", "client_id")]}


class ReferralOutcome(me.Document):
    """How an accepted referral worked out: the client's alliance with the counselor they left against the
    new dyad's first sessions (services/referral/outcomes.py has the rule).

    One document per accepted referral, keyed by the new dyad, which is what an `alliance.scored` names
    (FerretDB indexes only _id): a dyad has its first sessions once, so a client referred back to a counselor
    they had before is not followed a second time. Replaced under an optimistic version check like
    CounselorFit; the score ids already counted make a redelivered score change nothing.
    """

    id = me.StringField(primary_key=True)  # "<org_id>:<client_id>:<counselor_id>" of the new dyad
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    referral_id = me.StringField(required=True)
    reason = me.StringField(required=True)
    client_id = me.StringField(required=True)
    concerns = me.ListField(me.StringField())
    previous_counselor_id = me.StringField()
    counselor_id = me.StringField(required=True)
    accepted_at = me.DateTimeField(required=True)  # when the reassignment happened
    # The old dyad's mean normalised total (0..1) and its sessions; None until known.
    old_mean = me.FloatField()
    old_sessions = me.IntField(default=0)
    # The new dyad's first sessions: sum of normalised totals, count, and the scores counted.
    new_total = me.FloatField(default=0.0)
    new_sessions = me.IntField(default=0)
    score_ids = me.ListField(me.StringField())
    status = me.StringField(required=True)  # outcomes.OUTCOME_STATUSES
    settled_at = me.DateTimeField()
    version = me.IntField(default=0)
    meta = {"collection": "referral_outcomes", "indexes": [("org_id", "clinic_id")]}

    @staticmethod
    def key(org_id: str, client_id: str, counselor_id: str) -> str:
        return f"{org_id}:{client_id}:{counselor_id}"


# Every document class whose pending events the outbox relay must publish.
OUTBOX_DOCUMENTS: list[type[OutboxDocument]] = [Referral]
