"""Event contracts: the only place where the wire format of Rapport's Kafka events is defined.

Every event is one JSON envelope (id, type, version, time, tenant, correlation, producer) around a
payload whose schema depends on (type, version). Producers validate strictly before they send;
consumers ignore fields they do not know, so a producer may add fields without breaking them.
Events carry ids, codes and scores, never a client's name, contact details or free text.
"""
from __future__ import annotations

import json
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Mapping

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate


class Topic(StrEnum):
    INTAKE_SUBMITTED = "intake.submitted"
    FEEDBACK_SUBMITTED = "feedback.submitted"
    EXIT_INTERVIEW_SUBMITTED = "exit-interview.submitted"
    COUNSELOR_UPDATED = "counselor.updated"
    ALLIANCE_SCORED = "alliance.scored"
    ALLIANCE_DROPPED = "alliance.dropped"
    REFERRAL_RECOMMENDED = "referral.recommended"
    REFERRAL_DECIDED = "referral.decided"
    CLIENT_ASSIGNED = "client.assigned"
    STAFF_UPDATED = "staff.updated"
    ALERT_ACKNOWLEDGED = "alert.acknowledged"


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def all_topics() -> list[str]:
    """Every topic the platform uses: each event topic and its dead-letter topic."""
    return [name for topic in Topic for name in (topic.value, dlq_topic(topic.value))]


# Ids are opaque tokens (UUIDs in practice). The pattern keeps free text, and so names, out of id fields.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"

# Concern areas: the fixed vocabulary shared by intake (presenting concerns), the counselor directory
# (specialties) and referral (matching). Codes, not prose, so that events stay free of free text.
CONCERNS = (
    "anxiety", "depression", "trauma", "grief", "relationships", "family", "parenting",
    "substance_use", "eating", "stress", "self_esteem", "anger", "life_transitions",
    "identity", "work", "sleep", "ocd", "mood_bipolar", "chronic_illness", "loneliness",
)
MODALITIES = ("in_person", "telehealth")
URGENCIES = ("routine", "soon", "urgent")
SUBSCALES = ("goal", "task", "bond")
SEVERITIES = ("low", "medium", "high")
# change: the alliance fell against the client's own history; level: it stayed below the instrument's
# cutoff; exit_interview: the client's exit interview showed a poor fit.
ALERT_KINDS = ("change", "level", "exit_interview")
# What a counselor did after an alert (the wording is in services/common/repair.py).
REPAIR_ACTIONS = ("discussed_alliance", "reagreed_goals", "changed_approach", "referred", "other")


def Id(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Regexp(ID_PATTERN, error="Not a valid id."), **kwargs)


def Code(choices: tuple[str, ...], **kwargs: Any) -> fields.String:
    return fields.String(validate=validate.OneOf(choices), **kwargs)


class PayloadSchema(Schema):
    """Base of every payload. Consumers load with unknown=EXCLUDE; producers validate with RAISE."""

    class Meta:
        unknown = EXCLUDE


class PreferencesSchema(PayloadSchema):
    language = fields.String(validate=validate.Regexp(r"^[a-z]{2,3}$"), load_default=None, allow_none=True)
    modality = Code(MODALITIES + ("either",), load_default="either")
    counselor_gender = Code(("female", "male", "nonbinary"), load_default=None, allow_none=True)


class IntakeSubmittedV1(PayloadSchema):
    intake_id = Id(required=True)
    client_id = Id(required=True)
    concerns = fields.List(Code(CONCERNS), required=True, validate=validate.Length(min=1))
    preferences = fields.Nested(PreferencesSchema, load_default=dict)
    urgency = Code(URGENCIES, load_default="routine")
    assigned_counselor_id = Id(load_default=None, allow_none=True)


class FeedbackSubmittedV1(PayloadSchema):
    feedback_id = Id(required=True)
    client_id = Id(required=True)
    counselor_id = Id(required=True)
    session_number = fields.Integer(required=True, validate=validate.Range(min=1))
    instrument_id = Id(required=True)
    answers = fields.Dict(keys=Id(), values=fields.Float(allow_nan=False), required=True,
                          validate=validate.Length(min=1))


