"""Scoring's HTTP API and pages: `gunicorn 'services.scoring.entrypoints.app:create_app()'`."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from services.common.web.app import create_service_app

from services.scoring.entrypoints.api import alerts, clinics, fhir, instruments, scores, trajectories
from services.scoring.entrypoints.pages import pages


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app, api = create_service_app(__name__, "scoring", config)
    for blueprint in (scores, trajectories, alerts, clinics, fhir, instruments):
        api.register_blueprint(blueprint)
    app.register_blueprint(pages)
    return app
