from __future__ import annotations

from marshmallow import fields, validate

from services.common.schemas import IdField, RequestSchema, ResponseSchema

from services.scoring.domain.alerting import CHANGE, EXIT_INTERVIEW, EXIT_INTERVIEW_RULE, LEVEL, RULES


class CalibrationSchema(ResponseSchema):
    instrument_id = fields.String()
    source = fields.String(metadata={"description": "clinic: fitted to the clinic's sessions; instrument: the "
                                                    "instrument's documented values (too few sessions yet)"})
    k = fields.Float(metadata={"description": "How many of the client's own SDs a session must fall below "
                                              "their baseline to alert, at the clinic's budget"})
    pooled_sd = fields.Float(metadata={"description": "Within-client SD of the total"})
    sessions_per_counselor_month = fields.Float()
    dyads = fields.Integer()
    sessions = fields.Integer()
    computed_at = fields.AwareDateTime(allow_none=True)


class AlertSettingsSchema(ResponseSchema):
    org_id = fields.String()
    clinic_id = fields.String()
    overrides = fields.Dict(metadata={"description": "The clinic's own overrides"})
    defaults = fields.Dict(metadata={"description": "The configuration file's budget and rules"})
    effective = fields.Dict(metadata={"description": "What applies to the clinic's sessions"})
    calibrations = fields.List(fields.Nested(CalibrationSchema),
                               metadata={"description": "Per instrument the clinic uses: the threshold its "
                                                        "budget gives"})
    updated_by = fields.String(allow_none=True)
    updated_at = fields.AwareDateTime(allow_none=True)


class PreviewQuerySchema(RequestSchema):
    months = fields.Integer(load_default=6, validate=validate.Range(1, 24),
                            metadata={"description": "How many months of the clinic's sessions to replay"})


class PreviewFiguresSchema(ResponseSchema):
    change_alerts = fields.Integer()
    level_notices = fields.Integer()
    change_alerts_per_counselor_month = fields.Float(allow_none=True)
    level_notices_per_counselor_month = fields.Float(allow_none=True)


class AlertPreviewSchema(ResponseSchema):
    clinic_id = fields.String()
    months = fields.Integer()
    sessions = fields.Integer()
    counselor_months = fields.Float()
    current = fields.Nested(PreviewFiguresSchema, metadata={"description": "With the settings in force"})
    proposed = fields.Nested(PreviewFiguresSchema, metadata={"description": "With the settings sent"})
    summary = fields.String(metadata={"description": "The same in a sentence"})


# --- Scores, alerts, trajectories ---------------------------------------------------------------------

class ScoreQuerySchema(RequestSchema):
    client_id = IdField(required=True)
    counselor_id = IdField()


class AlertSchema(ResponseSchema):
    alert_id = fields.String()
    kind = fields.String()
    rules = fields.List(fields.String())
    dimension = fields.String(allow_none=True)
    severity = fields.String()
    threshold = fields.Float()
    suggestion = fields.String(allow_none=True)


class ComparedSessionSchema(ResponseSchema):
    """A session's total with what the alert rules compared it with (models.ComparedSession)."""

    org_id = fields.String()
    clinic_id = fields.String()
    client_id = fields.String()
    counselor_id = fields.String()
    session_number = fields.Integer()
    instrument_id = fields.String()
    total = fields.Float()
    subscales = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True))
    baseline_mean = fields.Float(allow_none=True)
    baseline_sd = fields.Float(allow_none=True)
    baseline_sessions = fields.Integer()
    previous_total = fields.Float(allow_none=True)


class SessionScoreSchema(ComparedSessionSchema):
    id = fields.String()
    mean = fields.Float()
    below_cutoff = fields.Boolean(metadata={"description": "Flag: below the instrument's cutoff, worth talking "
                                                           "about in the session"})
    fall_sd = fields.Float(allow_none=True, metadata={"description": "How far below the client's baseline, in "
                                                                     "their SDs"})
    late = fields.Boolean()
    alert = fields.Nested(AlertSchema, allow_none=True)
    submitted_at = fields.AwareDateTime()
    scored_at = fields.AwareDateTime()


class AlertQuerySchema(RequestSchema):
    counselor_id = IdField()
    clinic_id = IdField()
    client_id = IdField()
    rule = fields.String(validate=validate.OneOf((*RULES, EXIT_INTERVIEW_RULE)),
                         metadata={"description": "Alerts among whose rules this one is"})
    kind = fields.String(validate=validate.OneOf((CHANGE, LEVEL, EXIT_INTERVIEW)))


class AlertDocumentSchema(ComparedSessionSchema, AlertSchema):
    class Meta:
        exclude = ("alert_id",)  # the document's own id is the alert id

    id = fields.String(data_key="alert_id")
    source_event_id = fields.String()
    fall_sd = fields.Float(allow_none=True)
    usual_subscales = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True), metadata={
        "description": "The client's usual goal, task and bond item means (over the same earlier sessions as "
                       "baseline_mean); empty without a baseline and for exit interviews"})
    raised_at = fields.AwareDateTime()
    outcome = fields.String(metadata={"description": "pending, recovered or not_recovered (within two sessions)"})
    outcome_session = fields.Integer(allow_none=True)
    acknowledged_at = fields.AwareDateTime(allow_none=True)
    action = fields.String(allow_none=True, metadata={"description": "What the counselor did (on acknowledging)"})


class TrajectoryQuerySchema(RequestSchema):
    client_id = IdField(required=True)
    counselor_id = IdField()


class TrajectoryPointSchema(ResponseSchema):
    session_number = fields.Integer()
    counselor_id = fields.String()
    instrument_id = fields.String()
    total = fields.Float()
    subscales = fields.Dict(keys=fields.String(), values=fields.Float(allow_none=True))
    below_cutoff = fields.Boolean()
    alert_kind = fields.String(allow_none=True)
    alerts = fields.List(fields.String(), metadata={"description": "Rules of the alert raised at this session"})


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


class RecoverySchema(ResponseSchema):
    alerts = fields.Integer()
    recovered = fields.Integer(metadata={"description": "Back to the client's usual level (or above the cutoff) "
                                                        "within two sessions"})
    not_recovered = fields.Integer()
    pending = fields.Integer()


class ClinicSummarySchema(ResponseSchema):
    clinic_id = fields.String()
    since = fields.Date()
    sessions = fields.Integer()
    sessions_below_cutoff = fields.Integer()
    share_below_cutoff = fields.Float(allow_none=True)
    alerts_per_counselor_month = fields.List(fields.Nested(CounselorMonthSchema))
    alerts_by_rule = fields.Dict(keys=fields.String(), values=fields.Integer())
    alerts_by_kind = fields.Dict(keys=fields.String(), values=fields.Integer())
    alerts_by_dimension = fields.Dict(keys=fields.String(), values=fields.Integer())
    recovery_by_rule = fields.Dict(keys=fields.String(), values=fields.Nested(RecoverySchema))
    recovery_by_counselor = fields.Dict(keys=fields.String(), values=fields.Nested(RecoverySchema))
    recovery_by_action = fields.Dict(keys=fields.String(), values=fields.Nested(RecoverySchema),
                                     metadata={"description": "By what the counselor did after the alert"})


class ChartQuerySchema(RequestSchema):
    client_id = IdField(required=True)
    counselor_id = IdField()

