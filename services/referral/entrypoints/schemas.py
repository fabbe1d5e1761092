from __future__ import annotations

from marshmallow import fields, validate

from services.common.schemas import IdField, RequestSchema, ResponseSchema

from services.referral.domain import DECLINE_REASONS, STATUSES


class IntakeViewSchema(ResponseSchema):
    id = fields.String()
    org_id = fields.String()
    clinic_id = fields.String()
    client_id = fields.String()
    concerns = fields.List(fields.String())
    preferences = fields.Dict()
    urgency = fields.String()
    assigned_counselor_id = fields.String(allow_none=True)
    received_at = fields.AwareDateTime()


class CandidateSchema(ResponseSchema):
    counselor_id = fields.String()
    score = fields.Float()
    reasons = fields.List(fields.String())
    parts = fields.Dict(keys=fields.String(), values=fields.Float(), metadata={
        "description": "what specialty, strength, preference, capacity and clinic added: they sum to the score"})


class ReferralSchema(ResponseSchema):
    id = fields.String()
    org_id = fields.String()
    clinic_id = fields.String()
    client_id = fields.String()
    current_counselor_id = fields.String(allow_none=True)
    reason = fields.String(metadata={"description": "intake, exit_interview or alliance_decline"})
    trigger_event_id = fields.String()
    candidates = fields.List(fields.Nested(CandidateSchema), metadata={"description": "best first"})
    weights = fields.Dict(keys=fields.String(), values=fields.Float(), metadata={
        "description": "the weights applied (specialty raised when outside_expertise)"})
    outside_expertise = fields.Boolean()
    excluded_counselor_ids = fields.List(fields.String(), metadata={"description": "the counselor left"})
    excluded = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "how many counselors each hard constraint removed"})
    status = fields.String(metadata={"description": ", ".join(STATUSES) + " (closed by a later assignment)"})
    created_at = fields.AwareDateTime()
    decided_by = fields.String(allow_none=True)
    decided_at = fields.AwareDateTime(allow_none=True)
    chosen_counselor_id = fields.String(allow_none=True)
    decline_reason = fields.String(allow_none=True)
    decision_note = fields.String(allow_none=True)


class CounselorViewSchema(ResponseSchema):
    id = fields.String(metadata={"description": "the counselor id (names are in intake's directory)"})
    clinic_ids = fields.List(fields.String())
    specialties = fields.List(fields.String())
    languages = fields.List(fields.String())
    modalities = fields.List(fields.String())
    weekly_capacity = fields.Integer()
    caseload = fields.Integer()
    accepting_new_clients = fields.Boolean()
    active = fields.Boolean()
    as_of = fields.AwareDateTime(metadata={"description": "when the snapshot was taken"})


class ReferralQuerySchema(RequestSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    client_id = IdField()


class AcceptSchema(RequestSchema):
    counselor_id = IdField(required=True, metadata={"description": "one of the referral's candidates"})


class DeclineSchema(RequestSchema):
    reason = fields.String(required=True, validate=validate.OneOf(DECLINE_REASONS))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000),
                         metadata={"description": "stays in referral; never sent in an event"})


class OutcomeCountsSchema(ResponseSchema):
    accepted = fields.Integer(metadata={"description": "accepted referrals whose reassignment landed"})
    following = fields.Integer(metadata={"description": "still in the new counselor's first sessions"})
    settled = fields.Integer(metadata={"description": "first sessions in and compared with the counselor before"})
    improved = fields.Integer(metadata={"description": "settled, and the alliance rose by more than the margin"})
    without_baseline = fields.Integer(metadata={"description": "first sessions in, no earlier alliance to compare"})
    share_improved = fields.Float(allow_none=True, metadata={"description": "improved / settled; null before any"})


class ReasonOutcomeSchema(OutcomeCountsSchema):
    reason = fields.String(metadata={"description": "intake, exit_interview or alliance_decline"})


class ConcernOutcomeSchema(OutcomeCountsSchema):
    concern = fields.String(metadata={"description": "a client with two concerns counts under both"})


class ReferralOutcomesSchema(ResponseSchema):
    clinic_id = fields.String()
    sessions_compared = fields.Integer(metadata={"description": "the new dyad's first sessions that are compared"})
    margin = fields.Float(metadata={"description": "how much higher (fraction of the scale) counts as improved"})
    overall = fields.Nested(OutcomeCountsSchema)
    by_reason = fields.List(fields.Nested(ReasonOutcomeSchema))
    by_concern = fields.List(fields.Nested(ConcernOutcomeSchema))
