from __future__ import annotations

import mongoengine as me

from services.common.mongo import utcnow
from services.common.outbox import OutboxDocument

from .domain import repair_suggestion


class AlertRecord(me.EmbeddedDocument):
    """An alert as its session shows it; the Alert document is the one listed and counted."""

    alert_id = me.StringField(required=True)
    rule = me.StringField(required=True)
    dimension = me.StringField()
    severity = me.StringField(required=True)
    threshold = me.FloatField(required=True)

    @property
    def suggestion(self) -> str | None:
        return repair_suggestion(self.dimension)


class SessionScore(OutboxDocument):
    """One scored session. Its id is the feedback event's id, so a redelivery finds it instead of re-scoring.

    It also carries the dyad's trajectory before and after it (`dyad_version`, `trajectory_after`): a
    redelivery after a crash applies exactly the stored update to the dyad, never a second one.
    """

    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    counselor_id = me.StringField(required=True)
    session_number = me.IntField(required=True)
    instrument_id = me.StringField(required=True)
    answers = me.DictField()
    total = me.FloatField(required=True)
    mean = me.FloatField(required=True)
    subscales = me.DictField()
    baseline_mean = me.FloatField()
    baseline_sd = me.FloatField()
    baseline_sessions = me.IntField(default=0)
    previous_total = me.FloatField()
    below_cutoff = me.BooleanField(default=False)
    late = me.BooleanField(default=False)
    alerts = me.EmbeddedDocumentListField(AlertRecord)
    dyad_id = me.StringField(required=True)
    dyad_version = me.IntField(required=True)
    trajectory_after = me.DictField()
    submitted_at = me.DateTimeField(required=True)
    scored_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "session_scores",
            "indexes": [("org_id", "client_id", "session_number"), ("org_id", "counselor_id"),
                        ("org_id", "clinic_id", "submitted_at")]}


class Dyad(me.Document):
    """A client–counselor pair's trajectory: Welford running sums and the last session, O(1) per event.

    Updated only conditionally on `version` (optimistic concurrency), and `last_event_id` names the feedback
    event applied last, so a redelivered event can tell whether its update is already in.
    """

    id = me.StringField(primary_key=True)  # "<org>:<clinic>:<client>:<counselor>"
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    counselor_id = me.StringField(required=True)
    version = me.IntField(default=0)
    last_event_id = me.StringField()
    trajectory = me.DictField()
    # For overviews without reading every session: was the last session below its instrument's cutoff?
    below_cutoff = me.BooleanField(default=False)
    meta = {"collection": "dyads", "indexes": [("org_id", "counselor_id"), ("org_id", "clinic_id")]}

    @staticmethod
    def key(org_id: str, clinic_id: str, client_id: str, counselor_id: str) -> str:
        return f"{org_id}:{clinic_id}:{client_id}:{counselor_id}"


class Alert(me.Document):
    """One alert per (client, counselor, session, rule): the id derives from exactly these, so neither a
    redelivery nor a second submission for the same session can raise it twice."""

    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    counselor_id = me.StringField(required=True)
    session_number = me.IntField(required=True)
    instrument_id = me.StringField(required=True)
    source_event_id = me.StringField(required=True)
    rule = me.StringField(required=True)
    dimension = me.StringField()
    severity = me.StringField(required=True)
    total = me.FloatField(required=True)
    threshold = me.FloatField(required=True)
    subscales = me.DictField()
    baseline_mean = me.FloatField()
    baseline_sd = me.FloatField()
    baseline_sessions = me.IntField(default=0)
    previous_total = me.FloatField()
    raised_at = me.DateTimeField(required=True)
    meta = {"collection": "alerts",
            "indexes": [("org_id", "counselor_id", "raised_at"), ("org_id", "clinic_id", "raised_at"),
                        ("org_id", "client_id")]}

    @property
    def suggestion(self) -> str | None:
        return repair_suggestion(self.dimension)


class ExitInterviewScore(OutboxDocument):
    """A scored exit interview; id = the exit-interview event's id."""

    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    counselor_id = me.StringField(required=True)
    session_number = me.IntField(required=True)
    fit = me.FloatField(required=True)
    ratings = me.DictField()
    wants_someone_else = me.BooleanField(required=True)
    alerts = me.EmbeddedDocumentListField(AlertRecord)
    submitted_at = me.DateTimeField(required=True)
    scored_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "exit_interview_scores", "indexes": [("org_id", "client_id")]}


class ClinicAlertSettings(me.Document):
    """An admin's overrides of the default alert rules for one clinic (alert_rules.yaml has the defaults)."""

    id = me.StringField(primary_key=True)  # "<org>:<clinic>"
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    rules = me.DictField()
    updated_by = me.StringField()
    updated_at = me.DateTimeField()
    meta = {"collection": "clinic_alert_settings"}

    @staticmethod
    def key(org_id: str, clinic_id: str) -> str:
        return f"{org_id}:{clinic_id}"

    @classmethod
    def overrides_for(cls, org_id: str, clinic_id: str) -> dict:
        found = cls.objects(id=cls.key(org_id, clinic_id)).only("rules").first()
        return dict(found.rules) if found else {}