class ExitInterviewSubmittedV1(PayloadSchema):
    exit_interview_id = Id(required=True)
    client_id = Id(required=True)
    counselor_id = Id(required=True)
    session_number = fields.Integer(required=True, validate=validate.Range(min=1))
    comfortable = fields.Integer(required=True, validate=validate.Range(1, 5))
    style_fit = fields.Integer(required=True, validate=validate.Range(1, 5))
    confident_progress = fields.Integer(required=True, validate=validate.Range(1, 5))
    outside_expertise = fields.Boolean(required=True)
    wants_someone_else = fields.Boolean(required=True)


class CounselorUpdatedV1(PayloadSchema):
    counselor_id = Id(required=True)
    clinic_ids = fields.List(Id(), required=True)
    specialties = fields.List(Code(CONCERNS), load_default=list)
    languages = fields.List(fields.String(validate=validate.Regexp(r"^[a-z]{2,3}$")), load_default=list)
    modalities = fields.List(Code(MODALITIES), load_default=list)
    weekly_capacity = fields.Integer(validate=validate.Range(min=0), load_default=0)
    caseload = fields.Integer(validate=validate.Range(min=0), load_default=0)
    accepting_new_clients = fields.Boolean(load_default=True)
    supervisor_id = Id(load_default=None, allow_none=True)
    gender = Code(("female", "male", "nonbinary"), load_default=None, allow_none=True)
    active = fields.Boolean(load_default=True)


class SubscaleScoresSchema(PayloadSchema):
    goal = fields.Float(allow_none=True, load_default=None)
    task = fields.Float(allow_none=True, load_default=None)
    bond = fields.Float(allow_none=True, load_default=None)


class AllianceScoredV1(PayloadSchema):
    score_id = Id(required=True)
    source_event_id = Id(required=True)
    client_id = Id(required=True)
    counselor_id = Id(required=True)
    session_number = fields.Integer(required=True, validate=validate.Range(min=1))
    instrument_id = Id(required=True)
    total = fields.Float(required=True)
    mean = fields.Float(required=True)
    subscales = fields.Nested(SubscaleScoresSchema, required=True)
    # The dyad's running baseline before this session (mean and SD of the client's earlier sessions with this
    # counselor) and the previous session's total; None until there are enough sessions.
    baseline_mean = fields.Float(allow_none=True, load_default=None)
    baseline_sd = fields.Float(allow_none=True, load_default=None)
    baseline_sessions = fields.Integer(validate=validate.Range(min=0), load_default=0)
    previous_total = fields.Float(allow_none=True, load_default=None)


class _AlertPayload(PayloadSchema):
    alert_id = Id(required=True)
    source_event_id = Id(required=True)
    client_id = Id(required=True)
    counselor_id = Id(required=True)
    session_number = fields.Integer(required=True, validate=validate.Range(min=1))
    instrument_id = Id(required=True)
    dimension = Code(SUBSCALES, load_default=None, allow_none=True)
    severity = Code(SEVERITIES, required=True)
    total = fields.Float(required=True)
    threshold = fields.Float(required=True)
    subscales = fields.Nested(SubscaleScoresSchema, load_default=dict)
    # The baseline and previous total the rules compared with (see AllianceScoredV1).
    baseline_mean = fields.Float(allow_none=True, load_default=None)
    baseline_sd = fields.Float(allow_none=True, load_default=None)
    baseline_sessions = fields.Integer(validate=validate.Range(min=0), load_default=0)
    previous_total = fields.Float(allow_none=True, load_default=None)


class AllianceDroppedV1(_AlertPayload):
    """One event per rule that fired (read as version 2 by the consumers)."""

    rule = Id(required=True)


class AllianceDroppedV2(_AlertPayload):
    """One alert per session: every rule that fired on it."""

    kind = Code(ALERT_KINDS, required=True)
    rules = fields.List(Id(), required=True, validate=validate.Length(min=1))
    # How far below the client's baseline, in their SDs; None for level and exit-interview alerts.
    fall_sd = fields.Float(allow_none=True, load_default=None)


def _alliance_dropped_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    rule = payload.pop("rule")
    kind = "exit_interview" if rule == "exit_interview_low_fit" else (
        "level" if rule == "below_cutoff" else "change")
    return {**payload, "rules": [rule], "kind": kind, "fall_sd": None}


class CandidateSchema(PayloadSchema):
    counselor_id = Id(required=True)
    score = fields.Float(required=True)
    # Reasons describe the counselor ("speaks es", "specialises in trauma"), never the client.
    reasons = fields.List(fields.String(validate=validate.Length(max=120)), load_default=list)


