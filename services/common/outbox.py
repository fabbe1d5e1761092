"""The transactional outbox, made for a store without multi-document transactions.

FerretDB has no multi-document transactions, so a document that must produce events keeps them in its
own `pending_events` list, written in the same insert as the document itself. They are published right
after the write and pulled from the list once the broker acknowledged them; a relay publishes whatever a
crash or a broker outage left behind. Consumers are idempotent by event id, so the rare double publish
(a crash after the send, before the pull) is harmless, while a lost event is impossible.
"""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, TypeVar

import mongoengine as me
from kafka.errors import KafkaError
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from .events import Event, encode_event
from .mongo import update_each, utcnow

log = logging.getLogger(__name__)

Publish = Callable[[str, str, bytes], None]  # (topic, key, value); returns once the broker acknowledged
# Many (topic, key, value) at once; returns once the broker acknowledged all of them.
PublishAll = Callable[[list[tuple[str, str, bytes]]], None]
D = TypeVar("D", bound=me.Document)
DUPLICATE_KEY = 11000


def outbox_entry(event: Event, key: str) -> dict[str, Any]:
    """What a document stores for an event it still has to publish: the exact bytes and the key."""
    return {"event_id": event.event_id, "topic": event.type, "key": key,
            # Epoch milliseconds, not a datetime: BSON would truncate microseconds and the element
            # kept in memory would no longer equal the stored one that $pull must match.
            "value": encode_event(event).decode(), "created_ms": _epoch_ms(utcnow())}


class OutboxDocument(me.Document):
    """Base of documents that carry their own pending events (see the module docstring)."""

    meta = {"abstract": True}
    pending_events = me.ListField(me.DictField())


def publish_pending(document: me.Document, publish: Publish) -> int:
    """Publish a document's pending events in order and pull each one once acknowledged."""
    collection = document._get_collection()
    sent = 0
    for entry in list(document.pending_events):
        publish(entry["topic"], entry["key"], entry["value"].encode())
        # $pull with the whole element: FerretDB 1.24 ignores $pull conditions on sub-fields.
        collection.update_one({"_id": document.pk}, {"$pull": {"pending_events": entry}})
        document.pending_events.remove(entry)
        sent += 1
    return sent


def publish_pending_all(documents: Iterable[me.Document], publish_all: PublishAll) -> int:
    """publish_pending for many documents: one wait for the broker, then a few bulk writes.

    The lists are emptied rather than pulled element by element: every pending event of these documents
    was acknowledged, and nothing else adds to a document's list after its insert.
    """
    documents = [d for d in documents if d.pending_events]
    messages = [(e["topic"], e["key"], e["value"].encode()) for d in documents for e in d.pending_events]
    if not messages:
        return 0
    publish_all(messages)
    by_class: dict[type[me.Document], list[me.Document]] = defaultdict(list)
    for document in documents:
        by_class[type(document)].append(document)
    for cls, group in by_class.items():
        update_each(cls._get_collection(),
                    [UpdateOne({"_id": d.pk}, {"$set": {"pending_events": []}}) for d in group])
    for document in documents:
        document.pending_events = []
    return len(messages)


def publish_or_defer(document: me.Document, publish: Publish) -> bool:
    """After an API write: publish now if the broker is there, else leave the events to the relay.

    The request has been accepted once the document is written; a broker outage must not fail it.
    """
    try:
        publish_pending(document, publish)
        return True
    except KafkaError as exc:
        log.warning("publish deferred to the outbox relay: %s", type(exc).__name__)
        return False


def insert_once(document: D) -> D:
    """Insert a document whose id derives from the event that caused it, or return the stored one.

    A redelivered event then finds the document (and any events it still has to publish) instead of
    computing and publishing a second copy.
    """
    try:
        document.save(force_insert=True)
        return document
    except (me.NotUniqueError, DuplicateKeyError):
        return type(document).objects.get(pk=document.pk)


def insert_all_once(documents: list[D]) -> list[D]:
    """insert_once for many documents of one class in one round trip; each comes back as stored.

    Unordered: a duplicate does not stop the others. Only the duplicates are read back.
    """
    if not documents:
        return []
    cls = type(documents[0])
    for document in documents:
        document.validate()
    try:
        cls._get_collection().insert_many([d.to_mongo() for d in documents], ordered=False)
        return list(documents)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        stored = list(documents)
        for error in errors:
            stored[error["index"]] = cls.objects.get(pk=documents[error["index"]].pk)
        return stored


def relay_pending(document_classes: Iterable[type[me.Document]], publish: Publish,
                  older_than: timedelta, limit: int = 500) -> int:
    """Publish events left pending for longer than `older_than` (the API's own publish failed or crashed).

    Returns how many it published. The grace period keeps the relay from racing the API's fast path.
    """
    cutoff_ms = _epoch_ms(utcnow() - older_than)
    published = 0
    for cls in document_classes:
        raw = cls._get_collection().find({"pending_events.0": {"$exists": True}}).limit(limit)
        for doc in raw:
            entries = doc.get("pending_events", [])
            if not entries or entries[0]["created_ms"] > cutoff_ms:
                continue
            stub = cls._from_son(doc)
            # Keep the stored elements (their exact key order) for $pull to match.
            stub.pending_events = entries
            published += publish_pending(stub, publish)
    return published


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class OutboxRelay:
    """Polls the outbox of the given document classes until stopped; one per service that writes events."""

    def __init__(self, document_classes: list[type[me.Document]], publish: Publish, grace_s: float,
                 poll_s: float):
        self._classes, self._publish = document_classes, publish
        self._grace, self._poll_s = timedelta(seconds=grace_s), poll_s
        self._stopping = threading.Event()

    def stop(self, *_: object) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                published = relay_pending(self._classes, self._publish, self._grace)
                if published:
                    log.info("outbox relay published %d pending events", published)
            except Exception as exc:  # broker or database away: try again on the next tick
                log.warning("outbox relay pass failed: %s", type(exc).__name__)
            self._stopping.wait(self._poll_s)
