"""Notify's event handlers: plain functions, listed in EVENT_HANDLERS at the bottom."""
from __future__ import annotations

from services.common.events import Event, Topic
from services.common.outbox import Publish, insert_once

from .models import InboxItem


def handle_alliance_dropped(event: Event, publish: Publish) -> None:
    p = event.payload
    counselor_id = p["counselor_id"]
    insert_once(InboxItem(
        id=InboxItem.key(event.event_id, counselor_id), org_id=event.org_id, clinic_id=event.clinic_id,
        recipient_id=counselor_id, kind="alliance_dropped", client_id=p["client_id"],
        source_event_id=event.event_id, rule=p["rule"], dimension=p["dimension"], severity=p["severity"],
        session_number=p["session_number"],
    ))


EVENT_HANDLERS = {
    Topic.ALLIANCE_DROPPED.value: handle_alliance_dropped,
}
