"""What a clinic's alert settings may say: the same schemas check the shipped defaults (alert_rules.yaml) and
an admin's overrides, so a value the API refuses can never come from the configuration file either."""
from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from services.common.events import SEVERITIES


def Severity(**kwargs) -> fields.String:
    return fields.String(validate=validate.OneOf(SEVERITIES), **kwargs)


class SettingsSchema(Schema):
    """Strict: a misspelt rule or parameter is an error naming it, never silently ignored."""

    class Meta:
        unknown = RAISE


class RuleSchema(SettingsSchema):
    enabled = fields.Boolean(required=True)
    severity = Severity(required=True)


class RuptureSchema(RuleSchema):
    high_beyond = fields.Float(required=True, validate=validate.Range(0, 5))
    window = fields.Integer(required=True, validate=validate.Range(2, 20))
    prior_weight = fields.Float(required=True, validate=validate.Range(0, 100))
    min_baseline_sessions = fields.Integer(required=True, validate=validate.Range(1, 20))


class SustainedDeclineSchema(RuleSchema):
    sessions = fields.Integer(required=True, validate=validate.Range(2, 10))


class ReliableDropSchema(RuleSchema):
    z = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))


class DropVsPreviousSchema(RuleSchema):
    min_drop_sd = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))


class BelowCutoffSchema(SettingsSchema):
    push = fields.Boolean(required=True)
    severity = Severity(required=True)
    high_below_share = fields.Float(required=True, validate=validate.Range(0, 1))


class PersistentlyLowSchema(RuleSchema):
    sessions = fields.Integer(required=True, validate=validate.Range(1, 20))


class ExitInterviewLowFitSchema(RuleSchema):
    below = fields.Float(required=True, validate=validate.Range(1, 5))
    when_wants_someone_else = fields.Boolean(required=True)


class RuleSettingsSchema(SettingsSchema):
    rupture = fields.Nested(RuptureSchema)
    sustained_decline = fields.Nested(SustainedDeclineSchema)
    reliable_drop = fields.Nested(ReliableDropSchema)
    drop_vs_previous = fields.Nested(DropVsPreviousSchema)
    below_cutoff = fields.Nested(BelowCutoffSchema)
    persistently_low = fields.Nested(PersistentlyLowSchema)
    exit_interview_low_fit = fields.Nested(ExitInterviewLowFitSchema)


class BudgetSchema(SettingsSchema):
    false_alerts_per_counselor_month = fields.Float(
        required=True, validate=validate.Range(0.05, 50),
        metadata={"description": "Change alerts on sessions without a real fall that a counselor can look "
                                 "into per month; the alert threshold follows from it"})


class AlertSettingsUpdateSchema(SettingsSchema):
    """An admin's overrides for one clinic: any subset of the budget and of rules and their values; the rest
    stays default. `{}` returns the clinic to the defaults."""

    budget = fields.Nested(BudgetSchema(partial=True))
    rules = fields.Nested(RuleSettingsSchema(partial=True))
