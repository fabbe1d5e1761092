from __future__ import annotations

from marshmallow import fields, validate

from services.common.events import CONCERNS, MODALITIES, URGENCIES
from services.common.schemas import IdField, RequestSchema


class ClientDetailsSchema(RequestSchema):
    first_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    last_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    date_of_birth = fields.Date(load_default=None, allow_none=True)
    email = fields.Email(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True,
                          validate=validate.Regexp(r"^\+?[0-9 ()-]{6,20}$", error="Not a valid phone number."))


class PreferencesSchema(RequestSchema):
    language = fields.String(load_default=None, allow_none=True,
                             validate=validate.Regexp(r"^[a-z]{2,3}$", error="Use an ISO 639 code, e.g. en."))
    modality = fields.String(load_default="either", validate=validate.OneOf(MODALITIES + ("either",)))
    counselor_gender = fields.String(load_default=None, allow_none=True,
                                     validate=validate.OneOf(("female", "male", "nonbinary")))


class IntakeSchema(RequestSchema):
    id = fields.String(dump_only=True)
    client_id = fields.String(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    org_id = IdField(required=True)
    clinic_id = IdField(required=True)
    client = fields.Nested(ClientDetailsSchema, required=True)
    concerns = fields.List(fields.String(validate=validate.OneOf(CONCERNS)), required=True,
                           validate=validate.Length(min=1, max=len(CONCERNS)))
    preferences = fields.Nested(PreferencesSchema, load_default=dict)
    urgency = fields.String(load_default="routine", validate=validate.OneOf(URGENCIES))
    notes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))
    assigned_counselor_id = IdField(load_default=None, allow_none=True)


class FeedbackSchema(RequestSchema):
    id = fields.String(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    org_id = IdField(required=True)
    clinic_id = IdField(required=True)
    client_id = IdField(required=True)
    counselor_id = IdField(required=True)
    session_number = fields.Integer(required=True, validate=validate.Range(min=1, max=1000))
    instrument_id = IdField(load_default="rapport-short")
    answers = fields.Dict(keys=IdField(), values=fields.Float(allow_nan=False, validate=validate.Range(0, 100)),
                          required=True, validate=validate.Length(min=1, max=100))
