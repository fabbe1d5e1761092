"""The app factory every service's `create_app` starts from: settings, OpenAPI, JSON errors, request ids,
the shared layout, and the hooks of identity, defences, audit, idempotency and rate limits."""
from __future__ import annotations

import logging
import re
import time
from dataclasses import fields as dataclass_fields
from typing import Any, Callable, Mapping, Sequence

from flask import Blueprint, Flask, current_app, g, jsonify, render_template, request
from flask_smorest import Api
from jinja2 import ChoiceLoader, PackageLoader
from pymongo.errors import ConnectionFailure
from werkzeug.exceptions import HTTPException

from services.common import audit, idempotency, ratelimit
from services.common.audit_api import audit_blp
from services.common.bus import MessageBus
from services.common.config import Settings
from services.common.events import ID_PATTERN, current_correlation_id, new_id
from services.common.logs import configure_logging
from services.common.metrics import HTTP_LATENCY, HTTP_REQUESTS
from services.common.vocabulary import words
from services.common.web.defences import csrf_token, protective_headers, refuse_cross_site_writes
from services.common.web.health import health, kafka_ext, mongo_ext
from services.common.web.identity import current_identity, refresh_session_cookie, settings

log = logging.getLogger(__name__)
ID_RE = re.compile(ID_PATTERN)
SETTINGS_KEYS = {f.name for f in dataclass_fields(Settings)} - {"service"}


def create_service_app(import_name: str, service: str, config: Mapping[str, Any] | None, *,
                       blueprints: Sequence[Blueprint] = (), pages: Blueprint | None = None,
                       bootstrap: Callable[..., MessageBus] | None = None) -> tuple[Flask, Api]:
    """Every service's `create_app`: settings from env (overridden by `config`), OpenAPI, errors, health,
    the service's API `blueprints` and `pages`, and its command bus (`bootstrap` given the publisher).

    Keys of `config` that name a Settings field (lower-case) override it; the rest go to `app.config`.
    """
    config = dict(config or {})
    settings = Settings.load(service, {k: v for k, v in config.items() if k in SETTINGS_KEYS})
    configure_logging(service, settings.log_level)
    app = Flask(import_name)
    app.config.update(
        API_TITLE=f"Rapport {service}", API_VERSION="1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False,
    )
    app.config.update({k: v for k, v in config.items() if k not in SETTINGS_KEYS})
    app.extensions["rapport.settings"] = settings
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.add_template_filter(words)  # codes in words on every page: services/common/vocabulary.py
    api = Api(app)
    app.register_error_handler(HTTPException, _error_page_or_json(api))
    app.register_blueprint(health)
    app.register_blueprint(ui)
    # Service templates first, then the shared layout (services/common/templates/base.html).
    app.jinja_loader = ChoiceLoader([app.jinja_loader, PackageLoader("services.common", "templates")])
    app.context_processor(_layout_context)
    app.register_error_handler(Exception, _unexpected_error)
    app.after_request(refresh_session_cookie)
    app.after_request(protective_headers)
    app.before_request(_start_request)
    app.before_request(refuse_cross_site_writes)
    app.after_request(_finish_request)
    app.teardown_request(_end_correlation)
    mongo_ext.init_app(app)
    kafka_ext.init_app(app)
    idempotency.init_app(app, caller=lambda: getattr(current_identity(), "staff_id", "anonymous"))
    audit.init_app(app, service, current_identity)
    ratelimit.init_app(app, settings.api_requests_per_minute,
                       caller=lambda: getattr(current_identity(), "staff_id", None))
    app.before_request(_require_json_body)
    api.register_blueprint(audit_blp)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    api.spec.options["security"] = [{"bearer": []}]
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    if pages is not None:
        app.register_blueprint(pages)
    if bootstrap is not None:
        app.extensions["rapport.bus"] = bootstrap(publish=kafka_ext.send, settings=settings)
    return app, api


def command_bus() -> MessageBus:
    """The app's command bus: where routes and pages send every write."""
    return current_app.extensions["rapport.bus"]


def _start_request() -> None:
    # A caller's X-Request-ID is kept if it is a plain token; it becomes the correlation id of every
    # event this request produces, and so of everything downstream, up to the notification.
    supplied = request.headers.get("X-Request-ID", "")
    g.request_id = supplied if ID_RE.match(supplied) else new_id()
    g.correlation_token = current_correlation_id.set(g.request_id)
    g.request_started = time.perf_counter()


# Deeper JSON than this is refused before it is parsed: Python's parser recurses once per level.
MAX_JSON_DEPTH = 32


def _require_json_body():
    """An API body must be JSON: a form post or plain text to /api/ is a 415, not a confusing 422; and JSON
    nested deeper than any request of ours needs is a 400, not a parser's stack overflow."""
    if (request.path.startswith("/api/") and request.method in ("POST", "PUT", "PATCH")
            and request.content_length and not request.is_json):
        return jsonify(code=415, status="Unsupported Media Type",
                       errors={"headers": {"Content-Type": ["Send application/json."]}}), 415
    if request.is_json and json_depth(request.get_data(cache=True)) > MAX_JSON_DEPTH:
        return jsonify(code=400, status="Bad Request",
                       errors={"json": [f"Nested more than {MAX_JSON_DEPTH} levels deep."]}), 400
    return None


def json_depth(raw: bytes) -> int:
    """How deeply a JSON text nests its arrays and objects, counted without parsing it (brackets inside
    strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _finish_request(response):
    response.headers["X-Request-ID"] = g.get("request_id", "")
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    service = settings().service
    HTTP_REQUESTS.labels(service, route, request.method, str(response.status_code)).inc()
    if "request_started" in g:
        HTTP_LATENCY.labels(service, route, request.method).observe(time.perf_counter() - g.request_started)
    return response


def _end_correlation(_error=None) -> None:
    token = g.pop("correlation_token", None)
    if token is not None:
        current_correlation_id.reset(token)


def _layout_context() -> dict:
    s = settings()
    return {"identity": current_identity(), "service_name": s.service,
            "urls": {"intake": s.intake_url, "scoring": s.scoring_url, "referral": s.referral_url,
                     "notify": s.notify_url}}


# The shared stylesheet lives beside the shared templates, in services/common.
ui = Blueprint("rapport_ui", __name__, static_folder="../static", static_url_path="/static/rapport")


def _error_page_or_json(api: Api):
    """A browser asking for a page that is missing or not for it gets a page with the layout and a way on;
    the API (and any caller not preferring HTML) keeps flask-smorest's JSON errors."""
    def handle(error: HTTPException):
        accept = request.accept_mimetypes
        if (not request.path.startswith("/api/") and error.code and error.code >= 400
                and accept.quality("text/html") > accept.quality("application/json")):
            return render_template("error.html", error=error), error.code
        return api.handle_http_exception(error)
    return handle


def _unexpected_error(error: Exception):
    if isinstance(error, HTTPException):  # flask-smorest renders these as JSON already
        return error
    if isinstance(error, ConnectionFailure):
        # Nothing was accepted: the client may retry once the database is back.
        log.warning("database unavailable: %s", type(error).__name__)
        return jsonify(code=503, status="Service Unavailable"), 503, {"Retry-After": "5"}
    if isinstance(error, RecursionError):
        # Input nested beyond what any parser here can walk: the caller's to fix, not a server error.
        return jsonify(code=400, status="Bad Request", errors={"json": ["Nested too deeply."]}), 400
    log.exception("unhandled error")
    body = {"code": 500, "status": "Internal Server Error"}
    return jsonify(body), 500


