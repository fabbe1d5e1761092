"""Referral's HTTP API and supervisor page: `gunicorn 'services.referral.entrypoints.app:create_app()'`."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from services.common.web.app import create_service_app

from services.referral.entrypoints.api import counselors, intakes, referrals
from services.referral.entrypoints.pages import pages


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app, api = create_service_app(__name__, "referral", config)
    api.register_blueprint(intakes)
    api.register_blueprint(referrals)
    api.register_blueprint(counselors)
    app.register_blueprint(pages)
    return app
