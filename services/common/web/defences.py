"""Browser defences every service applies: a per-session form token and an Origin check on state-changing
requests (SameSite=Lax lets a sibling site through), and the protective headers on every answer."""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from flask import g, jsonify, render_template_string, request

from services.common.config import Settings
from services.common.web.identity import current_identity, settings


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


def refuse_cross_site_writes():
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

def protective_headers(response):
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


