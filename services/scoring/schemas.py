from __future__ import annotations

from marshmallow import fields, validate

from services.common.events import SEVERITIES
from services.common.schemas import IdField, RequestSchema, ResponseSchema

from .domain import EXIT_INTERVIEW_RULE, RULES

Severity = lambda **kw: fields.String(validate=validate.OneOf(SEVERITIES), **kw)  # noqa: E731


# --- Alert rule settings: the same schemas check the configuration file and an admin's overrides -------

class RuleSchema(RequestSchema):
    enabled = fields.Boolean(required=True)
    severity = Severity(required=True)


class BelowCutoffSchema(RuleSchema):
    high_below_share = fields.Float(required=True, validate=validate.Range(0, 1))
    only_when_crossing = fields.Boolean(required=True)


class DropVsPreviousSchema(RuleSchema):
    min_drop = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))


class ReliableDropSchema(RuleSchema):
    z = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))
    min_baseline_sessions = fields.Integer(required=True, validate=validate.Range(min=1))


class RuptureSchema(RuleSchema):
    k = fields.Float(required=True, validate=validate.Range(1, 2))
    min_baseline_sessions = fields.Integer(required=True, validate=validate.Range(min=2))
    min_sd = fields.Float(required=True, validate=validate.Range(min=0))


class SustainedDeclineSchema(RuleSchema):
    sessions = fields.Integer(required=True, validate=validate.Range(min=2))


class ExitInterviewLowFitSchema(RuleSchema):
    below = fields.Float(required=True, validate=validate.Range(1, 5))
    when_wants_someone_else = fields.Boolean(required=True)


class RuleSettingsSchema(RequestSchema):
    below_cutoff = fields.Nested(BelowCutoffSchema)
    drop_vs_previous = fields.Nested(DropVsPreviousSchema)
    reliable_drop = fields.Nested(ReliableDropSchema)
    rupture = fields.Nested(RuptureSchema)
    sustained_decline = fields.Nested(SustainedDeclineSchema)
    exit_interview_low_fit = fields.Nested(ExitInterviewLowFitSchema)


class AlertSettingsUpdateSchema(RequestSchema):
    """An admin's overrides for one clinic: any subset of rules and parameters; the rest stays default."""

    rules = fields.Nested(RuleSettingsSchema(partial=True), required=True)


class AlertSettingsSchema(ResponseSchema):
    org_id = fields.String()
    clinic_id = fields.String()
    overrides = fields.Dict(metadata={"description": "The clinic's own overrides"})
    defaults = fields.Dict(metadata={"description": "The configuration file's rules, before instrument layers"})
    effective = fields.Dict(metadata={"description": "Per instrument id: the rules applied to its sessions"})
    updated_by = fields.String(allow_none=True)
    updated_at = fields.AwareDateTime(allow_none=True)


# --- Scores, alerts, trajectories ---------------------------------------------------------------------

class ScoreQuerySchema(RequestSchema):
    client_id = IdField(required=True)
    counselor_id = IdField()


class AlertSchema(ResponseSchema):
    alert_id = fields.String()
    rule = fields.String()
    dimension = fields.String(allow_none=True)
    severity = fields.String()
    threshold = fields.Float()
    suggestion = fields.String(allow_none=True)


class SessionScoreSchema(ResponseSchema):
    id = fields.String()
    org_id = fields.String()
    clinic_id = fields.String()
    client_id = fields.String()
    counselor_id = fields.String()
    session_number = fields.Integer()
    instrument_id = fields.String()
    total = fields.Float()
    mean = fields.Float()
    subscales = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True))
    baseline_mean = fields.Float(allow_none=True)
    baseline_sd = fields.Float(allow_none=True)
    baseline_sessions = fields.Integer()
    previous_total = fields.Float(allow_none=True)
    late = fields.Boolean()
    alerts = fields.List(fields.Nested(AlertSchema))
    submitted_at = fields.AwareDateTime()
    scored_at = fields.AwareDateTime()


class AlertQuerySchema(RequestSchema):
    counselor_id = IdField()
    clinic_id = IdField()
    client_id = IdField()
    rule = fields.String(validate=validate.OneOf((*RULES, EXIT_INTERVIEW_RULE)))


class AlertDocumentSchema(ResponseSchema):
    id = fields.String(data_key="alert_id")
    org_id = fields.String()
    clinic_id = fields.String()
    client_id = fields.String()
    counselor_id = fields.String()
    session_number = fields.Integer()
    instrument_id = fields.String()
    source_event_id = fields.String()
    rule = fields.String()
    dimension = fields.String(allow_none=True)
    severity = fields.String()
    total = fields.Float()
    threshold = fields.Float()
    subscales = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True))
    baseline_mean = fields.Float(allow_none=True)
    baseline_sd = fields.Float(allow_none=True)
    baseline_sessions = fields.Integer()
    previous_total = fields.Float(allow_none=True)
    suggestion = fields.String(allow_none=True)
    raised_at = fields.AwareDateTime()


class TrajectoryQuerySchema(RequestSchema):
    client_id = IdField(required=True)
    counselor_id = IdField()


class TrajectoryPointSchema(ResponseSchema):
    session_number = fields.Integer()
    counselor_id = fields.String()
    instrument_id = fields.String()
    total = fields.Float()
    subscales = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True))
    alerts = fields.List(fields.String(), metadata={"description": "Rules raised at this session"})


class BaselineSchema(ResponseSchema):
    sessions = fields.Integer()
    mean = fields.Float(allow_none=True)
    sd = fields.Float(allow_none=True)


class TrajectorySchema(ResponseSchema):
    client_id = fields.String()
    counselor_id = fields.String(allow_none=True)
    instrument_ids = fields.List(fields.String())
    cutoff_total = fields.Float(allow_none=True)
    baseline = fields.Nested(BaselineSchema, allow_none=True,
                             metadata={"description": "Per dyad only: the running baseline after the last session"})
    points = fields.List(fields.Nested(TrajectoryPointSchema))
    chart_url = fields.String()


class SummaryQuerySchema(RequestSchema):
    since = fields.Date(metadata={"description": "First day counted (default: 12 months back)"})


class CounselorMonthSchema(ResponseSchema):
    counselor_id = fields.String()
    month = fields.String()
    alerts = fields.Integer()


class ClinicSummarySchema(ResponseSchema):
    clinic_id = fields.String()
    since = fields.Date()
    sessions = fields.Integer()
    sessions_below_cutoff = fields.Integer()
    share_below_cutoff = fields.Float(allow_none=True)
    alerts_per_counselor_month = fields.List(fields.Nested(CounselorMonthSchema))
    alerts_by_rule = fields.Dict(keys=fields.String(), values=fields.Integer())
    alerts_by_dimension = fields.Dict(keys=fields.String(), values=fields.Integer())


class ChartQuerySchema(RequestSchema):
    client_id = IdField(required=True)
    counselor_id = IdField()

