"""Event contracts: the only place where the wire format of Rapport's Kafka events is defined.

Every event is one JSON envelope (id, type, version, time, tenant, correlation, producer) around a
payload whose schema depends on (type, version). Producers validate strictly before they send;
consumers ignore fields they do not know, so a producer may add fields without breaking them.
Events carry ids, codes and scores, never a client's name, contact details or free text.
"""
from __future__ import annotations

import dataclasses
import json
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, ClassVar, Mapping, Self

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, missing, post_load, validate


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
    """Base of every payload schema. Consumers load with unknown=EXCLUDE; producers validate with RAISE."""

    class Meta:
        unknown = EXCLUDE


class Payload:
    """Base of the typed payloads: frozen dataclasses whose fields declare their wire format (`wire`), read
    by attribute. `payload_type` builds each one's marshmallow schema from those declarations, so the
    field list is written once; loading returns the type (nested types too)."""

    Schema: ClassVar[type[PayloadSchema]]

    def to_wire(self) -> dict[str, Any]:
        return self.Schema().dump(self)

    @classmethod
    def of(cls, source: Any, **values: Any) -> Self:
        """This payload from `source`'s attributes of the same names (a stored document, a domain object),
        with `values` given here taking precedence; checked like a payload from the wire."""
        names = cls.Schema._declared_fields
        raw = {name: values[name] if name in values else getattr(source, name) for name in names}
        return cls.Schema(unknown=RAISE).load(cls.Schema().dump(raw))


def wire(field_: fields.Field) -> Any:
    """A payload field and its wire format. A field the wire may leave out (`load_default`) has that
    default in the type too, so producers may leave it out as well."""
    default = field_.load_default
    if default is missing:
        return dataclasses.field(metadata={"wire": field_})
    if callable(default):
        return dataclasses.field(default_factory=default, metadata={"wire": field_})
    return dataclasses.field(default=default, metadata={"wire": field_})


def payload_type(cls: type) -> type:
    """Make `cls` a frozen, keyword-only dataclass and give it the schema its `wire` fields describe."""
    typed = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
    declared = {f.name: f.metadata["wire"] for f in dataclasses.fields(typed)}

    def make(self, data: dict[str, Any], **_: Any) -> Any:
        return typed(**data)

    typed.Schema = type(f"{cls.__name__}Schema", (PayloadSchema,), {**declared, "make": post_load(make)})
    return typed


@payload_type
class Preferences(Payload):
    language: str | None = wire(fields.String(validate=validate.Regexp(r"^[a-z]{2,3}$"), load_default=None,
                                              allow_none=True))
    modality: str = wire(Code(MODALITIES + ("either",), load_default="either"))
    counselor_gender: str | None = wire(Code(("female", "male", "nonbinary"), load_default=None, allow_none=True))


@payload_type
class IntakeSubmitted(Payload):
    intake_id: str = wire(Id(required=True))
    client_id: str = wire(Id(required=True))
    concerns: list[str] = wire(fields.List(Code(CONCERNS), required=True, validate=validate.Length(min=1)))
    preferences: Preferences = wire(fields.Nested(Preferences.Schema, load_default=Preferences))
    urgency: str = wire(Code(URGENCIES, load_default="routine"))
    assigned_counselor_id: str | None = wire(Id(load_default=None, allow_none=True))


@payload_type
class FeedbackSubmitted(Payload):
    feedback_id: str = wire(Id(required=True))
    client_id: str = wire(Id(required=True))
    counselor_id: str = wire(Id(required=True))
    session_number: int = wire(fields.Integer(required=True, validate=validate.Range(min=1)))
    instrument_id: str = wire(Id(required=True))
    answers: dict[str, float] = wire(fields.Dict(keys=Id(), values=fields.Float(allow_nan=False), required=True,
                                                 validate=validate.Length(min=1)))


@payload_type
class ExitInterviewSubmitted(Payload):
    exit_interview_id: str = wire(Id(required=True))
    client_id: str = wire(Id(required=True))
    counselor_id: str = wire(Id(required=True))
    session_number: int = wire(fields.Integer(required=True, validate=validate.Range(min=1)))
    comfortable: int = wire(fields.Integer(required=True, validate=validate.Range(1, 5)))
    style_fit: int = wire(fields.Integer(required=True, validate=validate.Range(1, 5)))
    confident_progress: int = wire(fields.Integer(required=True, validate=validate.Range(1, 5)))
    outside_expertise: bool = wire(fields.Boolean(required=True))
    wants_someone_else: bool = wire(fields.Boolean(required=True))


