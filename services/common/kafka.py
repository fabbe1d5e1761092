"""Kafka plumbing (kafka-python 3.0): topic set-up, a producer that reports failures, and the consumer loop.

The consumer loop follows the at-least-once discipline: an offset is committed only after its message was
fully handled (or dead-lettered), handlers are idempotent by event id, a transient failure (database or
broker unreachable) rewinds and retries with backoff without ever skipping a message, and a message that
can never be processed goes to `<topic>.dlq` with its origin in headers while the loop goes on. What happens
to a message between poll and commit is consumer_steps.py's; the loop here only polls, commits and rewinds.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from .config import Settings
# Handler and BatchHandler live with the steps that call them; services keep importing them from here.
from .consumer_steps import (Backoff, BatchHandler, ConsumerStats, HaltOnDeadLetters, Handler, Rewind,
                             steps_by_topic)
from .events import Event, all_topics, encode_event
from .metrics import CONSUMER_LAG, EVENTS_PUBLISHED

if TYPE_CHECKING:
    from kafka.consumer.fetcher import ConsumerRecord

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0


def ensure_topics(settings: Settings, topics: list[str] | None = None) -> list[str]:
    """Create the platform's topics that do not exist yet; safe to run any number of times."""
    wanted = topics or all_topics()
    admin = KafkaAdminClient(**settings.kafka_client_options, client_id=f"{settings.service}-admin",
                             request_timeout_ms=15000)
    try:
        missing = [t for t in wanted if t not in set(admin.list_topics())]
        if missing:
            try:
                admin.create_topics([NewTopic(t, settings.topic_partitions, settings.topic_replication)
                                     for t in missing])
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process's start-up
        return missing
    finally:
        admin.close()


class EventProducer:
    """acks=all with idempotence: a send returns only once the broker has the event, or raises."""

    def __init__(self, settings: Settings, timeout_s: float = SEND_TIMEOUT_S):
        self._timeout_s = timeout_s
        self._service = settings.service
        self._producer = KafkaProducer(
            **settings.kafka_client_options, client_id=settings.service, acks="all",
            enable_idempotence=True, linger_ms=0, retries=5, request_timeout_ms=int(timeout_s * 1000),
            max_block_ms=int(timeout_s * 1000), bootstrap_timeout_ms=int(timeout_s * 1000))

    def publish(self, event: Event, key: str) -> None:
        self.send(event.type, key, encode_event(event))

    def send(self, topic: str, key: str | None, value: bytes,
             headers: list[tuple[str, bytes]] | None = None) -> None:
        self._await([(topic, self._enqueue(topic, key, value, headers))])

    def send_all(self, messages: list[tuple[str, str | None, bytes]]) -> None:
        """Send many messages, then wait for the broker's acknowledgements of all of them: one wait instead
        of one per message, while the idempotent producer keeps their order within each partition."""
        self._await([(topic, self._enqueue(topic, key, value, None)) for topic, key, value in messages])

    def _enqueue(self, topic: str, key: str | None, value: bytes, headers: list[tuple[str, bytes]] | None):
        return self._producer.send(topic, key=key.encode() if key else None, value=value, headers=headers)

    def _await(self, futures: list) -> None:
        for topic, future in futures:
            future.get(timeout=self._timeout_s)
            EVENTS_PUBLISHED.labels(self._service, topic).inc()

    def close(self) -> None:
        self._producer.close(timeout=self._timeout_s)


class BrokerProbe:
    """Answers "can this process use Kafka now?" with a real round trip: the broker answers and the
    platform's topics exist (auto-creation is off, so publishing to a missing topic would block)."""

    def __init__(self, settings: Settings, timeout_s: float = 2.0):
        self._settings, self._timeout_ms = settings, int(timeout_s * 1000)
        self._admin: KafkaAdminClient | None = None

    def check(self) -> None:
        if self._admin is None:
            self._admin = KafkaAdminClient(**self._settings.kafka_client_options,
                                           client_id=f"{self._settings.service}-probe",
                                           request_timeout_ms=self._timeout_ms,
                                           bootstrap_timeout_ms=self._timeout_ms)
        missing = set(all_topics()) - set(self._admin.list_topics())
        if missing:
            raise LookupError(f"{len(missing)} topics missing; run `rapport ensure-topics`")

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None


