"""Intake's request and response schemas; the new-client page validates its form with the same ones."""
from __future__ import annotations

from datetime import date

from marshmallow import ValidationError, fields, validate

from services.common.auth import ROLES
from services.common.events import CONCERNS, MODALITIES, URGENCIES
from services.common.schemas import IdField, PlainText, RequestSchema, ResponseSchema

from services.intake.adapters.accounts import MIN_PASSWORD_LENGTH
from services.intake.domain import DAYS, GENDERS, REISSUE_NOTE_MAX, REISSUE_REASONS, TIMES
from services.intake.adapters.links import KINDS

LANGUAGE = validate.Regexp(r"^[a-z]{2}$", error="Use a two-letter ISO 639-1 code, e.g. en.")


def Codes(choices, **kwargs) -> fields.List:
    return fields.List(fields.String(validate=validate.OneOf(choices)), **kwargs)


# --- sign-in ---

class TokenRequestSchema(RequestSchema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))
    org_id = IdField(load_default=None, metadata={
        "description": "Only when the e-mail belongs to accounts of several organisations (the answer is 409)"})


class TokenSchema(ResponseSchema):
    token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer(metadata={"description": "seconds"})


class IdentitySchema(ResponseSchema):
    staff_id = fields.String()
    org_id = fields.String()
    clinic_ids = fields.List(fields.String())
    role = fields.String()


# --- clinics and staff ---

class ClinicSchema(RequestSchema):
    id = fields.String(dump_only=True)
    org_id = fields.String(dump_only=True)
    name = fields.String(required=True, validate=[validate.Length(min=1, max=120), PlainText()])
    instrument_id = IdField(load_default="rapport-short")


class ClinicUpdateSchema(RequestSchema):
    name = fields.String(validate=[validate.Length(min=1, max=120), PlainText()])
    instrument_id = IdField()


class CounselorProfileSchema(RequestSchema):
    specialties = Codes(CONCERNS, validate=validate.Length(max=len(CONCERNS)))
    languages = fields.List(fields.String(validate=LANGUAGE), validate=validate.Length(max=20))
    modalities = Codes(MODALITIES)
    gender = fields.String(allow_none=True, validate=validate.OneOf(GENDERS))
    style_notes = fields.String(allow_none=True, validate=validate.Length(max=2000))
    weekly_capacity = fields.Integer(validate=validate.Range(min=0, max=100))
    accepting_new_clients = fields.Boolean()


class StaffSchema(RequestSchema):
    id = fields.String(dump_only=True)
    org_id = fields.String(dump_only=True)
    active = fields.Boolean(dump_only=True)
    email = fields.Email(required=True)
    display_name = fields.String(required=True, validate=[validate.Length(min=1, max=120), PlainText()])
    password = fields.String(required=True, load_only=True,
                             validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=1024))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    clinic_ids = fields.List(IdField(), required=True, validate=validate.Length(min=1))
    supervisor_id = IdField(load_default=None, allow_none=True)
    counselor = fields.Nested(CounselorProfileSchema, load_default=None, allow_none=True)


class StaffUpdateSchema(RequestSchema):
    display_name = fields.String(validate=[validate.Length(min=1, max=120), PlainText()])
    password = fields.String(load_only=True, validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=1024))
    role = fields.String(validate=validate.OneOf(ROLES))
    clinic_ids = fields.List(IdField(), validate=validate.Length(min=1))
    supervisor_id = IdField(allow_none=True)
    active = fields.Boolean()
    counselor = fields.Nested(CounselorProfileSchema)


class CounselorSchema(ResponseSchema):
    """A counselor as the directory shows it; `caseload` is derived from the clients assigned."""
    id = fields.String()
    display_name = fields.String()
    clinic_ids = fields.List(fields.String())
    supervisor_id = fields.String(allow_none=True)
    active = fields.Boolean()
    specialties = fields.List(fields.String())
    languages = fields.List(fields.String())
    modalities = fields.List(fields.String())
    gender = fields.String(allow_none=True)
    style_notes = fields.String(allow_none=True)
    weekly_capacity = fields.Integer()
    accepting_new_clients = fields.Boolean()
    caseload = fields.Integer()


class CounselorQuerySchema(RequestSchema):
    clinic_id = IdField()
    specialty = fields.String(validate=validate.OneOf(CONCERNS))
    language = fields.String(validate=LANGUAGE)
    modality = fields.String(validate=validate.OneOf(MODALITIES))
    accepting = fields.Boolean()


# --- clients ---

class PreferencesSchema(RequestSchema):
    language = fields.String(load_default=None, allow_none=True, validate=LANGUAGE)
    modality = fields.String(load_default="either", validate=validate.OneOf(MODALITIES + ("either",)))
    counselor_gender = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(GENDERS))
    days = Codes(DAYS, load_default=list)
    times = Codes(TIMES, load_default=list)


class AssignmentSchema(ResponseSchema):
    counselor_id = fields.String()
    previous_counselor_id = fields.String(allow_none=True)
    assigned_by = fields.String()
    assigned_at = fields.AwareDateTime()
    referral_id = fields.String(allow_none=True)


class ContactConsentSchema(RequestSchema):
    email = fields.Boolean(load_default=False, metadata={"description": "agrees to links and reminders by e-mail"})
    sms = fields.Boolean(load_default=False, metadata={"description": "agrees to them by text message"})


def _in_the_past(day: date) -> None:
    if day > date.today():
        raise ValidationError("A date of birth cannot be in the future.")