@payload_type
class CounselorUpdated(Payload):
    counselor_id: str = wire(Id(required=True))
    clinic_ids: list[str] = wire(fields.List(Id(), required=True))
    specialties: list[str] = wire(fields.List(Code(CONCERNS), load_default=list))
    languages: list[str] = wire(fields.List(fields.String(validate=validate.Regexp(r"^[a-z]{2,3}$")),
                                            load_default=list))
    modalities: list[str] = wire(fields.List(Code(MODALITIES), load_default=list))
    weekly_capacity: int = wire(fields.Integer(validate=validate.Range(min=0), load_default=0))
    caseload: int = wire(fields.Integer(validate=validate.Range(min=0), load_default=0))
    accepting_new_clients: bool = wire(fields.Boolean(load_default=True))
    supervisor_id: str | None = wire(Id(load_default=None, allow_none=True))
    gender: str | None = wire(Code(("female", "male", "nonbinary"), load_default=None, allow_none=True))
    active: bool = wire(fields.Boolean(load_default=True))


@payload_type
class SubscaleScores(Payload):
    goal: float | None = wire(fields.Float(allow_none=True, load_default=None))
    task: float | None = wire(fields.Float(allow_none=True, load_default=None))
    bond: float | None = wire(fields.Float(allow_none=True, load_default=None))


def _subscales(**kwargs: Any) -> fields.Nested:
    return fields.Nested(SubscaleScores.Schema, **kwargs)


@payload_type
class _SessionComparison(Payload):
    """What alliance.scored and alliance.dropped both say of a session: its total and what the alert rules
    compared it with - the dyad's running baseline before it (mean and SD of the client's earlier sessions
    with this counselor, and how many) and the previous session's total; None until there are enough."""

    source_event_id: str = wire(Id(required=True))
    client_id: str = wire(Id(required=True))
    counselor_id: str = wire(Id(required=True))
    session_number: int = wire(fields.Integer(required=True, validate=validate.Range(min=1)))
    instrument_id: str = wire(Id(required=True))
    total: float = wire(fields.Float(required=True))
    baseline_mean: float | None = wire(fields.Float(allow_none=True, load_default=None))
    baseline_sd: float | None = wire(fields.Float(allow_none=True, load_default=None))
    baseline_sessions: int = wire(fields.Integer(validate=validate.Range(min=0), load_default=0))
    previous_total: float | None = wire(fields.Float(allow_none=True, load_default=None))


@payload_type
class AllianceScored(_SessionComparison):
    score_id: str = wire(Id(required=True))
    mean: float = wire(fields.Float(required=True))
    subscales: SubscaleScores = wire(_subscales(required=True))


@payload_type
class AllianceDropped(_SessionComparison):
    """One alert per session: every rule that fired on it."""

    alert_id: str = wire(Id(required=True))
    kind: str = wire(Code(ALERT_KINDS, required=True))
    rules: list[str] = wire(fields.List(Id(), required=True, validate=validate.Length(min=1)))
    dimension: str | None = wire(Code(SUBSCALES, load_default=None, allow_none=True))
    severity: str = wire(Code(SEVERITIES, required=True))
    threshold: float = wire(fields.Float(required=True))
    # How far below the client's baseline, in their SDs; None for level and exit-interview alerts.
    fall_sd: float | None = wire(fields.Float(allow_none=True, load_default=None))
    subscales: SubscaleScores = wire(_subscales(load_default=SubscaleScores))
    # The client's usual level of each subscale: its mean over the same baseline sessions as baseline_mean
    # (None for a subscale with no values there; all None without a baseline and for exit interviews).
    usual_subscales: SubscaleScores = wire(_subscales(load_default=SubscaleScores))


# alliance.dropped version 1: one event per rule that fired, read as version 2 (see UPCASTERS).
_AllianceDroppedV1 = type("AllianceDroppedV1", (PayloadSchema,), {
    **{name: field_ for name, field_ in AllianceDropped.Schema._declared_fields.items()
       if name not in ("kind", "rules", "fall_sd", "subscales", "usual_subscales")},
    # Checked when read as version 2: here it stays plain data for the upcaster.
    "subscales": fields.Dict(load_default=dict), "rule": Id(required=True)})


def _alliance_dropped_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    rule = payload.pop("rule")
    kind = "exit_interview" if rule == "exit_interview_low_fit" else (
        "level" if rule == "below_cutoff" else "change")
    return {**payload, "rules": [rule], "kind": kind, "fall_sd": None}


