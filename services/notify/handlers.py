"""Notify's event handlers: plain functions, listed in EVENT_HANDLERS at the bottom.

Alerts, referrals and assignments become notifications (see domain.route_*); counselor.updated and
staff.updated keep the recipient read model (who works where, in which role, under which supervisor).
"""
from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Callable

from pymongo.errors import DuplicateKeyError

from services.common import sessions
from services.common.config import Settings
from services.common.events import CrossTenantEvent, Event, Topic
from services.common.kafka import BatchHandler
from services.common.mongo import utcnow
from services.common.outbox import Publish, PublishAll, insert_all_once

from services.notify import domain
from services.notify.adapters.config import notify_settings
from services.notify.adapters.models import Notification, StaffMember
from services.notify.notifications import clinic_staff, notifications_for, preferences_of


@cache
def _intake_url() -> str:
    return Settings.load("notify").intake_url


def _known_only_elsewhere(org_id: str, staff_id: str) -> bool:
    # The own-organisation lookup first: it is by key, while looking elsewhere is a scan of the read model
    # on FerretDB, needed only for an id this organisation does not know.
    if StaffMember.objects(id=StaffMember.key(org_id, staff_id)).only("id").first():
        return False
    return StaffMember.objects(staff_id=staff_id, org_id__ne=org_id).only("id").first() is not None


def _same_organisation(event: Event, *staff_ids: str | None,
                       known_only_elsewhere: Callable[[str, str], bool] = _known_only_elsewhere) -> None:
    """An event may only address staff of its own organisation. Staff ids are unique across organisations,
    so an id the read model knows in another organisation and not in this one is refused (CrossTenantEvent)
    rather than given a notification, or a record, under the event's organisation."""
    for staff_id in set(filter(None, staff_ids)):
        if known_only_elsewhere(event.org_id, staff_id):
            raise CrossTenantEvent(f"{event.type}: a staff member of another organisation")


def _notifications(event: Event, drafts: list[domain.Draft], key: str | None = None, *,
                   known_only_elsewhere: Callable[[str, str], bool] = _known_only_elsewhere,
                   preferences: Callable[[str, str], domain.Preferences] = preferences_of) -> list[Notification]:
    """The event's notifications, not stored yet, once every staff member it names is of its organisation."""
    for draft in drafts:
        _same_organisation(event, draft.recipient_id, draft.counselor_id, known_only_elsewhere=known_only_elsewhere)
    return notifications_for(event.event_id, event.org_id, event.clinic_id, drafts, now=utcnow(),
                             intake_url=_intake_url(), config=notify_settings(), key=key, preferences=preferences)


def _notify(event: Event, drafts: list[domain.Draft], key: str | None = None) -> None:
    insert_all_once(_notifications(event, drafts, key))


def _new_client_key(event: Event) -> str:
    # Registering a client with a counselor publishes intake.submitted and client.assigned in one request
    # (one correlation id): the counselor hears of the new client once, whichever event arrives first.
    return f"{event.correlation_id}.new_client"


def handle_alliance_dropped_batch(events: list[Event], publish_all: PublishAll) -> None:
    """Alerts come in bursts (a clinic's evening of feedback, a replay): a poll's alerts are checked and
    stored together, with one insert for all their notifications, and each recipient's organisation and
    settings looked up once. Idempotent by itself - a notification's id derives from its event and
    recipient - so the loop keeps no processed-event record for it."""
    known_only_elsewhere, preferences = cache(_known_only_elsewhere), cache(preferences_of)
    insert_all_once([notification for event in events
                     for notification in _notifications(event, domain.route_alliance_dropped(event.payload),
                                                        known_only_elsewhere=known_only_elsewhere,
                                                        preferences=preferences)])


def handle_referral_recommended(event: Event, publish: Publish) -> None:
    staff = clinic_staff(event.org_id, event.clinic_id)
    _notify(event, domain.route_referral_recommended(event.payload, event.clinic_id, staff))


def handle_referral_decided(event: Event, publish: Publish) -> None:
    staff = clinic_staff(event.org_id, event.clinic_id)
    _notify(event, domain.route_referral_decided(event.payload, event.clinic_id, staff))


def handle_intake_submitted(event: Event, publish: Publish) -> None:
    _notify(event, domain.route_intake_submitted(event.payload), key=_new_client_key(event))


def handle_client_assigned(event: Event, publish: Publish) -> None:
    _notify(event, domain.route_client_assigned(event.payload), key=_new_client_key(event))


def handle_staff_updated(event: Event, publish: Publish) -> None:
    p = event.payload
    _same_organisation(event, p["staff_id"], p.get("supervisor_id"))
    sessions.handle_staff_updated(event, publish)
    _upsert_staff(event.org_id, p["staff_id"], event.occurred_at, role=p["role"], clinic_ids=p["clinic_ids"],
                  supervisor_id=p.get("supervisor_id"), active=p["active"])


def handle_counselor_updated(event: Event, publish: Publish) -> None:
    # The directory entry says nothing about the role; a staff.updated role (e.g. a supervisor who also
    # counsels) is kept, and a counselor unknown so far is recorded as one.
    p = event.payload
    _same_organisation(event, p["counselor_id"], p.get("supervisor_id"))
    _upsert_staff(event.org_id, p["counselor_id"], event.occurred_at, default_role="counselor",
                  clinic_ids=p["clinic_ids"], supervisor_id=p.get("supervisor_id"), active=p["active"])


def _upsert_staff(org_id: str, staff_id: str, as_of: datetime, default_role: str | None = None,
                  **fields) -> None:
    """Apply a staff record unless a newer event already did (events of one staff member may be
    redelivered or, across producers, arrive out of order)."""
    key = StaffMember.key(org_id, staff_id)
    collection = StaffMember._get_collection()
    changed = collection.update_one({"_id": key, "as_of": {"$lte": as_of}}, {"$set": {**fields, "as_of": as_of}})
    if changed.matched_count:
        return
    try:
        collection.insert_one({"_id": key, "org_id": org_id, "staff_id": staff_id, "as_of": as_of,
                               "role": fields.get("role") or default_role, **fields})
    except DuplicateKeyError:
        pass  # a newer record is stored: this event is stale


EVENT_HANDLERS = {
    Topic.ALLIANCE_DROPPED.value: BatchHandler(handle_alliance_dropped_batch),
    Topic.REFERRAL_RECOMMENDED.value: handle_referral_recommended,
    Topic.REFERRAL_DECIDED.value: handle_referral_decided,
    Topic.INTAKE_SUBMITTED.value: handle_intake_submitted,
    Topic.CLIENT_ASSIGNED.value: handle_client_assigned,
    Topic.STAFF_UPDATED.value: handle_staff_updated,
    Topic.COUNSELOR_UPDATED.value: handle_counselor_updated,
}
