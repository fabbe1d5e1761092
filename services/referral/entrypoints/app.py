"""Referral's HTTP API and pages: `gunicorn 'services.referral.entrypoints.app:create_app()'`."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask

from services.common.web.app import create_service_app

from services.referral.bootstrap import bootstrap
from services.referral.entrypoints.api import BLUEPRINTS
from services.referral.entrypoints.pages import pages


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app, _api = create_service_app(__name__, "referral", config, blueprints=BLUEPRINTS, pages=pages,
                                   bootstrap=bootstrap)
    return app
