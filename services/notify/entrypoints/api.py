"""Notify's JSON API: the signed-in user's inbox, acknowledgement, preferences and the supervision view."""
from __future__ import annotations

from contextlib import contextmanager

from flask_smorest import Blueprint, abort
from marshmallow import ValidationError

from services.common.schemas import QuerySetPage
from services.common.web.app import command_bus
from services.common.web.identity import caller, guard

from services.notify import domain, queries
from services.notify.commands import Acknowledge, ReplacePreferences
from services.notify.entrypoints.schemas import (AcknowledgeSchema, InboxQuerySchema, NotificationSchema, PreferencesSchema,
                      SupervisionQuerySchema, SupervisionSchema, UnreadCountSchema)

inbox = Blueprint("inbox", __name__, url_prefix="/api/inbox",
                  description="The signed-in user's notifications (identity from the token)")


@inbox.get("")
@guard()
@inbox.arguments(InboxQuerySchema, location="query")
@inbox.response(200, NotificationSchema(many=True))
@inbox.paginate(QuerySetPage)
def list_inbox(query):
    """Newest first. Supervisors and admins may pass counselor_id for a counselor in their clinics."""
    with notify_errors():
        return queries.inbox_of(caller(), **query)


@inbox.get("/unread-count")
@guard()
@inbox.response(200, UnreadCountSchema)
def unread_count():
    return {"unread": queries.unread_count(caller())}


@inbox.get("/<notification_id>")
@guard()
@inbox.response(200, NotificationSchema)
def get_notification(notification_id):
    """One notification with its deliveries per channel (status, attempts, last error)."""
    with notify_errors():
        return queries.visible_notification(caller(), notification_id)


@inbox.post("/<notification_id>/ack")
@guard()
@inbox.arguments(AcknowledgeSchema, required=False)
@inbox.response(200, NotificationSchema)
def acknowledge_notification(data, notification_id):
    """The recipient acknowledges, saying for an alliance alert what they did (optional); repeating it keeps
    the first time and answer. Stops a pending escalation."""
    with notify_errors():
        return command_bus().handle(Acknowledge(caller(), notification_id, (data or {}).get("action")))


preferences = Blueprint("preferences", __name__, url_prefix="/api/preferences",
                        description="The signed-in user's delivery settings")


@preferences.get("")
@guard()
@preferences.response(200, PreferencesSchema)
def get_preferences():
    return queries.preferences_view(queries.stored_preferences(caller()))


@preferences.put("")
@guard()
@preferences.arguments(PreferencesSchema)
@preferences.response(200, PreferencesSchema)
def put_preferences(data):
    """Replace the settings. A new or rotated webhook secret is in this answer only. Outside development a
    webhook must be https, and deliveries to internal addresses are refused."""
    try:
        return queries.preferences_view(*command_bus().handle(ReplacePreferences(caller(), **data)))
    except ValidationError as exc:
        abort(422, errors={"json": exc.messages})


supervision = Blueprint("supervision", __name__, url_prefix="/api/supervision",
                        description="Unacknowledged alerts per counselor and escalations")


@supervision.get("")
@guard(*queries.OVERSEERS)
@supervision.arguments(SupervisionQuerySchema, location="query")
@supervision.response(200, SupervisionSchema)
def get_supervision(query):
    with notify_errors():
        return queries.supervision(caller(), query.get("clinic_id"))


@contextmanager
def notify_errors():
    """What the caller may not see is a 404; someone else's notification or inbox a 403."""
    try:
        yield
    except (domain.NoSuchNotification, domain.NoSuchClinic):
        abort(404)
    except domain.NotYours:
        abort(403)


BLUEPRINTS = (inbox, preferences, supervision)
