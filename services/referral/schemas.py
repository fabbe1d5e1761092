from __future__ import annotations

from marshmallow import fields

from services.common.schemas import ResponseSchema


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
