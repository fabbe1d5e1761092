"""Intake's HTTP API and pages: `gunicorn 'services.intake.entrypoints.app:create_app()'`."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from services.common.web.app import create_service_app

from services.intake.bootstrap import bootstrap
from services.intake.entrypoints.admin_pages import admin_pages
from services.intake.entrypoints.api import BLUEPRINTS
from services.intake.entrypoints.pages import pages


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app, _api = create_service_app(__name__, "intake", config, blueprints=BLUEPRINTS, pages=pages,
                                   bootstrap=bootstrap)
    app.register_blueprint(admin_pages)
    return app
