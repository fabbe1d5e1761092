"""`Idempotency-Key` for every state-changing request: a client that retries (after a timeout, say) gets the
first answer again instead of creating a second intake or a second feedback.

The first request with a key records "in progress", runs, and stores its response; a repeat with the same key
and the same body gets that stored response (`Idempotent-Replayed: true`), a repeat while the first is still
running gets 409, and the same key with a different body gets 422. A server error (5xx) forgets the key so the
client can retry. Keys are scoped to the caller and the route, and honoured for 24 hours.
"""
from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import mongoengine as me
from flask import Flask, Response, g, jsonify, request
from pymongo.errors import DuplicateKeyError

from .mongo import utcnow

HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
RETENTION = timedelta(hours=24)
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


class IdempotencyRecord(me.Document):
    id = me.StringField(primary_key=True)  # hash of (caller, method, path, key)
    request_hash = me.StringField(required=True)
    created_at = me.DateTimeField(default=utcnow)
    completed = me.BooleanField(default=False)
    status = me.IntField()
    body = me.BinaryField()
    content_type = me.StringField()
    meta = {"collection": "idempotency_keys"}


def init_app(app: Flask, caller: callable) -> None:
    """`caller()` names who is asking (staff id, or "anonymous"), so two users' keys never collide."""

    @app.before_request
    def replay_or_reserve():
        key = request.headers.get(HEADER)
        if key is None or request.method not in STATE_CHANGING:
            return None
        if not KEY_RE.match(key):
            return jsonify(code=400, status="Bad Request",
                           errors={"headers": {HEADER: ["Use 1-128 letters, digits, '_', '-', '.', ':'."]}}), 400
        record_id = hashlib.sha256(f"{caller()}|{request.method}|{request.path}|{key}".encode()).hexdigest()
        body_hash = hashlib.sha256(request.get_data()).hexdigest()
        existing = IdempotencyRecord.objects(id=record_id).first()
        if existing is not None and existing.created_at >= utcnow() - RETENTION:
            if existing.request_hash != body_hash:
                return jsonify(code=422, status="Unprocessable Entity",
                               errors={"headers": {HEADER: ["Already used for a different request."]}}), 422
            if not existing.completed:
                return jsonify(code=409, status="Conflict",
                               errors={"headers": {HEADER: ["The first request is still in progress."]}}), 409
            replay = Response(existing.body, status=existing.status, content_type=existing.content_type)
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
        if existing is not None:
            existing.delete()  # expired: the key may be used afresh
        try:
            IdempotencyRecord(id=record_id, request_hash=body_hash).save(force_insert=True)
        except (me.NotUniqueError, DuplicateKeyError):
            return jsonify(code=409, status="Conflict",
                           errors={"headers": {HEADER: ["The first request is still in progress."]}}), 409
        g.idempotency_record = record_id
        return None

    @app.after_request
    def remember(response: Response) -> Response:
        record_id = g.pop("idempotency_record", None)
        if record_id is None:
            return response
        if response.status_code >= 500:
            IdempotencyRecord.objects(id=record_id).delete()
        else:
            IdempotencyRecord.objects(id=record_id).update_one(
                set__completed=True, set__status=response.status_code, set__body=response.get_data(),
                set__content_type=response.content_type)
        return response

    @app.teardown_request
    def forget_on_crash(error=None) -> None:
        record_id = g.pop("idempotency_record", None)
        if record_id is not None and error is not None:
            IdempotencyRecord.objects(id=record_id).delete()
