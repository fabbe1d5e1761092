"""Notify's HTML pages: the inbox, one notification with the alliance chart, the supervision view."""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, url_for

from services.common.mongo import utcnow
from services.common.web import require_page_identity, settings, signin_redirect

from . import queries
from .notifications import acknowledge

pages = Blueprint("pages", __name__, template_folder="templates")


@pages.get("/inbox")
def inbox_page():
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    items = list(queries.inbox_of(identity).limit(100))
    return render_template("inbox.html", items=items, unread=queries.unread_count(identity))


@pages.get("/inbox/<notification_id>")
def notification_page(notification_id):
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    n = queries.visible_notification(identity, notification_id)
    chart = None
    if n.counselor_id:
        # Scoring draws the chart; the page only embeds it (services never call each other).
        chart = f"{settings().scoring_url}/charts/trajectory.svg?" + urlencode(
            {"client_id": n.client_id, "counselor_id": n.counselor_id})
    return render_template("notification.html", n=n, chart=chart,
                           may_acknowledge=n.recipient_id == identity.staff_id)


@pages.post("/inbox/<notification_id>/ack")
def acknowledge_page(notification_id):
    identity = require_page_identity()
    if identity is None:
        return signin_redirect()
    acknowledge(queries.own_notification(identity, notification_id), utcnow())
    return redirect(url_for("pages.notification_page", notification_id=notification_id), 303)


@pages.get("/supervision")
def supervision_page():
    identity = require_page_identity(*queries.OVERSEERS)
    if identity is None:
        return signin_redirect()
    return render_template("supervision.html", **queries.supervision(identity))
