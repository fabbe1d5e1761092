"""The bare Flask route the intake benchmark compares against: the same POST, served by the same gunicorn
settings, that parses the JSON body and answers 201 with no database, no broker, no auth and no validation.

    gunicorn -c deploy/gunicorn.conf.py 'deploy.bench.bare_app:create_app()'
"""
from __future__ import annotations

import uuid

from flask import Flask, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/clients")
    def register_client():
        body = request.get_json()
        return {"id": uuid.uuid4().hex, "clinic_id": body["clinic_id"]}, 201

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