class ReferralRecommendedV1(PayloadSchema):
    referral_id = Id(required=True)
    trigger_event_id = Id(required=True)
    client_id = Id(required=True)
    current_counselor_id = Id(load_default=None, allow_none=True)
    reason = Code(("intake", "exit_interview", "alliance_decline"), required=True)
    candidates = fields.List(fields.Nested(CandidateSchema), required=True)


class ReferralDecidedV1(PayloadSchema):
    """A supervisor accepted a candidate (intake reassigns the client) or declined the referral."""

    referral_id = Id(required=True)
    client_id = Id(required=True)
    decision = Code(("accepted", "declined"), required=True)
    decided_by = Id(required=True)
    previous_counselor_id = Id(load_default=None, allow_none=True)
    new_counselor_id = Id(load_default=None, allow_none=True)
    # A code, not prose: the supervisor's own words stay in referral.
    decline_reason = Code(("no_suitable_candidate", "client_declined", "clinical_judgement", "other"),
                          load_default=None, allow_none=True)


class ClientAssignedV1(PayloadSchema):
    """A client's counselor was set or changed (by the front desk or by an accepted referral)."""

    client_id = Id(required=True)
    counselor_id = Id(required=True)
    previous_counselor_id = Id(load_default=None, allow_none=True)
    assigned_by = Id(required=True)
    referral_id = Id(load_default=None, allow_none=True)
    concerns = fields.List(Code(CONCERNS), load_default=list)


class AlertAcknowledgedV1(PayloadSchema):
    """A counselor acknowledged an alliance alert and said what they did about it (a code)."""

    alert_id = Id(required=True)
    client_id = Id(required=True)
    counselor_id = Id(required=True)
    acknowledged_by = Id(required=True)
    action = Code(REPAIR_ACTIONS, load_default=None, allow_none=True)


class StaffUpdatedV1(PayloadSchema):
    """Who works where and in which role: the recipient and authority model of notify and referral."""

    staff_id = Id(required=True)
    role = Code(("admin", "supervisor", "counselor", "front_desk"), required=True)
    clinic_ids = fields.List(Id(), required=True)
    supervisor_id = Id(load_default=None, allow_none=True)
    active = fields.Boolean(load_default=True)
    # Tokens issued with an older version are revoked (services/common/sessions.py).
    token_version = fields.Integer(validate=validate.Range(min=0), load_default=0)


# (type, version) -> payload schema. The type of an event is the name of the topic it travels on.
PAYLOAD_SCHEMAS: dict[tuple[str, int], type[PayloadSchema]] = {
    (Topic.INTAKE_SUBMITTED.value, 1): IntakeSubmittedV1,
    (Topic.FEEDBACK_SUBMITTED.value, 1): FeedbackSubmittedV1,
    (Topic.EXIT_INTERVIEW_SUBMITTED.value, 1): ExitInterviewSubmittedV1,
    (Topic.COUNSELOR_UPDATED.value, 1): CounselorUpdatedV1,
    (Topic.ALLIANCE_SCORED.value, 1): AllianceScoredV1,
    (Topic.ALLIANCE_DROPPED.value, 1): AllianceDroppedV1,
    (Topic.ALLIANCE_DROPPED.value, 2): AllianceDroppedV2,
    (Topic.REFERRAL_RECOMMENDED.value, 1): ReferralRecommendedV1,
    (Topic.REFERRAL_DECIDED.value, 1): ReferralDecidedV1,
    (Topic.CLIENT_ASSIGNED.value, 1): ClientAssignedV1,
    (Topic.STAFF_UPDATED.value, 1): StaffUpdatedV1,
    (Topic.ALERT_ACKNOWLEDGED.value, 1): AlertAcknowledgedV1,
}
CURRENT_VERSION = {type_: max(v for t, v in PAYLOAD_SCHEMAS if t == type_) for (type_, _) in PAYLOAD_SCHEMAS}
# Older versions still on the topics are read as the current one: (type, old version) -> payload upcaster.
UPCASTERS = {(Topic.ALLIANCE_DROPPED.value, 1): _alliance_dropped_v1_to_v2}


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = Id(required=True)
    type = fields.String(required=True, validate=validate.OneOf([t.value for t in Topic]))
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True, format="iso")
    org_id = Id(required=True)
    clinic_id = Id(required=True)
    correlation_id = Id(required=True)
    producer = fields.String(required=True, validate=validate.Length(min=1, max=64))
    payload = fields.Dict(required=True)


