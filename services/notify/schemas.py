from __future__ import annotations

from marshmallow import fields

from services.common.schemas import IdField, RequestSchema, ResponseSchema


class InboxQuerySchema(RequestSchema):
    counselor_id = IdField(required=True)


class InboxItemSchema(ResponseSchema):
    id = fields.String()
    org_id = fields.String()
    clinic_id = fields.String()
    recipient_id = fields.String()
    kind = fields.String()
    client_id = fields.String()
    source_event_id = fields.String()
    rule = fields.String(allow_none=True)
    dimension = fields.String(allow_none=True)
    severity = fields.String(allow_none=True)
    session_number = fields.Integer(allow_none=True)
    created_at = fields.AwareDateTime()
    acknowledged_at = fields.AwareDateTime(allow_none=True)