@payload_type
class Candidate(Payload):
    counselor_id: str = wire(Id(required=True))
    score: float = wire(fields.Float(required=True))
    # Reasons describe the counselor ("speaks es", "specialises in trauma"), never the client.
    reasons: list[str] = wire(fields.List(fields.String(validate=validate.Length(max=120)), load_default=list))
    # The score's parts, numbers only: "specialty", "strength", "preference", "capacity", "clinic" (they sum
    # to the score) and the strength's evidence per concern, "strength.<concern>.clients" and ".sessions",
    # with ".estimate", ".sd", ".effect" and ".usual" once there is enough evidence. Older events: none.
    parts: dict[str, float] = wire(fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)*$")),
        values=fields.Float(allow_nan=False), load_default=dict))


@payload_type
class ReferralRecommended(Payload):
    referral_id: str = wire(Id(required=True))
    trigger_event_id: str = wire(Id(required=True))
    client_id: str = wire(Id(required=True))
    current_counselor_id: str | None = wire(Id(load_default=None, allow_none=True))
    reason: str = wire(Code(("intake", "exit_interview", "alliance_decline"), required=True))
    candidates: list[Candidate] = wire(fields.List(fields.Nested(Candidate.Schema), required=True))


REFERRAL_DECISIONS = ("accepted", "declined", "superseded")


@payload_type
class ReferralDecided(Payload):
    """A supervisor accepted a candidate (intake reassigns the client) or declined the referral, or referral
    closed it as superseded: the client was reassigned (by another referral or by staff) while it was open,
    so it was made on facts that no longer hold. For a superseded referral `decided_by` is whoever made that
    assignment and `new_counselor_id` the client's counselor since."""

    referral_id: str = wire(Id(required=True))
    client_id: str = wire(Id(required=True))
    decision: str = wire(Code(REFERRAL_DECISIONS, required=True))
    decided_by: str = wire(Id(required=True))
    previous_counselor_id: str | None = wire(Id(load_default=None, allow_none=True))
    new_counselor_id: str | None = wire(Id(load_default=None, allow_none=True))
    # A code, not prose: the supervisor's own words stay in referral.
    decline_reason: str | None = wire(Code(("no_suitable_candidate", "client_declined", "clinical_judgement",
                                            "other"), load_default=None, allow_none=True))


# referral.decided version 1 knew only "accepted" and "declined"; its payloads read as version 2 unchanged.
# Version 2 because a consumer written for version 1 would dead-letter "superseded" as invalid: the new
# version number says so up front (a consumer that does not know it refuses it as unsupported).
_ReferralDecidedV1 = type("ReferralDecidedV1", (PayloadSchema,), {
    **ReferralDecided.Schema._declared_fields,
    "decision": Code(REFERRAL_DECISIONS[:2], required=True)})


@payload_type
class ClientAssigned(Payload):
    """A client's counselor was set or changed (by the front desk or by an accepted referral)."""

    client_id: str = wire(Id(required=True))
    counselor_id: str = wire(Id(required=True))
    previous_counselor_id: str | None = wire(Id(load_default=None, allow_none=True))
    assigned_by: str = wire(Id(required=True))
    referral_id: str | None = wire(Id(load_default=None, allow_none=True))
    concerns: list[str] = wire(fields.List(Code(CONCERNS), load_default=list))


@payload_type
class AlertAcknowledged(Payload):
    """A counselor acknowledged an alliance alert and said what they did about it (a code)."""

    alert_id: str = wire(Id(required=True))
    client_id: str = wire(Id(required=True))
    counselor_id: str = wire(Id(required=True))
    acknowledged_by: str = wire(Id(required=True))
    action: str | None = wire(Code(REPAIR_ACTIONS, load_default=None, allow_none=True))


@payload_type
class StaffUpdated(Payload):
    """Who works where and in which role: the recipient and authority model of notify and referral."""

    staff_id: str = wire(Id(required=True))
    role: str = wire(Code(("admin", "supervisor", "counselor", "front_desk"), required=True))
    clinic_ids: list[str] = wire(fields.List(Id(), required=True))
    supervisor_id: str | None = wire(Id(load_default=None, allow_none=True))
    active: bool = wire(fields.Boolean(load_default=True))
    # Tokens issued with an older version are revoked (services/common/sessions.py).
    token_version: int = wire(fields.Integer(validate=validate.Range(min=0), load_default=0))


