"""What every service's Flask app shares: settings, OpenAPI, JSON errors, health and readiness, extensions."""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
from dataclasses import fields as dataclass_fields
from datetime import timedelta
from functools import wraps
from typing import Any, Callable, Mapping
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Flask, abort, current_app, g, jsonify, redirect, render_template_string, request
from flask_smorest import Api
from jinja2 import ChoiceLoader, PackageLoader
from pymongo.errors import ConnectionFailure
from werkzeug.exceptions import HTTPException

from . import audit, idempotency, mongo, ratelimit
from .auth import COOKIE_NAME, AuthError, Identity, issue_token, token_age, verify_token
from .config import Settings
from .events import ID_PATTERN, current_correlation_id, new_id
from .kafka import BrokerProbe, EventProducer
from .logs import configure_logging
from .metrics import HTTP_LATENCY, HTTP_REQUESTS
from .metrics import render as render_metrics
from . import sessions

log = logging.getLogger(__name__)
API_SEND_TIMEOUT_S = 2.0
ID_RE = re.compile(ID_PATTERN)
SETTINGS_KEYS = {f.name for f in dataclass_fields(Settings)} - {"service"}


def create_service_app(import_name: str, service: str, config: Mapping[str, Any] | None) -> tuple[Flask, Api]:
    """The part of every `create_app`: settings from env (overridden by `config`), OpenAPI, errors, health.

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
    api = Api(app)
    app.register_blueprint(health)
    app.register_blueprint(ui)
    # Service templates first, then the shared layout (services/common/templates/base.html).
    app.jinja_loader = ChoiceLoader([app.jinja_loader, PackageLoader("services.common", "templates")])
    app.context_processor(_layout_context)
    app.register_error_handler(Exception, _unexpected_error)
    app.after_request(_refresh_session_cookie)
    app.after_request(_protective_headers)
    app.before_request(_start_request)
    app.before_request(_refuse_cross_site_writes)
    app.after_request(_finish_request)
    app.teardown_request(_end_correlation)
    mongo_ext.init_app(app)
    kafka_ext.init_app(app)
    idempotency.init_app(app, caller=lambda: getattr(current_identity(), "staff_id", "anonymous"))
    audit.init_app(app, service, current_identity)
    ratelimit.init_app(app, settings.api_requests_per_minute,
                       caller=lambda: getattr(current_identity(), "staff_id", None))
    app.before_request(_require_json_body)
    from .audit_api import audit_blp  # it uses this module's require_identity
    api.register_blueprint(audit_blp)
    return app, api


def settings() -> Settings:
    return current_app.extensions["rapport.settings"]


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


def current_identity() -> Identity | None:
    """The caller's verified identity (Bearer token or session cookie), or None; parsed once per request."""
    if "rapport_identity" not in g:
        g.rapport_identity, g.rapport_token_from_cookie = None, False
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        if token is None and COOKIE_NAME in request.cookies:
            token, g.rapport_token_from_cookie = request.cookies[COOKIE_NAME], True
        if token:
            try:
                identity = verify_token(settings(), token)
            except AuthError:
                identity = None
            if identity is not None and not sessions.revoked(identity):
                g.rapport_identity, g.rapport_token = identity, token
    return g.rapport_identity


def require_identity(*roles: str) -> Identity:
    """The caller's identity, or abort: 401 without a valid token, 403 if its role may not use the route."""
    identity = current_identity()
    if identity is None:
        abort(401)
    if roles and identity.role not in roles:
        abort(403)
    return identity


def guard(*roles: str):
    """Check the caller's identity and role before anything else, input validation included: 401 without a
    valid token, 403 for a role that may never use the route (never a 422 describing the input first).
    Goes above the blueprint's `arguments` decorator."""
    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            require_identity(*roles)
            return view(*args, **kwargs)
        return guarded
    return decorate


def require_page_identity(*roles: str) -> Identity | None:
    """For HTML pages: the identity, or None after which the caller returns `signin_redirect()`.
    A signed-in user whose role may not see the page gets 403."""
    identity = current_identity()
    if identity is not None and roles and identity.role not in roles:
        abort(403)
    return identity


def signin_redirect():
    return redirect(f"{settings().intake_url}/signin?{urlencode({'next': request.url})}")


def _layout_context() -> dict:
    s = settings()
    return {"identity": current_identity(), "service_name": s.service,
            "urls": {"intake": s.intake_url, "scoring": s.scoring_url, "referral": s.referral_url,
                     "notify": s.notify_url}}


ui = Blueprint("rapport_ui", __name__, static_folder="static", static_url_path="/static/rapport")


def set_session_cookie(response, identity: Identity):
    """The browser's token for the identity's session: a new session at sign-in (the identity has none yet),
    the same session when re-issued on activity."""
    token = issue_token(settings(), identity)
    response.set_cookie(COOKIE_NAME, token, httponly=True, samesite="Lax", path="/",
                        secure=settings().environment != "development",
                        max_age=settings().session_idle_minutes * 60)
    return response


def clear_session_cookie(response):
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


# A browser session's token is re-issued at most this often while it is in use (sliding idle expiry).
COOKIE_REFRESH_AFTER = timedelta(minutes=1)


def _refresh_session_cookie(response):
    identity = g.get("rapport_identity")
    if identity is not None and g.get("rapport_token_from_cookie") and COOKIE_NAME not in _cookies_set(response):
        if token_age(settings(), g.rapport_token) > COOKIE_REFRESH_AFTER:
            set_session_cookie(response, identity)
    return response


# --- cross-site requests ----------------------------------------------------------------------------------

CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def csrf_token() -> str:
    """The form token of the caller's session (every state-changing form carries it): derived from the
    session id with the shared secret, so every service checks it without storing anything, and a new
    sign-in gets a new one."""
    identity = current_identity()
    return session_form_token(settings(), identity.session_id) if identity is not None else ""


def form_fields() -> dict[str, str]:
    """A posted form's fields, without the form token (checked before the view ran)."""
    return {k: v for k, v in request.form.to_dict().items() if k != CSRF_FIELD}


def session_form_token(s: Settings, session_id: str) -> str:
    return hmac.new(s.jwt_secret.encode(), f"csrf|{session_id}".encode(), hashlib.sha256).hexdigest()[:40]


def allowed_origins() -> set[str]:
    s = settings()
    urls = (s.intake_url, s.scoring_url, s.referral_url, s.notify_url, request.host_url)
    return {f"{parts.scheme}://{parts.netloc}" for parts in map(urlsplit, urls)}


def _refuse_cross_site_writes():
    """SameSite=Lax is not enough: a sibling site (another port here, another subdomain in production) is
    "same site". A state-changing request must come from one of Rapport's own origins when the browser says
    where it comes from, and a form sent with the session cookie must carry the session's form token."""
    if request.method not in UNSAFE_METHODS:
        return None
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source and source != "null":
        parts = urlsplit(source)
        if f"{parts.scheme}://{parts.netloc}" not in allowed_origins():
            return _forbidden("The request came from another site.")
    elif source == "null":
        return _forbidden("The request came from an opaque origin.")
    identity = current_identity()
    if identity is not None and g.get("rapport_token_from_cookie") and not request.path.startswith("/api/"):
        sent = request.form.get(CSRF_FIELD, "")
        if not hmac.compare_digest(sent, session_form_token(settings(), identity.session_id)):
            return _forbidden("The form has expired: open the page again and resend it.")
    return None


def _forbidden(message: str):
    if request.path.startswith("/api/"):
        return jsonify(code=403, status="Forbidden", message=message), 403
    return render_template_string(FORBIDDEN_PAGE, message=message), 403


FORBIDDEN_PAGE = """{% extends "base.html" %}{% block title %}Not sent{% endblock %}
{% block content %}<h1>Not sent</h1><p role="alert">{{ message }}</p>{% endblock %}"""


# --- headers ----------------------------------------------------------------------------------------------

def _protective_headers(response):
    """Every answer: no framing, no sniffing, no referrer to other sites, and nothing stored by a browser or
    a proxy (a page or an answer may hold a client's data, and the back button after sign-out must not show
    it). HTML pages get a Content-Security-Policy that allows no inline script; the SVG chart none at all."""
    if request.path.startswith("/static/"):
        return response
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = _page_policy()
    else:
        response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    return response


def _page_policy() -> str:
    # Pages embed the scoring service's chart and post the sign-out form to intake: their origins are the
    # platform's own, listed by name (one origin behind the proxy in production, one port each locally).
    own = " ".join(sorted(allowed_origins()))
    return (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: {own}; "
            f"form-action 'self' {own}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


def _cookies_set(response) -> set[str]:
    return {header.split("=", 1)[0] for header in response.headers.getlist("Set-Cookie")}


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


class MongoExtension:
    def init_app(self, app: Flask) -> None:
        mongo.connect(app.extensions["rapport.settings"])


class KafkaClients:
    """One app's producer and broker probe, created on first use in each process: neither may cross
    gunicorn's fork, and a producer opened before it would be shared by every worker."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: EventProducer | None = None
        self._probe: BrokerProbe | None = None
        self._pid: int | None = None

    def _this_process(self) -> None:
        if self._pid != os.getpid():
            self._producer, self._probe, self._pid = None, None, os.getpid()

    def producer(self) -> EventProducer:
        self._this_process()
        if self._producer is None:
            # A short timeout: when the broker is away the request still succeeds (the outbox relay
            # publishes later), so waiting long would only make every request slow.
            self._producer = EventProducer(self._settings, timeout_s=API_SEND_TIMEOUT_S)
        return self._producer

    def probe(self) -> BrokerProbe:
        self._this_process()
        if self._probe is None:
            self._probe = BrokerProbe(self._settings)
        return self._probe

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
        if self._probe is not None:
            self._probe.close()
        self._producer = self._probe = None


class KafkaExtension:
    def init_app(self, app: Flask) -> None:
        app.extensions["rapport.kafka"] = KafkaClients(app.extensions["rapport.settings"])

    @staticmethod
    def _clients() -> KafkaClients:
        return current_app.extensions["rapport.kafka"]

    def send(self, topic: str, key: str, value: bytes) -> None:
        self._clients().producer().send(topic, key, value)

    def check_broker(self) -> None:
        self._clients().probe().check()


mongo_ext = MongoExtension()
kafka_ext = KafkaExtension()

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    """Alive: the process answers. Says nothing about its dependencies (that is /readyz)."""
    return jsonify(status="ok")


@health.get("/metrics")
def metrics():
    body, content_type = render_metrics()
    return body, 200, {"Content-Type": content_type}


@health.get("/readyz")
def readyz():
    """Ready: the database and the Kafka broker are reachable; 503 with the failing checks otherwise."""
    checks = {"database": _check(mongo.ping), "kafka": _check(kafka_ext.check_broker)}
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), 200 if ready else 503


def _check(probe: Callable[[], None]) -> str:
    try:
        probe()
        return "ok"
    except Exception as exc:  # readiness reports any failure as a state, never as a 500
        return f"failed: {type(exc).__name__}"