class ClientSchema(RequestSchema):
    id = fields.String(dump_only=True)
    intake_id = fields.String(dump_only=True)
    org_id = fields.String(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    created_by = fields.String(dump_only=True)
    assignments = fields.List(fields.Nested(AssignmentSchema), dump_only=True)
    clinic_id = IdField(required=True, error_messages={"required": "Choose the client's clinic."})
    first_name = fields.String(required=True, validate=[validate.Length(min=1, max=100), PlainText()],
                               error_messages={"required": "Enter the client's first name."})
    last_name = fields.String(required=True, validate=[validate.Length(min=1, max=100), PlainText()],
                              error_messages={"required": "Enter the client's last name."})
    date_of_birth = fields.Date(load_default=None, allow_none=True, validate=_in_the_past)
    email = fields.Email(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True,
                          validate=validate.Regexp(r"^\+?[0-9 ()-]{6,20}$", error="Not a valid phone number."))
    concerns = Codes(CONCERNS, required=True, validate=validate.Length(min=1, max=len(CONCERNS),
                                                                      error="Choose at least one concern."))
    preferences = fields.Nested(PreferencesSchema, load_default=dict)
    urgency = fields.String(load_default="routine", validate=validate.OneOf(URGENCIES))
    notes = fields.String(load_default=None, allow_none=True,
                          validate=[validate.Length(max=4000), PlainText(multiline=True)])
    counselor_id = IdField(load_default=None, allow_none=True)
    contact_consent = fields.Nested(ContactConsentSchema, load_default=dict, load_only=True,
                                    metadata={"description": "recorded with who and when; absent: none"})


class ClientQuerySchema(RequestSchema):
    clinic_id = IdField()
    counselor_id = IdField()
    since = fields.Date(metadata={"description": "registered on or after this day"})


class AssignmentRequestSchema(RequestSchema):
    counselor_id = IdField(required=True)


class SessionSchema(RequestSchema):
    id = fields.String(dump_only=True)
    client_id = fields.String(dump_only=True)
    recorded_by = fields.String(dump_only=True)
    created_at = fields.AwareDateTime(dump_only=True)
    held_on = fields.Date(required=True)
    counselor_id = IdField(load_default=None, allow_none=True)
    number = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=1000))


# --- feedback ---

class FeedbackRequestSchema(RequestSchema):
    id = fields.String(dump_only=True)
    client_id = fields.String(dump_only=True)
    counselor_id = fields.String(dump_only=True)
    session_number = fields.Integer(dump_only=True)
    instrument_id = fields.String(dump_only=True, allow_none=True)
    expires_at = fields.AwareDateTime(dump_only=True)
    answered_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    url = fields.String(dump_only=True, metadata={"description": "the signed link to send to the client"})
    session_id = IdField(required=True)
    kind = fields.String(load_default="feedback", validate=validate.OneOf(KINDS))
    valid_for_hours = fields.Integer(load_default=72, load_only=True, validate=validate.Range(min=1, max=24 * 30))
    reissue_reason = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(list(REISSUE_REASONS)),
                                   metadata={"description": "required when the client answered this session already"})
    reissue_note = fields.String(load_default=None, allow_none=True,
                                 validate=[validate.Length(max=REISSUE_NOTE_MAX), PlainText(multiline=True)])


class FeedbackSchema(RequestSchema):
    id = fields.String(dump_only=True)
    org_id = fields.String(dump_only=True)
    clinic_id = fields.String(dump_only=True)
    submitted_by = fields.String(dump_only=True, allow_none=True)
    created_at = fields.AwareDateTime(dump_only=True)
    client_id = IdField(required=True)
    counselor_id = IdField(load_default=None, allow_none=True)
    session_number = fields.Integer(required=True, validate=validate.Range(min=1, max=1000))
    instrument_id = IdField(load_default=None, allow_none=True)
    answers = fields.Dict(keys=IdField(), values=fields.Float(allow_nan=False), required=True,
                          validate=validate.Length(min=1, max=100))


class FeedbackQuerySchema(RequestSchema):
    client_id = IdField(required=True)


class ExitInterviewSchema(ResponseSchema):
    id = fields.String()
    client_id = fields.String()
    counselor_id = fields.String()
    session_number = fields.Integer()
    comfortable = fields.Integer()
    style_fit = fields.Integer()
    confident_progress = fields.Integer()
    outside_expertise = fields.Boolean()
    wants_someone_else = fields.Boolean()
    comment = fields.String(allow_none=True,
                            metadata={"description": "the client's own words; null for the front desk"})
    created_at = fields.AwareDateTime()


# --- names for other services' pages ---

class PeopleQuerySchema(RequestSchema):
    client = fields.List(IdField(), load_default=list, metadata={"description": "a client id; repeat for more"})
    staff = fields.List(IdField(), load_default=list, metadata={"description": "a staff id; repeat for more"})
    clinic = fields.List(IdField(), load_default=list, metadata={"description": "a clinic id; repeat for more"})


class PeopleSchema(ResponseSchema):
    clients = fields.Dict(keys=fields.String(), values=fields.String(),
                          metadata={"description": "client id -> display name, for the clients the caller may see"})
    staff = fields.Dict(keys=fields.String(), values=fields.String(),
                        metadata={"description": "staff id -> display name, within the caller's organisation"})
    clinics = fields.Dict(keys=fields.String(), values=fields.String(),
                          metadata={"description": "clinic id -> name, within the caller's organisation"})
