"""Who the caller is: the staff token (Bearer header or the browser's session cookie), verified and checked
against revoked sessions once per request; the route guard; the browser session cookie."""
from __future__ import annotations

from datetime import timedelta
from functools import wraps
from urllib.parse import urlencode

from flask import abort, current_app, g, redirect, request

from services.common import sessions
from services.common.auth import COOKIE_NAME, AuthError, Identity, issue_token, token_age, verify_token
from services.common.config import Settings


def settings() -> Settings:
    return current_app.extensions["rapport.settings"]


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
    """The caller's identity, or abort: 401 without a valid token, 403 if its role may not use the route.
    Routes use `guard` and `caller`; this is what both are made of."""
    identity = current_identity()
    if identity is None:
        abort(401)
    if roles and identity.role not in roles:
        abort(403)
    return identity


def guard(*roles: str):
    """The one place a route states who may use it: checks the caller's identity and role before anything
    else, input validation included (401 without a valid token, 403 for a role that may never use the
    route, never a 422 describing the input first). Goes above the blueprint's `arguments` decorator; the
    route reads the identity with `caller()`."""
    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            require_identity(*roles)
            return view(*args, **kwargs)
        return guarded
    return decorate


def caller() -> Identity:
    """The identity `guard` let through (or 401 where a route has no guard)."""
    return require_identity()


def require_page_identity(*roles: str) -> Identity | None:
    """For HTML pages: the identity, or None after which the caller returns `signin_redirect()`.
    A signed-in user whose role may not see the page gets 403."""
    identity = current_identity()
    if identity is not None and roles and identity.role not in roles:
        abort(403)
    return identity


def signin_redirect():
    return redirect(f"{settings().intake_url}/signin?{urlencode({'next': request.url})}")


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


def refresh_session_cookie(response):
    identity = g.get("rapport_identity")
    if identity is not None and g.get("rapport_token_from_cookie") and COOKIE_NAME not in _cookies_set(response):
        if token_age(settings(), g.rapport_token) > COOKIE_REFRESH_AFTER:
            set_session_cookie(response, identity)
    return response


def _cookies_set(response) -> set[str]:
    return {header.split("=", 1)[0] for header in response.headers.getlist("Set-Cookie")}


