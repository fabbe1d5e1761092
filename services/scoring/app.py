"""Scoring's HTTP API: `gunicorn 'services.scoring.app:create_app()'`."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from services.common.web import create_service_app

from .api import scores


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app, api = create_service_app(__name__, "scoring", config)
    api.register_blueprint(scores)
    return app