@dataclass
class ConsumerLoop:
    """Consume `handlers`' topics as consumer group `group` until stopped (SIGTERM/SIGINT, stop(), or the halt
    rule): poll, hand each partition's records to its topic's steps (consumer_steps.py), commit what they
    marked handled. On a transient failure (Rewind) every partition of the poll is sought back to its first
    record not handled and the loop waits on a backoff before polling again."""

    settings: Settings
    group: str
    handlers: Mapping[str, Handler | BatchHandler]
    producer: EventProducer
    poll_timeout_ms: int = 500
    max_records: int = 500
    stats: ConsumerStats = field(default_factory=ConsumerStats)
    # Told (partition, next offset to read) whenever a partition's records up to there are handled: how a
    # caller learns the loop's progress before it is committed (ops.replay stops once caught up).
    on_handled: Callable[[TopicPartition, int], None] | None = None

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._consumer: KafkaConsumer | None = None
        # Offsets handled but not yet committed, per partition: the next offset to read.
        self._uncommitted: dict[TopicPartition, int] = {}
        self._backoff = Backoff(self.settings.consumer_retry_backoff_s, self.settings.consumer_max_backoff_s,
                                self._stopping)
        self._halt_rule = HaltOnDeadLetters(self.group, self.settings.consumer_dlq_halt_share, self.stop)
        self._steps = steps_by_topic(self.handlers, settings=self.settings, group=self.group,
                                     producer=self.producer, stats=self.stats, halt_rule=self._halt_rule,
                                     handled=self._mark_handled, stopping=self._stopping)

    @property
    def halted(self) -> bool:
        """Stopped by the halt rule: most recent messages went to the DLQ."""
        return self._halt_rule.halted

    @property
    def ready(self) -> bool:
        """Consuming: started, not stopped and not halted by too many dead letters."""
        return self._consumer is not None and not self._stopping.is_set() and not self.halted

    def stop(self, *_: object) -> None:
        self._stopping.set()

    def run(self) -> None:
        self._consumer = KafkaConsumer(
            **self.settings.kafka_client_options, group_id=self.group,
            client_id=f"{self.settings.service}-worker", enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=self.max_records)
        # No rebalance listener: kafka-python 3 calls it on its network thread, where a commit cannot block.
        # Offsets of partitions this member lost are simply not committed (commit() keeps only assigned
        # ones); the new owner re-reads those few messages, and handlers are idempotent.
        self._consumer.subscribe(list(self.handlers))
        log.info("consuming %s as group %s", sorted(self.handlers), self.group)
        try:
            while not self._stopping.is_set():
                self._process(self._consumer.poll(timeout_ms=self.poll_timeout_ms))
                self.commit()
        finally:
            self._close()

    def _process(self, polled: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        try:
            for tp, records in polled.items():
                if self._stopping.is_set():
                    break  # what is left stays unhandled, so uncommitted: the next owner reads it
                self._steps[tp.topic].submit(records)
        except Rewind:
            self.stats.transient_failures += 1
            self._seek_first_unhandled(polled)
            self._backoff.wait()
            return
        self._backoff.reset()
        _record_lag(self._consumer, self.group)
        self._halt_rule.check()

    def _mark_handled(self, record: ConsumerRecord) -> None:
        tp, next_offset = TopicPartition(record.topic, record.partition), record.offset + 1
        self._uncommitted[tp] = next_offset
        if self.on_handled is not None:
            self.on_handled(tp, next_offset)

    def _seek_first_unhandled(self, polled: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        assert self._consumer is not None
        for tp, records in polled.items():
            # Past what is handled, in this poll or in an earlier one whose commit failed.
            first_unhandled = max(self._uncommitted.get(tp, 0), records[0].offset)
            if first_unhandled <= records[-1].offset:
                self._consumer.seek(tp, first_unhandled)

    def commit(self) -> None:
        if not self._uncommitted or self._consumer is None:
            return
        assigned = self._consumer.assignment()
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self._uncommitted.items()
                   if tp in assigned}
        try:
            if offsets:
                self._consumer.commit(offsets)
            self._uncommitted.clear()
        except KafkaError as exc:
            # Kept for the next commit; a rebalance in between only means a redelivery, which is idempotent.
            log.warning("offset commit failed: %s", type(exc).__name__)

    def _close(self) -> None:
        if self._consumer is None:
            return
        self.commit()
        self._consumer.close()
        log.info("consumer %s closed: %s", self.group, self.stats)


def _record_lag(consumer: KafkaConsumer, group: str) -> None:
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is not None:
            CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(max(end - consumer.position(tp), 0))


def wait_for_broker(settings: Settings, timeout_s: float = 120.0) -> None:
    """Wait until the broker answers, then make sure the topics exist."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ensure_topics(settings)
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
