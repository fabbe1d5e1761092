"""MongoDB plumbing: the connection, the processed-event record that makes consumers idempotent, and the base
of documents about one session."""
from __future__ import annotations

from datetime import datetime, timezone

import mongoengine as me
from pymongo import UpdateOne
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from .config import Settings
from .events import Event


def connect(settings: Settings) -> None:
    """Register the service's database as mongoengine's default connection.

    connect=False defers the socket to first use, so that gunicorn's forked workers each open their own.
    """
    me.disconnect()
    me.connect(db=settings.database, host=settings.mongo_uri, connect=False,
               serverSelectionTimeoutMS=3000, uuidRepresentation="standard", tz_aware=True)


def ping() -> None:
    """Raise unless the database answers."""
    me.get_db().client.admin.command("ping")


# FerretDB 1.24 keeps a database connection per statement of an update command until the command ends, from
# a pool of 100 per database: an update command of more statements waits forever. Chunks of 20 stay clear of
# it even with several workers of a service writing to the same database at once.
UPDATES_PER_COMMAND = 20


def update_each(collection: Collection, updates: list[UpdateOne]) -> int:
    """Run single-document updates in a few unordered bulk commands; returns how many documents changed."""
    modified = 0
    for start in range(0, len(updates), UPDATES_PER_COMMAND):
        modified += collection.bulk_write(updates[start:start + UPDATES_PER_COMMAND], ordered=False).modified_count
    return modified


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SessionRecord(me.Document):
    """Base of every document about one session of a client with a counselor (an answer, a score, an alert):
    the id and the scope every such document is read by."""

    meta = {"abstract": True}
    id = me.StringField(primary_key=True)
    org_id = me.StringField(required=True)
    clinic_id = me.StringField(required=True)
    client_id = me.StringField(required=True)
    counselor_id = me.StringField(required=True)
    session_number = me.IntField(required=True)


class ProcessedEvent(me.Document):
    """One record per (consumer group, event id) handled: what makes a consumer idempotent."""

    id = me.StringField(primary_key=True)  # "<group>:<event_id>"
    topic = me.StringField(required=True)
    processed_at = me.DateTimeField(default=utcnow)
    meta = {"collection": "processed_events"}

    @staticmethod
    def key(group: str, event_id: str) -> str:
        return f"{group}:{event_id}"

    @classmethod
    def seen(cls, group: str, event_id: str) -> bool:
        return cls.objects(id=cls.key(group, event_id)).only("id").first() is not None

    @classmethod
    def mark(cls, group: str, event: Event) -> None:
        try:
            cls(id=cls.key(group, event.event_id), topic=event.type).save(force_insert=True)
        except (me.NotUniqueError, DuplicateKeyError):
            pass  # another delivery of the same event finished first: nothing to record


