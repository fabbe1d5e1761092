"""Revoked sessions: which staff tokens no service may accept any more, without asking intake per request.

Intake raises a staff member's token version when they are deactivated, change role or clinics, get a new
password or sign out, and announces it in `staff.updated`. Every service keeps the newest version and the
active flag per staff member (one small document each, in its own database: intake writes its own at once,
the others from the event) and refuses a token of an older version or of an inactive member. A process
remembers what it read for a couple of seconds: a revocation takes effect within the event's way through
Kafka plus that, and a request costs at most one look-up by key per staff member and interval.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime

import mongoengine as me
from pymongo.errors import DuplicateKeyError

from .auth import Identity
from .events import Event

REMEMBER_S = 2.0


class StaffTokens(me.Document):
    """The newest token version and active flag of one staff member, as this service last heard them."""

    id = me.StringField(primary_key=True)  # "<org>:<staff id>"
    version = me.IntField(required=True)
    active = me.BooleanField(required=True)
    as_of = me.DateTimeField(required=True)
    meta = {"collection": "staff_tokens"}

    @staticmethod
    def key(org_id: str, staff_id: str) -> str:
        return f"{org_id}:{staff_id}"


def record(org_id: str, staff_id: str, version: int, active: bool, as_of: datetime) -> None:
    """Keep the newest state: a version never goes back, and an older event (redelivered, or overtaken)
    changes nothing. This process reads it again at its next request."""
    collection = StaffTokens._get_collection()
    key = StaffTokens.key(org_id, staff_id)
    with _lock:
        _known.pop(key, None)
    changed = collection.update_one({"_id": key, "version": {"$lte": version}, "as_of": {"$lte": as_of}},
                                    {"$set": {"version": version, "active": active, "as_of": as_of}})
    if changed.matched_count:
        return
    try:
        collection.insert_one({"_id": key, "version": version, "active": active, "as_of": as_of})
    except DuplicateKeyError:
        pass  # a newer state is stored


def handle_staff_updated(event: Event, publish) -> None:
    """The consumer side, for every service's EVENT_HANDLERS."""
    p = event.payload
    record(event.org_id, p.staff_id, p.token_version, p.active, event.occurred_at)


# What this process read of each staff member: (when, version, active).
_known: dict[str, tuple[float, int, bool]] = {}
_lock = threading.Lock()


def revoked(identity: Identity) -> bool:
    """Whether the identity's token is revoked (an older version, or an inactive member), as this service
    knows it; read at most every REMEMBER_S per member and process."""
    key = StaffTokens.key(identity.org_id, identity.staff_id)
    now = time.monotonic()
    with _lock:
        known = _known.get(key)
    if known is None or now - known[0] > REMEMBER_S:
        stored = StaffTokens._get_collection().find_one({"_id": key}, {"version": 1, "active": 1})
        # Nothing heard of this member yet (new, or from before versions): nothing revoked.
        known = (now, stored["version"], stored["active"]) if stored else (now, 0, True)
        with _lock:
            _known[key] = known
    _, version, active = known
    return not active or identity.token_version < version
