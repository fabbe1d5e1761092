"""`GET /api/audit` on every service: the organisation's audit trail for its admins, newest first."""
from __future__ import annotations

import re

from flask_smorest import Blueprint
from marshmallow import fields

from services.common.audit import AuditRecord
from services.common.schemas import QuerySetPage, RequestSchema, ResponseSchema
from services.common.web.identity import caller, guard

audit_blp = Blueprint("audit", __name__, url_prefix="/api/audit", description="Audit trail (admins)")


class AuditQuerySchema(RequestSchema):
    actor = fields.String()
    subject = fields.String(metadata={"description": "e.g. client_id:<id> (matches records naming it)"})
    action = fields.String()
    since = fields.AwareDateTime()


class AuditRecordSchema(ResponseSchema):
    seq = fields.Integer()
    at = fields.DateTime()
    service = fields.String()
    actor = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    org_id = fields.String(allow_none=True)
    clinic_id = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    action = fields.String()
    outcome = fields.String()
    request_id = fields.String(allow_none=True)
    hash = fields.String()


@audit_blp.get("")
@guard("admin")
@audit_blp.arguments(AuditQuerySchema, location="query")
@audit_blp.response(200, AuditRecordSchema(many=True))
@audit_blp.paginate(QuerySetPage)
def list_audit(query):
    identity = caller()
    records = AuditRecord.objects(org_id=identity.org_id)
    if "actor" in query:
        records = records.filter(actor=query["actor"])
    if "subject" in query:
        # A raw $regex: mongoengine's __contains adds the "u" flag, which FerretDB 1.24 rejects.
        records = records.filter(__raw__={"subject": {"$regex": re.escape(query["subject"])}})
    if "action" in query:
        records = records.filter(action=query["action"])
    if "since" in query:
        records = records.filter(at__gte=query["since"])
    return records.order_by("-seq")