class InvalidEvent(ValueError):
    """A message that can never be processed as it is: not JSON, not a valid event, or (raised by a
    handler) an event whose content the service cannot use. Consumers dead-letter it at once."""


class CrossTenantEvent(InvalidEvent):
    """A well-formed event naming an entity of another organisation or clinic than its own. Dead-lettered
    for an operator like any unusable event, but it does not count toward the consumer's halt: the halt is
    for a broken producer, and a run of such events (forged, or a tenant's misconfiguration) must not stop
    the processing of every other tenant's events."""


@dataclass(frozen=True)
class Event:
    event_id: str
    type: str
    version: int
    occurred_at: datetime
    org_id: str
    clinic_id: str
    correlation_id: str
    producer: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "type": self.type, "version": self.version,
            "occurred_at": self.occurred_at.isoformat(), "org_id": self.org_id,
            "clinic_id": self.clinic_id, "correlation_id": self.correlation_id,
            "producer": self.producer, "payload": dict(self.payload),
        }


def new_id() -> str:
    return uuid.uuid4().hex


def derived_id(namespace: uuid.UUID, *parts: Any) -> str:
    """A stable id for something derived from the given parts (uuid5 in a service's namespace): the same
    on every redelivery or replay, so a consumer finds what it made the first time."""
    return uuid.uuid5(namespace, "|".join(str(p) for p in parts)).hex


# The correlation id of the work in progress: set per HTTP request (its request id) and per consumed event
# (the event's correlation id), so every event made while handling it carries it on, to the notification.
current_correlation_id: ContextVar[str | None] = ContextVar("rapport_correlation_id", default=None)


def make_event(type_: str, payload: Mapping[str, Any], *, org_id: str, clinic_id: str, producer: str,
               correlation_id: str | None = None, event_id: str | None = None,
               occurred_at: datetime | None = None) -> Event:
    """Build and strictly validate an outgoing event; raises ValidationError naming the bad field."""
    version = CURRENT_VERSION[type_]
    event_id = event_id or new_id()
    raw = {
        "event_id": event_id, "type": type_, "version": version,
        "occurred_at": (occurred_at or datetime.now(timezone.utc)).isoformat(),
        "org_id": org_id, "clinic_id": clinic_id,
        "correlation_id": correlation_id or current_correlation_id.get() or event_id,
        "producer": producer, "payload": dict(payload),
    }
    envelope = EnvelopeSchema().load(raw, unknown=RAISE)
    schema = PAYLOAD_SCHEMAS[(type_, version)](unknown=RAISE)
    errors = schema.validate(envelope["payload"])
    if errors:
        raise ValidationError({"payload": errors})
    # The payload goes out as given (validated), so producers control exactly what is on the wire.
    return Event(**envelope)


def encode_event(event: Event) -> bytes:
    return json.dumps(event.to_dict(), separators=(",", ":"), sort_keys=True).encode()


def decode_event(raw: bytes | None) -> Event:
    """Parse an incoming message leniently (unknown fields are dropped); InvalidEvent if impossible."""
    try:
        data = json.loads(raw) if raw is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"not JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    if not isinstance(data, dict):
        raise InvalidEvent("not a JSON object")
    try:
        envelope = EnvelopeSchema().load(data)
        schema = PAYLOAD_SCHEMAS.get((envelope["type"], envelope["version"]))
        if schema is None:
            raise InvalidEvent(f"unsupported version {envelope['version']} of {envelope['type']}")
        try:
            envelope["payload"] = schema().load(envelope["payload"])
        except ValidationError as exc:
            raise ValidationError({"payload": exc.messages}) from None
        upcast = UPCASTERS.get((envelope["type"], envelope["version"]))
        if upcast is not None:
            envelope["payload"] = upcast(dict(envelope["payload"]))
            envelope["version"] = CURRENT_VERSION[envelope["type"]]
    except ValidationError as exc:
        raise InvalidEvent(f"invalid fields: {sorted(_field_paths(exc.messages))}") from None
    return Event(**envelope)


def _field_paths(messages: Any, prefix: str = "") -> list[str]:
    """Field names only: a validation message may quote a value, and values may be PHI."""
    if not isinstance(messages, dict):
        return [prefix or "_schema"]
    paths: list[str] = []
    for key, value in messages.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        paths.extend(_field_paths(value, path) if isinstance(value, dict) else [path])
    return paths
