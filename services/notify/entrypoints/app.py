"""Notify's HTTP API and pages: `gunicorn 'services.notify.entrypoints.app:create_app()'`."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from services.common.web.app import create_service_app

from services.notify.entrypoints.api import inbox, preferences, supervision
from services.notify.entrypoints.pages import pages


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app, api = create_service_app(__name__, "notify", config)
    for blueprint in (inbox, preferences, supervision):
        api.register_blueprint(blueprint)
    app.register_blueprint(pages)
    return app
