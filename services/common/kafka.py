"""Kafka plumbing (kafka-python 3.0): topic set-up, a producer that reports failures, and the consumer loop.

The consumer loop follows the at-least-once discipline: an offset is committed only after its message was
fully handled (or dead-lettered), handlers are idempotent by event id, a transient failure (database or
broker unreachable) rewinds and retries with backoff without ever skipping a message, and a message that
can never be processed goes to `<topic>.dlq` with its origin in headers while the loop goes on.
"""
from __future__ import annotations

import logging
from collections import deque
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Mapping

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata
from pymongo.errors import ConnectionFailure

from .config import Settings
from .events import (CrossTenantEvent, Event, InvalidEvent, all_topics, current_correlation_id, decode_event,
                     dlq_topic, encode_event)
from .metrics import CONSUMER_HALTED, CONSUMER_LAG, EVENTS_CONSUMED, EVENTS_PUBLISHED, HANDLER_LATENCY
from .mongo import ProcessedEvent

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0
DLQ_WINDOW = 100
DLQ_MIN_SAMPLE = 20
# Failures that say nothing about the message itself: retried for as long as they last, never dead-lettered.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionFailure, KafkaError)


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


# A handler gets the event and a way to publish (topic, key, value) what it derives from it.
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


Handler = Callable[[Event, Callable[[str, str, bytes], None]], None]


@dataclass(frozen=True)
class BatchHandler:
    """A handler for a busy topic: it takes all the events of one partition that a poll returned, in order,
    and publishes what it derives with one wait for the broker (`EventProducer.send_all`).

    The loop keeps no processed-event record for it (two more round trips per event), so it must be
    idempotent by itself: everything it writes has an id derived from the event, and it looks up what is
    stored before deriving anything again. When a batch fails with anything but a transient error, the loop
    hands it the events one at a time, so that only the event at fault is retried and dead-lettered.
    """

    handle: Callable[[list[Event], Callable[[list[tuple[str, str, bytes]]], None]], None]

    def __call__(self, event: Event, publish: Callable[[str, str, bytes], None]) -> None:
        """One event on its own, as a plain Handler takes it, so that a service's table of handlers can be
        called alike for every topic. The loop itself uses `handle` with one wait for all that it publishes."""
        self.handle([event], lambda messages: [publish(*message) for message in messages])


@dataclass
class ConsumerStats:
    processed: int = 0
    skipped_duplicates: int = 0
    dead_lettered: int = 0
    transient_failures: int = 0


class _Rewind(Exception):
    """A transient failure: stop this batch, seek back to the failed message and try it again later."""


