from __future__ import annotations

from marshmallow import fields

from services.common.schemas import IdField, RequestSchema, ResponseSchema


class ScoreQuerySchema(RequestSchema):
    client_id = IdField(required=True)


class AlertSchema(ResponseSchema):
    alert_id = fields.String()
    rule = fields.String()
    dimension = fields.String(allow_none=True)
    severity = fields.String()
    threshold = fields.Float()


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
    alerts = fields.List(fields.Nested(AlertSchema))
    scored_at = fields.AwareDateTime()
