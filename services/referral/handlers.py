"""Referral's event handlers: plain functions, listed in EVENT_HANDLERS at the bottom."""
from __future__ import annotations

from services.common.events import Event, Topic
from services.common.outbox import Publish, insert_once

from .models import IntakeView


def handle_intake_submitted(event: Event, publish: Publish) -> None:
    p = event.payload
    insert_once(IntakeView(
        id=p["intake_id"], org_id=event.org_id, clinic_id=event.clinic_id, client_id=p["client_id"],
        concerns=list(p["concerns"]), preferences=dict(p["preferences"]), urgency=p["urgency"],
        assigned_counselor_id=p["assigned_counselor_id"], source_event_id=event.event_id,
    ))


EVENT_HANDLERS = {
    Topic.INTAKE_SUBMITTED.value: handle_intake_submitted,
}