# The payload type of each event type, as consumers receive it (older versions are upcast to it). The type
# of an event is the name of the topic it travels on.
PAYLOAD_TYPES: dict[str, type[Payload]] = {
    Topic.INTAKE_SUBMITTED.value: IntakeSubmitted,
    Topic.FEEDBACK_SUBMITTED.value: FeedbackSubmitted,
    Topic.EXIT_INTERVIEW_SUBMITTED.value: ExitInterviewSubmitted,
    Topic.COUNSELOR_UPDATED.value: CounselorUpdated,
    Topic.ALLIANCE_SCORED.value: AllianceScored,
    Topic.ALLIANCE_DROPPED.value: AllianceDropped,
    Topic.REFERRAL_RECOMMENDED.value: ReferralRecommended,
    Topic.REFERRAL_DECIDED.value: ReferralDecided,
    Topic.CLIENT_ASSIGNED.value: ClientAssigned,
    Topic.STAFF_UPDATED.value: StaffUpdated,
    Topic.ALERT_ACKNOWLEDGED.value: AlertAcknowledged,
}
CURRENT_VERSION = {type_: 1 for type_ in PAYLOAD_TYPES} | {Topic.ALLIANCE_DROPPED.value: 2,
                                                            Topic.REFERRAL_DECIDED.value: 2}
# Every (type, version) a consumer accepts -> the schema that checks it.
PAYLOAD_SCHEMAS: dict[tuple[str, int], type[PayloadSchema]] = {
    **{(type_, CURRENT_VERSION[type_]): payload.Schema for type_, payload in PAYLOAD_TYPES.items()},
    (Topic.ALLIANCE_DROPPED.value, 1): _AllianceDroppedV1,
    (Topic.REFERRAL_DECIDED.value, 1): _ReferralDecidedV1,
}
# Older versions still on the topics are read as the current one: (type, old version) -> payload upcaster.
UPCASTERS = {(Topic.ALLIANCE_DROPPED.value, 1): _alliance_dropped_v1_to_v2,
             (Topic.REFERRAL_DECIDED.value, 1): dict}


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
    payload: Payload

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "type": self.type, "version": self.version,
            "occurred_at": self.occurred_at.isoformat(), "org_id": self.org_id,
            "clinic_id": self.clinic_id, "correlation_id": self.correlation_id,
            "producer": self.producer, "payload": self.payload.to_wire(),
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


def make_event(type_: str, payload: Payload | Mapping[str, Any], *, org_id: str, clinic_id: str, producer: str,
               correlation_id: str | None = None, event_id: str | None = None,
               occurred_at: datetime | None = None) -> Event:
    """Build and strictly validate an outgoing event; raises ValidationError naming the bad field.

    The payload is its type (read by attribute) or the same as a mapping; either way it is checked against
    the wire format, unknown fields refused, before anything can be published."""
    version = CURRENT_VERSION[type_]
    event_id = event_id or new_id()
    payload_type = PAYLOAD_TYPES[type_]
    raw_payload = payload.to_wire() if isinstance(payload, Payload) else dict(payload)
    raw = {
        "event_id": event_id, "type": type_, "version": version,
        "occurred_at": (occurred_at or datetime.now(timezone.utc)).isoformat(),
        "org_id": org_id, "clinic_id": clinic_id,
        "correlation_id": correlation_id or current_correlation_id.get() or event_id,
        "producer": producer, "payload": raw_payload,
    }
    envelope = EnvelopeSchema().load(raw, unknown=RAISE)
    if isinstance(payload, payload_type):
        errors = payload_type.Schema(unknown=RAISE).validate(raw_payload)
    else:
        errors, payload = _load_payload(payload_type, raw_payload)
    if errors:
        raise ValidationError({"payload": errors})
    return Event(**{**envelope, "payload": payload})


def _load_payload(payload_type: type[Payload], raw: Mapping[str, Any]) -> tuple[dict, Payload | None]:
    try:
        return {}, payload_type.Schema(unknown=RAISE).load(raw)
    except ValidationError as exc:
        return exc.messages, None


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
            loaded = schema().load(envelope["payload"])
            upcast = UPCASTERS.get((envelope["type"], envelope["version"]))
            if upcast is not None:
                # An older version: checked as it was written, then read as the current type.
                loaded = PAYLOAD_TYPES[envelope["type"]].Schema().load(upcast(dict(loaded)))
                envelope["version"] = CURRENT_VERSION[envelope["type"]]
            envelope["payload"] = loaded
        except ValidationError as exc:
            raise ValidationError({"payload": exc.messages}) from None
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
