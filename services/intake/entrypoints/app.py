"""Intake's HTTP API and pages: `gunicorn 'services.intake.entrypoints.app:create_app()'`."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from services.common.web.app import create_service_app

from services.intake.entrypoints.api import BLUEPRINTS
from services.intake.entrypoints.pages import pages


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app, api = create_service_app(__name__, "intake", config)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    app.register_blueprint(pages)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    api.spec.options["security"] = [{"bearer": []}]
    return app
