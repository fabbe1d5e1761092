"""Operations on the event log: dead letters, re-driving them, consumer lag, replay into a fresh group.

Used by the `rapport` command (cli.py). Everything here talks to Kafka (and, for replay, to the service's
own handlers and a database of its own); nothing here changes a service's committed position.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from . import mongo
from .config import Settings
from .events import dlq_topic
from .kafka import BatchHandler, ConsumerLoop, EventProducer, Handler

log = logging.getLogger(__name__)
REDRIVE_GROUP = "rapport-dlq-redrive"


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: bytes


def _consumer(settings: Settings, group: str | None = None) -> KafkaConsumer:
    return KafkaConsumer(**settings.kafka_client_options, group_id=group, enable_auto_commit=False,
                         client_id=f"{settings.service}-ops", auto_offset_reset="earliest")


def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def _read_to_end(consumer: KafkaConsumer, partitions: list[TopicPartition]) -> Iterator:
    end = consumer.end_offsets(partitions)
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        for records in consumer.poll(timeout_ms=1000).values():
            yield from (r for r in records if r.offset < end[TopicPartition(r.topic, r.partition)])


def dead_letters(settings: Settings, topic: str) -> list[DeadLetter]:
    """Every message now in `<topic>.dlq`, oldest first per partition."""
    consumer = _consumer(settings)
    try:
        partitions = _partitions(consumer, dlq_topic(topic))
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        return [DeadLetter(r.partition, r.offset, r.key.decode() if r.key else None,
                           {k: v.decode(errors="replace") for k, v in r.headers}, r.value)
                for r in _read_to_end(consumer, partitions)]
    finally:
        consumer.close()


def redrive(settings: Settings, topic: str) -> int:
    """Publish each dead letter of `topic` not re-driven before back to `topic`, once.

    Progress is the committed position of the group `rapport-dlq-redrive` on the DLQ topic, committed after
    each message is acknowledged by the broker: a second run re-drives only what arrived since.
    """
    consumer = _consumer(settings, REDRIVE_GROUP)
    producer = KafkaProducer(**settings.kafka_client_options, acks="all", enable_idempotence=True)
    count = 0
    try:
        partitions = _partitions(consumer, dlq_topic(topic))
        consumer.assign(partitions)
        committed = {tp: consumer.committed(tp) for tp in partitions}
        for tp, offset in committed.items():
            if offset is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        for record in _read_to_end(consumer, partitions):
            headers = [("redriven-from", f"{record.topic}:{record.partition}:{record.offset}".encode())]
            producer.send(topic, key=record.key, value=record.value, headers=headers).get(timeout=10)
            consumer.commit({TopicPartition(record.topic, record.partition):
                             OffsetAndMetadata(record.offset + 1, "", -1)})
            count += 1
        return count
    finally:
        producer.close()
        consumer.close()


@dataclass(frozen=True)
class Lag:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def behind(self) -> int:
        return self.end - (self.committed or 0)


def consumer_lag(settings: Settings) -> list[Lag]:
    """How far behind the end of each partition every consumer group's committed position is."""
    admin = KafkaAdminClient(**settings.kafka_client_options, client_id=f"{settings.service}-ops")
    consumer = _consumer(settings)
    try:
        groups = sorted(g["group_id"] for g in admin.list_groups())
        lags = []
        for group in groups:
            offsets = admin.list_group_offsets({group: None}).get(group, {})
            if not offsets:
                continue
            ends = consumer.end_offsets(list(offsets))
            lags.extend(Lag(group, tp.topic, tp.partition, meta.offset, ends[tp])
                        for tp, meta in sorted(offsets.items()))
        return lags
    finally:
        consumer.close()
        admin.close()


EventHandlers = Mapping[str, Handler | BatchHandler]


# Each service's event handlers as its worker runs them (its bootstrap binds what they need), imported only
# when a replay asks for them. Imported with this module, they would load every service's code (its domain,
# rules and instruments; intake's pulls in Flask) into every `rapport` command, and make services.common,
# which every service builds on, import the services back.
def _scoring_handlers(settings: Settings) -> EventHandlers:
    from services.scoring.bootstrap import event_handlers
    return event_handlers(settings)


def _referral_handlers(settings: Settings) -> EventHandlers:
    from services.referral.bootstrap import event_handlers
    return event_handlers(settings)


def _notify_handlers(settings: Settings) -> EventHandlers:
    from services.notify.bootstrap import event_handlers
    return event_handlers(settings)


def _intake_handlers(settings: Settings) -> EventHandlers:
    from services.intake.bootstrap import event_handlers
    return event_handlers(settings)


EVENT_HANDLERS_BY_SERVICE: dict[str, Callable[[Settings], EventHandlers]] = {
    "scoring": _scoring_handlers, "referral": _referral_handlers, "notify": _notify_handlers,
    "intake": _intake_handlers,
}


class _Held:
    """A publisher that counts derived events and drops them (a replay must not notify anyone)."""

    def __init__(self) -> None:
        self.count = 0

    def send(self, topic: str, key: str | None, value: bytes, headers=None) -> None:
        self.count += 1

    def send_all(self, messages: list) -> None:
        self.count += len(messages)


class _StopWhenCaughtUp:
    """Replay's end: stops the loop once every partition is handled up to the end offset it had when the
    replay began. Events that arrive meanwhile belong to production, not to the comparison a replay is for."""

    def __init__(self, ends: Mapping[TopicPartition, int], stop: Callable[[], None]):
        self._behind = {tp: end for tp, end in ends.items() if end > 0}
        self._stop = stop
        if not self._behind:
            stop()  # nothing to replay

    def handled(self, tp: TopicPartition, next_offset: int) -> None:
        if tp in self._behind and next_offset >= self._behind[tp]:
            del self._behind[tp]
            if not self._behind:
                self._stop()


def replay(settings: Settings, group: str, publish: bool = False) -> dict[str, int]:
    """Re-process every topic the service consumes, from the start, as a new consumer group into the database
    named by `settings.db_prefix`, until caught up; returns the loop's counts.

    Without `publish`, the derived events are only counted: a replay after a rule change can be compared
    with production (its documents carry the same ids) without alerting anyone a second time.
    """
    handlers = EVENT_HANDLERS_BY_SERVICE[settings.service](settings)
    mongo.connect(settings)
    producer = EventProducer(settings) if publish else _Held()
    loop = ConsumerLoop(settings, group=group, handlers=handlers, producer=producer, poll_timeout_ms=500)
    loop.on_handled = _StopWhenCaughtUp(_end_offsets(settings, list(handlers)), loop.stop).handled
    loop.run()
    if publish:
        producer.close()
    return {"processed": loop.stats.processed, "duplicates": loop.stats.skipped_duplicates,
            "dead_lettered": loop.stats.dead_lettered, "held_events": getattr(producer, "count", 0)}


def _end_offsets(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = _consumer(settings)
    try:
        return {tp: end for topic in topics
                for tp, end in consumer.end_offsets(_partitions(consumer, topic)).items()}
    finally:
        consumer.close()