@dataclass
class ConsumerLoop:
    """Consume `handlers`' topics as consumer group `group` until stopped (SIGTERM/SIGINT or stop())."""

    settings: Settings
    group: str
    handlers: Mapping[str, Handler | BatchHandler]
    producer: EventProducer
    poll_timeout_ms: int = 500
    max_records: int = 500
    stats: ConsumerStats = field(default_factory=ConsumerStats)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _consumer: KafkaConsumer | None = None
    # Offsets handled but not yet committed, per partition: the next offset to read.
    _uncommitted: dict[TopicPartition, int] = field(default_factory=dict)
    # Outcomes of the latest messages, for the dead-letter share that halts the consumer.
    _recent_outcomes: deque = field(default_factory=lambda: deque(maxlen=DLQ_WINDOW))
    halted: bool = False
    _catch_up_targets: dict[TopicPartition, int] | None = None
    # The next offset to read per partition once handled (committed or not): replay's progress.
    _handled: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Consuming: started, not stopped and not halted by too many dead letters."""
        return self._consumer is not None and not self._stopping.is_set() and not self.halted

    def stop(self, *_: object) -> None:
        self._stopping.set()

    def stop_when_caught_up(self, targets: Mapping[TopicPartition, int]) -> None:
        """Make run() return once every partition in `targets` is handled up to the given offset."""
        self._catch_up_targets = dict(targets)

    def _caught_up(self) -> bool:
        targets = self._catch_up_targets
        return targets is not None and all(self._handled.get(tp, 0) >= end for tp, end in targets.items())

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
        backoff = 0.0
        try:
            while not self._stopping.is_set():
                batch = self._consumer.poll(timeout_ms=self.poll_timeout_ms)
                try:
                    self._process_batch(batch)
                    backoff = 0.0
                    self._record_lag()
                    self._halt_if_mostly_dead_letters()
                    if self._caught_up():
                        self.stop()
                except _Rewind:
                    self.stats.transient_failures += 1
                    backoff = min(max(backoff * 2, self.settings.consumer_retry_backoff_s),
                                  self.settings.consumer_max_backoff_s)
                    self._stopping.wait(backoff)
                self.commit()
        finally:
            self._close()

    def _process_batch(self, batch: Mapping[TopicPartition, list]) -> None:
        for tp, records in batch.items():
            if self._stopping.is_set():
                self._seek_unhandled(batch, tp, records[0].offset)
                return
            handler = self.handlers[tp.topic]
            if isinstance(handler, BatchHandler) and self._process_together(batch, tp, records, handler):
                self._uncommitted[tp] = self._handled[tp] = records[-1].offset + 1
                continue
            for record in records:
                if self._stopping.is_set():
                    # Shutting down between messages: rewind the rest so nothing read is skipped.
                    self._seek_unhandled(batch, tp, record.offset)
                    return
                try:
                    self._process(record)
                except _Rewind:
                    self._seek_unhandled(batch, tp, record.offset)
                    raise
                self._uncommitted[tp] = self._handled[tp] = record.offset + 1

    def _process_together(self, batch: Mapping[TopicPartition, list], tp: TopicPartition, records: list,
                          handler: BatchHandler) -> bool:
        """Hand a partition's records to a batch handler at once; False leaves them to the one-by-one path
        (a record that does not decode, or a batch that failed for a reason other than a transient one)."""
        try:
            events = [self._decode(record) for record in records]
        except InvalidEvent:
            return False
        started = time.perf_counter()
        try:
            handler.handle(events, self.producer.send_all)
        except TRANSIENT_ERRORS as exc:
            log.warning("transient failure on a batch of %d from %s:%s: %s", len(records), tp.topic,
                        tp.partition, type(exc).__name__)
            self._seek_unhandled(batch, tp, records[0].offset)
            raise _Rewind() from exc
        except Exception as exc:
            log.warning("batch of %d from %s:%s failed (%s); handling its events one by one", len(records),
                        tp.topic, tp.partition, type(exc).__name__)
            return False
        share = (time.perf_counter() - started) / len(events)
        for _ in events:  # the latency histogram counts events: each gets its share of the batch's time
            HANDLER_LATENCY.labels(self.group, tp.topic).observe(share)
        EVENTS_CONSUMED.labels(self.group, tp.topic, "processed").inc(len(events))
        self._recent_outcomes.extend(["processed"] * len(events))
        self.stats.processed += len(events)
        return True

    def _record_lag(self) -> None:
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            end = self._consumer.highwater(tp)
            if end is not None:
                CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(
                    max(end - self._consumer.position(tp), 0))

    def _halt_if_mostly_dead_letters(self) -> None:
        """Stop consuming when most recent messages went to the DLQ: something is broken (a bad deploy,
        an incompatible producer), and dead-lettering a whole topic would only move the problem."""
        outcomes = self._recent_outcomes
        if len(outcomes) < DLQ_MIN_SAMPLE:
            return
        share = outcomes.count("dead_lettered") / len(outcomes)
        if share > self.settings.consumer_dlq_halt_share:
            self.halted = True
            CONSUMER_HALTED.labels(self.group).set(1)
            log.critical("consumer %s halted: %.0f%% of the last %d messages were dead-lettered",
                         self.group, share * 100, len(outcomes))
            self.stop()

    def _seek_unhandled(self, batch: Mapping[TopicPartition, list], failed_tp: TopicPartition,
                        failed_offset: int) -> None:
        """Seek every partition of the batch back to its first message not handled yet."""
        assert self._consumer is not None
        for tp, records in batch.items():
            handled_up_to = max(self._uncommitted.get(tp, 0), records[0].offset)
            first_unhandled = failed_offset if tp == failed_tp else handled_up_to
            if first_unhandled <= records[-1].offset:
                self._consumer.seek(tp, first_unhandled)

    @staticmethod
    def _decode(record) -> Event:
        event = decode_event(record.value)
        if event.type != record.topic:
            raise InvalidEvent(f"event of type {event.type} on topic {record.topic}")
        return event

    def _process(self, record) -> None:
        try:
            event = self._decode(record)
        except InvalidEvent as exc:
            self._dead_letter(record, exc)
            EVENTS_CONSUMED.labels(self.group, record.topic, "dead_lettered").inc()
            self._recent_outcomes.append("dead_lettered")
            return
        token = current_correlation_id.set(event.correlation_id)
        started = time.perf_counter()
        try:
            outcome = self._handle(record, event)
        finally:
            current_correlation_id.reset(token)
        HANDLER_LATENCY.labels(self.group, record.topic).observe(time.perf_counter() - started)
        EVENTS_CONSUMED.labels(self.group, record.topic, outcome).inc()
        self._recent_outcomes.append(outcome)

    def _handle(self, record, event: Event) -> str:
        handler = self.handlers[record.topic]
        attempt = 0
        while True:
            try:
                if isinstance(handler, BatchHandler):
                    # Idempotent by itself: no processed-event record. One wait for what the event derives.
                    handler.handle([event], self.producer.send_all)
                    self.stats.processed += 1
                    return "processed"
                if ProcessedEvent.seen(self.group, event.event_id):
                    self.stats.skipped_duplicates += 1
                    return "duplicate"
                handler(event, self.producer.send)
                ProcessedEvent.mark(self.group, event)
                self.stats.processed += 1
                return "processed"
            except InvalidEvent as exc:  # the handler found the event unusable: retrying cannot help
                self._dead_letter(record, exc)
                return "refused" if isinstance(exc, CrossTenantEvent) else "dead_lettered"
            except TRANSIENT_ERRORS as exc:
                log.warning("transient failure on %s@%s:%s: %s", record.topic, record.partition,
                            record.offset, type(exc).__name__)
                raise _Rewind() from exc
            except Exception as exc:  # a handler bug or data it cannot take: retry a few times, then DLQ
                attempt += 1
                log.warning("handler failed (attempt %d/%d) on %s@%s:%s: %s", attempt,
                            self.settings.consumer_max_attempts, record.topic, record.partition,
                            record.offset, type(exc).__name__)
                if attempt >= self.settings.consumer_max_attempts:
                    self._dead_letter(record, exc)
                    return "dead_lettered"
                self._stopping.wait(self.settings.consumer_retry_backoff_s * attempt)

    def _dead_letter(self, record, error: BaseException) -> None:
        # Headers carry the error's class and message only; messages here name fields, never values.
        headers = [
            ("origin-topic", record.topic.encode()),
            ("origin-partition", str(record.partition).encode()),
            ("origin-offset", str(record.offset).encode()),
            ("consumer-group", self.group.encode()),
            ("error-class", type(error).__name__.encode()),
            ("error-message", _safe_error_message(error).encode()),
            ("failed-at", datetime.now(timezone.utc).isoformat().encode()),
        ]
        try:
            self.producer.send(dlq_topic(record.topic), record.key.decode() if record.key else None,
                               record.value or b"", headers)
        except KafkaError as exc:
            raise _Rewind() from exc
        self.stats.dead_lettered += 1
        log.error("dead-lettered %s@%s:%s (%s)", record.topic, record.partition, record.offset,
                  type(error).__name__)

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


def _safe_error_message(error: BaseException) -> str:
    if isinstance(error, InvalidEvent):
        return str(error)[:500]
    # A handler's exception text may quote data; the class name and the handler's location are enough.
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
    return f"{type(error).__name__}{where}"


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
