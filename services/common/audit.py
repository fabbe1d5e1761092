"""The audit trail: who did what to which record, append-only and hash-chained, in each service's database.

Every request to a service that carries an identity, or is refused one, is recorded by an after-request hook
(actor, role, organisation, clinic, subject ids from the URL, action = method + route template, outcome,
request id); services add explicit records for sign-in/out and exports with `record()`. Each record carries
the hash of the previous one and its own position `seq`; `verify()` recomputes the chain and names the first
record that was edited, or the first gap where records were deleted. Concurrent writers (gunicorn processes)
append with optimistic concurrency: the position is the primary key, so two writers cannot take the same one.
Trade-off: truncating the newest records is only detectable against an external copy of the last hash
(`rapport audit verify` prints it, for an operator to keep).
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import mongoengine as me
from flask import Flask, g, request
from pymongo.errors import DuplicateKeyError

from .mongo import utcnow

GENESIS = "0" * 64
APPEND_ATTEMPTS = 60
# Writers that lost a position wait a random moment, growing with each loss, so that they do not collide
# again in step: without it a burst of concurrent requests exhausts the attempts and answers 500.
APPEND_BACKOFF_S = 0.002


def position_key(seq: int) -> str:
    return f"{seq:015d}"


class AuditRecord(me.Document):
    # Keyed by its position as a zero-padded string, not the integer: FerretDB looks a string _id up
    # directly but answers an integer one with a scan of the whole trail, and every append looks up the
    # position after the head. The integer `seq` stays beside it for ordering and for the hash.
    id = me.StringField(primary_key=True)
    seq = me.IntField(required=True)
    at = me.DateTimeField(required=True)
    service = me.StringField(required=True)
    actor = me.StringField()
    role = me.StringField()
    org_id = me.StringField()
    clinic_id = me.StringField()
    subject = me.StringField()
    action = me.StringField(required=True)
    outcome = me.StringField(required=True)
    request_id = me.StringField()
    prev_hash = me.StringField(required=True)
    hash = me.StringField(required=True)
    meta = {"collection": "audit_log", "indexes": ["seq", ("org_id", "at"), "actor", "subject"]}

    def content(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": _iso(self.at), "service": self.service, "actor": self.actor,
                "role": self.role, "org_id": self.org_id, "clinic_id": self.clinic_id, "subject": self.subject,
                "action": self.action, "outcome": self.outcome, "request_id": self.request_id}


class AuditHead(me.Document):
    """Where the chain ends, as one document read by id: finding the tail by sorting the trail costs a scan
    of every record on FerretDB, on every request. Moved forward after each append."""

    id = me.StringField(primary_key=True)  # HEAD_ID
    seq = me.IntField(required=True)
    hash = me.StringField(required=True)
    meta = {"collection": "audit_head"}


HEAD_ID = "head"


def _tail() -> tuple[int, str]:
    """(seq, hash) of the last record. A writer that died between appending and moving the head left the
    head behind: the records after it are found by position, one lookup each."""
    head = AuditHead.objects(id=HEAD_ID).first()
    if head is None:  # a trail from before the head existed, or an empty one
        last = AuditRecord.objects.order_by("-seq").only("seq", "hash").first()
        seq, hash_ = (last.seq, last.hash) if last else (0, GENESIS)
    else:
        seq, hash_ = head.seq, head.hash
    while (following := AuditRecord.objects(id=position_key(seq + 1)).only("seq", "hash").first()) is not None:
        seq, hash_ = following.seq, following.hash
    return seq, hash_


def _move_head(seq: int, hash_: str) -> None:
    try:
        AuditHead._get_collection().update_one({"_id": HEAD_ID, "seq": {"$lt": seq}},
                                               {"$set": {"seq": seq, "hash": hash_}}, upsert=True)
    except DuplicateKeyError:
        pass  # the head is at or past this record already


def _iso(moment: datetime) -> str:
    # Milliseconds: what BSON keeps, so the hash is the same before and after the round trip.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _digest(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + json.dumps(content, sort_keys=True)).encode()).hexdigest()


def record(service: str, action: str, outcome: str, *, actor: str | None = None, role: str | None = None,
           org_id: str | None = None, clinic_id: str | None = None, subject: str | None = None,
           request_id: str | None = None) -> AuditRecord:
    for attempt in range(APPEND_ATTEMPTS):
        last_seq, last_hash = _tail()
        entry = AuditRecord(id=position_key(last_seq + 1), seq=last_seq + 1, at=utcnow(), service=service,
                            actor=actor, role=role, org_id=org_id, clinic_id=clinic_id, subject=subject,
                            action=action, outcome=outcome, request_id=request_id, prev_hash=last_hash)
        entry.at = entry.at.replace(microsecond=entry.at.microsecond // 1000 * 1000)
        entry.hash = _digest(entry.prev_hash, entry.content())
        try:
            entry.save(force_insert=True)
            _move_head(entry.seq, entry.hash)
            return entry
        except (me.NotUniqueError, DuplicateKeyError):
            # Another writer took this position: read the new tail and try again.
            time.sleep(random.uniform(0, APPEND_BACKOFF_S * (attempt + 1)))
    raise RuntimeError("could not append to the audit log")


@dataclass(frozen=True)
class ChainReport:
    records: int
    last_hash: str
    problem: str | None  # None when the chain is intact

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify() -> ChainReport:
    """Walk the chain in order; report the first edited record or missing position."""
    expected_seq, prev_hash, count = 1, GENESIS, 0
    for entry in AuditRecord.objects.order_by("seq"):
        if entry.seq != expected_seq:
            return ChainReport(count, prev_hash, f"records {expected_seq}..{entry.seq - 1} are missing")
        if entry.id != position_key(entry.seq):
            return ChainReport(count, prev_hash, f"record {entry.seq} was moved")
        if entry.prev_hash != prev_hash or _digest(prev_hash, entry.content()) != entry.hash:
            return ChainReport(count, prev_hash, f"record {entry.seq} was altered")
        prev_hash, expected_seq, count = entry.hash, expected_seq + 1, count + 1
    return ChainReport(count, prev_hash, None)


# A read answering with more clients than this names the first ones and says how many it left out.
MAX_SUBJECTS = 500
# Routes whose answers are clients themselves: their objects' own "id" is a client id.
CLIENT_RESOURCES = frozenset({"/api/clients", "/api/clients/<client_id>"})


def reads(*client_ids: str) -> None:
    """A page that shows clients' data names them, so that "who looked at this client" finds the page."""
    g.setdefault("audit_read", set()).update(f"client_id:{c}" for c in client_ids if c)


