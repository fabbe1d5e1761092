"""A staff member's own delivery settings: read and replace, with the webhook secret kept server-side."""
from __future__ import annotations

import secrets

from urllib.parse import urlsplit

from marshmallow import ValidationError
from mongoengine import NotUniqueError

from services.common.auth import Identity
from services.common.mongo import utcnow

from services.notify.adapters.models import RecipientPreferences


def preferences_for(identity: Identity) -> RecipientPreferences:
    key = RecipientPreferences.key(identity.org_id, identity.staff_id)
    return RecipientPreferences.objects(id=key).first() or RecipientPreferences(
        id=key, org_id=identity.org_id, staff_id=identity.staff_id)


def check_webhook_url(url: str | None, allow_http: bool) -> None:
    """Outside development a webhook goes over https only (where it may go is checked at each delivery)."""
    if url and not allow_http and urlsplit(url).scheme != "https":
        raise ValidationError({"webhook_url": ["Use an https:// address."]})


def replace_preferences(identity: Identity, data: dict) -> tuple[RecipientPreferences, str | None]:
    """Store the new settings; returns them and the webhook secret if one was generated just now.

    A secret is generated for a new webhook URL or on request (rotation) and dropped with the URL, so a
    receiver's secret never outlives the endpoint it was made for.
    """
    prefs = preferences_for(identity)
    url = data["webhook_url"]
    new_secret = None
    if url and (url != prefs.webhook_url or not prefs.webhook_secret or data["rotate_webhook_secret"]):
        new_secret = secrets.token_hex(32)
    quiet = data["quiet_hours"] or {}
    prefs.email, prefs.webhook_url = data["email"], url
    prefs.webhook_secret = new_secret or (prefs.webhook_secret if url else None)
    prefs.channels = {kind: sorted(set(channels)) for kind, channels in data["channels"].items()}
    prefs.quiet_start, prefs.quiet_end = quiet.get("start"), quiet.get("end")
    prefs.timezone, prefs.daily_digest, prefs.updated_at = data["timezone"], data["daily_digest"], utcnow()
    try:
        prefs.save()
    except NotUniqueError:
        # A first save that lost to another first save of the same person's settings (two tabs, a double
        # submit): those are stored now, so replacing them is an ordinary save; the last one wins.
        return replace_preferences(identity, data)
    return prefs, new_secret


def dump(prefs: RecipientPreferences, new_secret: str | None = None) -> dict:
    answer = {"email": prefs.email, "webhook_url": prefs.webhook_url, "channels": prefs.channels or {},
              "quiet_hours": ({"start": prefs.quiet_start, "end": prefs.quiet_end}
                              if prefs.quiet_start and prefs.quiet_end else None),
              "timezone": prefs.timezone or "UTC", "daily_digest": bool(prefs.daily_digest),
              "webhook_secret_set": bool(prefs.webhook_secret)}
    if new_secret:
        answer["webhook_secret"] = new_secret
    return answer
