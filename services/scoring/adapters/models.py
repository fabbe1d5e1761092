from __future__ import annotations

import mongoengine as me

from services.common.mongo import SessionRecord, utcnow
from services.common.outbox import OutboxDocument
from services.common.repair import repair_suggestion

OUTCOMES = ("pending", "recovered", "not_recovered")


class AlertRecord(me.EmbeddedDocument):
    """The alert a session raised, as the session shows it; the Alert document is the one listed and
    counted."""

    alert_id = me.StringField(required=True)
    kind = me.StringField(required=True)
    rules = me.ListField(me.StringField(), required=True)
    dimension = me.StringField()
    severity = me.StringField(required=True)
    threshold = me.FloatField(required=True)

    @property
    def suggestion(self) -> str | None:
        return repair_suggestion(self.dimension)


class OutcomeRecord(me.EmbeddedDocument):
    """What a session told about an earlier alert of its dyad: kept on the session so that a redelivery
    after a crash applies it again."""

    alert_id = me.StringField(required=True)
    recovered = me.BooleanField(required=True)
    at_session = me.IntField(required=True)


class ComparedSession(SessionRecord):
    """A session's total as the alert rules compared it: with the dyad's baseline before it (mean, SD and
    number of sessions) and the previous session's total; what a scored session and its alert both show."""

    meta = {"abstract": True}
    instrument_id = me.StringField(required=True)
    total = me.FloatField(required=True)
    subscales = me.DictField()
    baseline_mean = me.FloatField()
    baseline_sd = me.FloatField()
    baseline_sessions = me.IntField(default=0)
    previous_total = me.FloatField()


class ScoredSession(ComparedSession, OutboxDocument):
    """One scored session. Its id is the feedback event's id, so a redelivery finds it instead of re-scoring.

    It also carries the dyad's trajectory before and after it (`dyad_version`, `trajectory_after`): a
    redelivery after a crash applies exactly the stored update to the dyad, never a second one.
    """

    answers = me.DictField()
    mean = me.FloatField(required=True)
    # The level flag: the session is below the instrument's cutoff (shown on the session and the chart;
    # pushed only as a persistently-low notice, unless the clinic chose otherwise).
    below_cutoff = me.BooleanField(default=False)
    # How far below the client's baseline, in their SDs (None before there is a baseline).
    fall_sd = me.FloatField()
    late = me.BooleanField(default=False)
    alert = me.EmbeddedDocumentField(AlertRecord)
    outcomes = me.EmbeddedDocumentListField(OutcomeRecord)
    dyad_id = me.StringField(required=True)
    dyad_version = me.IntField(required=True)
    trajectory_after = me.DictField()
    submitted_at = me.DateTimeField(required=True)
    scored_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "session_scores",
            "indexes": [("org_id", "client_id", "session_number"), ("org_id", "counselor_id"),
                        ("org_id", "clinic_id", "submitted_at")]}


class Dyad(me.Document):
    """A client–counselor pair's history as the alert rules need it (alerting.DyadHistory: its last
    sessions, runs below the cutoff, alerts awaiting an outcome), O(window) per event.

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


class Alert(ComparedSession):
    """One alert per (client, counselor, session, source): every rule that fired on the session is listed
    in it. The id derives from exactly these, so neither a redelivery nor a second submission for the same
    session can raise it twice."""

    source_event_id = me.StringField(required=True)
    kind = me.StringField(required=True)  # change | level | exit_interview
    rules = me.ListField(me.StringField(), required=True)
    dimension = me.StringField()
    severity = me.StringField(required=True)
    threshold = me.FloatField(required=True)
    fall_sd = me.FloatField()
    # The client's usual level of each subscale: its mean over the baseline sessions of baseline_mean (None
    # for a subscale with none there); empty without a baseline, for exit interviews and for older alerts.
    usual_subscales = me.DictField()
    raised_at = me.DateTimeField(required=True)
    # The repair loop: what the counselor did (from notify's alert.acknowledged) and whether the following
    # sessions came back to the client's usual level (or above the cutoff).
    outcome = me.StringField(choices=OUTCOMES, default="pending")
    outcome_session = me.IntField()
    acknowledged_at = me.DateTimeField()
    action = me.StringField()
    meta = {"collection": "alerts",
            "indexes": [("org_id", "counselor_id", "raised_at"), ("org_id", "clinic_id", "raised_at"),
                        ("org_id", "client_id")]}

    @property
    def suggestion(self) -> str | None:
        return repair_suggestion(self.dimension)


class ScoredExitInterview(SessionRecord, OutboxDocument):
    """A scored exit interview; id = the exit-interview event's id."""

    fit = me.FloatField(required=True)
    ratings = me.DictField()
    wants_someone_else = me.BooleanField(required=True)
    alert = me.EmbeddedDocumentField(AlertRecord)
    submitted_at = me.DateTimeField(required=True)
    scored_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "exit_interview_scores", "indexes": [("org_id", "client_id")]}


class ClinicAlertSettings(me.Document):
    """An admin's overrides of the default alert settings for one clinic (alert_rules.yaml has the
    defaults): the budget and any rule values."""

    id = me.StringField(primary_key=True)  # "<org>:<clinic>"
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    budget = me.DictField()
    rules = me.DictField()
    updated_by = me.StringField()
    updated_at = me.DateTimeField()
    meta = {"collection": "clinic_alert_settings"}

    @staticmethod
    def key(org_id: str, clinic_id: str) -> str:
        return f"{org_id}:{clinic_id}"

    @classmethod
    def overrides_for(cls, org_id: str, clinic_id: str) -> dict:
        """The stored overrides, unchecked ({"budget": ..., "rules": ...}); rules.stored_overrides checks."""
        found = cls.objects(id=cls.key(org_id, clinic_id)).only("budget", "rules").first()
        return {"budget": dict(found.budget or {}), "rules": dict(found.rules or {})} if found else {}


class ClinicCalibration(me.Document):
    """A clinic's alert calibration for one instrument (calibration.Calibration), refreshed from its
    stored sessions once a day."""

    id = me.StringField(primary_key=True)  # "<org>:<clinic>:<instrument>"
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    instrument_id = me.StringField(required=True)
    calibration = me.DictField(required=True)
    computed_at = me.DateTimeField(required=True)
    meta = {"collection": "clinic_calibrations"}

    @staticmethod
    def key(org_id: str, clinic_id: str, instrument_id: str) -> str:
        return f"{org_id}:{clinic_id}:{instrument_id}"