def _subjects(response, status: int) -> set[str]:
    """What a request was about: ids in the URL path and query (a signed link token is a credential, never
    recorded), the clients a page said it showed, and the clients a JSON answer names."""
    found = {f"{k}:{v}" for k, v in (request.view_args or {}).items() if "token" not in k}
    found |= {f"{k}:{v}" for k, v in request.args.items() if k.endswith("_id") and v}
    found |= g.get("audit_read", set())
    if status < 300 and response.is_json and request.method == "GET":
        answer = response.get_json(silent=True)
        found |= {f"client_id:{c}" for c in _client_ids(answer)}
        if request.url_rule.rule in CLIENT_RESOURCES:
            clients = answer if isinstance(answer, list) else [answer]
            found |= {f"client_id:{c['id']}" for c in clients if isinstance(c, dict) and isinstance(c.get("id"), str)}
    if len(found) > MAX_SUBJECTS:
        kept = sorted(found)[:MAX_SUBJECTS]
        return {*kept, f"more:{len(found) - MAX_SUBJECTS}"}
    return found


def _client_ids(data: Any, depth: int = 0) -> set[str]:
    if depth > 4:
        return set()
    if isinstance(data, list):
        return set().union(*(_client_ids(item, depth + 1) for item in data)) if data else set()
    if isinstance(data, dict):
        own = {data["client_id"]} if isinstance(data.get("client_id"), str) else set()
        return own.union(*(_client_ids(v, depth + 1) for v in data.values() if isinstance(v, (dict, list))))
    return set()


def init_app(app: Flask, service: str, identity_of: callable) -> None:
    """Record every request that carries an identity or was refused for the lack of one."""

    @app.after_request
    def audit_request(response):
        identity = identity_of()
        status = response.status_code
        if request.url_rule is None or request.path.startswith("/static/"):
            return response
        if identity is None and status not in (401, 403):
            return response  # health checks, sign-in pages, client links: nobody to attribute them to
        outcome = "ok" if status < 400 else {401: "unauthenticated", 403: "denied", 404: "not_found"}.get(
            status, "error")
        subject = ",".join(sorted(_subjects(response, status))) or None
        record(service, f"{request.method} {request.url_rule.rule}", outcome,
               actor=getattr(identity, "staff_id", None), role=getattr(identity, "role", None),
               org_id=getattr(identity, "org_id", None), clinic_id=g.get("audit_clinic_id"),
               subject=subject, request_id=g.get("request_id"))
        return response
