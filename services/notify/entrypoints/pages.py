"""Notify's HTML pages: the inbox, one notification with the alliance chart, the supervision view."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.exceptions import Forbidden, NotFound

from services.common import audit
from services.common.repair import ACTION_LABELS
from services.common.web.app import command_bus
from services.common.web.identity import require_page_identity, settings, signin_redirect

from services.notify import domain, queries
from services.notify.commands import Acknowledge, AcknowledgeMany, ReplacePreferences
from services.notify.entrypoints.schemas import PreferencesSchema

pages = Blueprint("pages", __name__, template_folder="templates")


# An error handler cannot abort() (what it raises is not handled again: a 500); it hands the HTTP error to
# the app's own handler, which answers a browser with the error page.
@pages.errorhandler(domain.NoSuchNotification)
@pages.errorhandler(domain.NoSuchClinic)
def _not_found(_error):
    return current_app.handle_http_exception(NotFound())


@pages.errorhandler(domain.NotYours)
def _not_yours(_error):
    return current_app.handle_http_exception(Forbidden())


INBOX_LENGTH = 100


@pages.get("/inbox")
def inbox_page():
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    return _inbox(identity)


@pages.post("/inbox/acknowledge")
def acknowledge_many_page():
    """The inbox's bulk acknowledgement: the ticked notifications, with one answer to what was done."""
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    chosen = request.form.getlist("notification_id")
    if not chosen:
        return _inbox(identity, error="Tick the notifications to acknowledge."), 422
    if len(chosen) > INBOX_LENGTH:
        return _inbox(identity, error=f"Acknowledge at most {INBOX_LENGTH} at once."), 422
    command_bus().handle(AcknowledgeMany(identity, tuple(chosen), _chosen_action()))
    return redirect(url_for("pages.inbox_page"), 303)


def _inbox(identity, error: str | None = None):
    items = list(queries.inbox_of(identity).limit(INBOX_LENGTH))
    audit.reads(*(n.client_id for n in items))
    return render_template("inbox.html", groups=domain.group_by_client(items), error=error,
                           unread=queries.unread_count(identity), actions=ACTION_LABELS)


@pages.get("/inbox/<notification_id>")
def notification_page(notification_id):
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    n = queries.visible_notification(identity, notification_id)
    audit.reads(n.client_id)
    chart = None
    if n.counselor_id and n.kind in queries.ALERT_KINDS:
        # Scoring draws the chart; the page only embeds it (services never call each other). Only alerts
        # have one: a new client or a referral's move has no sessions with the counselor named yet.
        chart = f"{settings().scoring_url}/charts/trajectory.svg?" + urlencode(
            {"client_id": n.client_id, "counselor_id": n.counselor_id})
    return render_template("notification.html", n=n, chart=chart, actions=ACTION_LABELS, scores=n.scores,
                           what_happened=domain.ALERT_KIND_WORDS.get(n.alert_kind),
                           may_acknowledge=n.recipient_id == identity.staff_id)


@pages.post("/inbox/<notification_id>/ack")
def acknowledge_page(notification_id):
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    command_bus().handle(Acknowledge(identity, notification_id, _chosen_action()))
    return redirect(url_for("pages.notification_page", notification_id=notification_id), 303)


def _chosen_action() -> str | None:
    """What the form says was done; a value the form does not offer counts as "something else"."""
    action = request.form.get("action") or None
    return "other" if action is not None and action not in ACTION_LABELS else action


@pages.get("/supervision")
def supervision_page():
    identity = require_page_identity(*queries.OVERSEERS)
    if identity is None:
        return signin_redirect()
    return render_template("supervision.html", **queries.supervision(identity))


@pages.get("/preferences")
def preferences_page():
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    return _preferences_form(queries.preferences_view(queries.stored_preferences(identity)), {})


@pages.post("/preferences")
def save_preferences_page():
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    form = request.form
    submitted = {
        "email": form.get("email") or None, "webhook_url": form.get("webhook_url") or None,
        "rotate_webhook_secret": "rotate_webhook_secret" in form,
        "channels": {kind: form.getlist(f"channels.{kind}") for kind in domain.KINDS},
        "quiet_hours": ({"start": form["quiet_start"], "end": form["quiet_end"]}
                        if form.get("quiet_start") or form.get("quiet_end") else None),
        "timezone": form.get("timezone") or "UTC", "daily_digest": "daily_digest" in form}
    try:
        saved = command_bus().handle(ReplacePreferences(identity, **PreferencesSchema().load(submitted)))
    except ValidationError as exc:
        return _preferences_form(submitted, exc.messages), 422
    return _preferences_form(queries.preferences_view(*saved), {}, saved=True)


def _preferences_form(values: dict, errors: dict, saved: bool = False):
    # No flash(): services keep no Flask session (identity travels in the token cookie only).
    return render_template("preferences.html", values=values, errors=errors, kinds=domain.KINDS,
                           channels=domain.EXTERNAL_CHANNELS, saved=saved)
