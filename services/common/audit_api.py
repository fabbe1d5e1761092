"""`GET /api/audit` on every service: the organisation's audit trail for its admins, newest first; and
`POST /api/audit/exports`, where the audit page says that it exported this service's records."""
from __future__ import annotations

import re
from datetime import datetime

from flask import g
from flask_smorest import Blueprint
from marshmallow import fields, validate

from services.common.audit import AuditRecord, record
from services.common.schemas import QuerySetPage, RequestSchema, ResponseSchema
from services.common.web.identity import caller, guard, settings

audit_blp = Blueprint("audit", __name__, url_prefix="/api/audit", description="Audit trail (admins)")


class AuditQuerySchema(RequestSchema):
    actor = fields.String()
    subject = fields.String(metadata={"description": "e.g. client_id:<id> (matches records naming it)"})
    action = fields.String()
    since = fields.AwareDateTime(metadata={"description": "records at or after this moment"})
    until = fields.AwareDateTime(metadata={"description": "records before this moment"})


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
    if "until" in query:
        records = records.filter(at__lt=query["until"])
    return records.order_by("-seq")


class AuditExportSchema(RequestSchema):
    """What an export of this service's records held: the filters it was made with and how many rows."""
    rows = fields.Integer(required=True, validate=validate.Range(min=0))
    actor = fields.String(validate=validate.Length(max=64))
    subject = fields.String(validate=validate.Length(max=128))
    since = fields.AwareDateTime()
    until = fields.AwareDateTime()


@audit_blp.post("/exports")
@guard("admin")
@audit_blp.arguments(AuditExportSchema)
@audit_blp.response(204)
def record_export(data):
    """Record that the caller exported this service's audit records (the audit page does, before it hands
    over the CSV). The trail of all four services is merged in the browser, since no service may read
    another's, so each service records the export of its own records: the request is in the trail like any
    other, and this record says what left (the filters and how many rows). Trade-off against exporting on a
    server: that would need one service to read the others. An export assembled from the API by hand
    records no such line, but every GET /api/audit it took is itself in the trail."""
    identity = caller()
    filters = [f"{name}:{value.isoformat() if isinstance(value, datetime) else value}"
               for name in ("actor", "subject", "since", "until") if (value := data.get(name)) is not None]
    record(settings().service, "export audit csv", "ok", actor=identity.staff_id, role=identity.role,
           org_id=identity.org_id, subject=",".join([f"rows:{data['rows']}", *filters]),
           request_id=g.get("request_id"))
