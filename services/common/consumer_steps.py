"""What happens to a partition's records between the consumer loop's poll and its commit, as small steps in
the spirit of getsentry/arroyo's processing strategies: each does one thing and hands on to the next, and the
loop (kafka.ConsumerLoop) knows nothing of them but `submit`.

Each topic gets its steps once, from the kind of handler it is listed with (`steps_by_topic`):

    a BatchHandler's topic:  HandleTogether, falling back to OneByOne for records it cannot take whole
    a Handler's topic:       OneByOne
    OneByOne, per record:    DecodeOrDeadLetter → Traced → RetryThenDeadLetter → HandleOnce (a Handler, with
                             the group's processed-event record) | HandleAlone (a BatchHandler, one event)

A step tells the loop about progress in two ways only: it calls `handled(record)` once it is done with a
record (processed, a duplicate or dead-lettered), and the loop commits nothing else; and it raises Rewind on
a transient failure (database or broker unreachable), after which the loop seeks back to the first record not
handled and tries again after a backoff, so no message is ever skipped.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Literal, Mapping, Protocol, Sequence

from kafka.errors import KafkaError
from pymongo.errors import ConnectionFailure

from .config import Settings
from .events import CrossTenantEvent, Event, InvalidEvent, current_correlation_id, decode_event, dlq_topic
from .metrics import CONSUMER_HALTED, EVENTS_CONSUMED, HANDLER_LATENCY
from .mongo import ProcessedEvent
from .outbox import Publish, PublishAll

if TYPE_CHECKING:
    from kafka.consumer.fetcher import ConsumerRecord

    from .kafka import EventProducer

log = logging.getLogger(__name__)

DLQ_WINDOW = 100
DLQ_MIN_SAMPLE = 20
# Failures that say nothing about the message itself: retried for as long as they last, never dead-lettered.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionFailure, KafkaError)

# The label values of rapport_events_consumed_total; only "dead_lettered" counts toward the halt rule.
Outcome = Literal["processed", "duplicate", "dead_lettered", "refused"]

# A handler gets the event and a way to publish (topic, key, value) what it derives from it.
Handler = Callable[[Event, Publish], None]
# Told by a step that it is done with a record, and so with every record before it in its partition.
MarkHandled = Callable[["ConsumerRecord"], None]


@dataclass(frozen=True)
class BatchHandler:
    """A handler for a busy topic: it takes all the events of one partition that a poll returned, in order,
    and publishes what it derives with one wait for the broker (`EventProducer.send_all`).

    The loop keeps no processed-event record for it (two more round trips per event), so it must be
    idempotent by itself: everything it writes has an id derived from the event, and it looks up what is
    stored before deriving anything again. When a batch fails with anything but a transient error, the loop
    hands it the events one at a time, so that only the event at fault is retried and dead-lettered.
    """

    handle: Callable[[list[Event], PublishAll], None]

    def __call__(self, event: Event, publish: Publish) -> None:
        """One event on its own, as a plain Handler takes it, so that a service's table of handlers can be
        called alike for every topic. The loop itself uses `handle` with one wait for all that it publishes."""
        self.handle([event], lambda messages: [publish(*message) for message in messages])


@dataclass
class ConsumerStats:
    processed: int = 0
    skipped_duplicates: int = 0
    dead_lettered: int = 0
    transient_failures: int = 0


class Rewind(Exception):
    """A transient failure: the loop stops this poll's work, seeks back to the first record not handled and
    tries again later."""


class Backoff:
    """The wait after each transient failure in a row, doubling from `first_s` up to `max_s`; a shutdown cuts
    it short."""

    def __init__(self, first_s: float, max_s: float, stopping: threading.Event):
        self._first_s, self._max_s, self._stopping = first_s, max_s, stopping
        self._current_s = 0.0

    def wait(self) -> None:
        self._current_s = min(max(self._current_s * 2, self._first_s), self._max_s)
        self._stopping.wait(self._current_s)

    def reset(self) -> None:
        self._current_s = 0.0


def decode(record: ConsumerRecord) -> Event:
    """The record's event; InvalidEvent for bad JSON, a schema violation or an event on the wrong topic."""
    event = decode_event(record.value)
    if event.type != record.topic:
        raise InvalidEvent(f"event of type {event.type} on topic {record.topic}")
    return event


class DeadLetterQueue:
    """Sends a record that can never be processed, unchanged, to `<topic>.dlq` with its origin and the error in
    headers. Not reaching the broker is transient: the record is tried again, never dropped."""

    def __init__(self, group: str, send: Callable[[str, str | None, bytes, list[tuple[str, bytes]]], None],
                 stats: ConsumerStats):
        self._group, self._send, self._stats = group, send, stats

    def put(self, record: ConsumerRecord, error: BaseException) -> None:
        # Headers carry the error's class and message only; messages here name fields, never values.
        headers = [
            ("origin-topic", record.topic.encode()),
            ("origin-partition", str(record.partition).encode()),
            ("origin-offset", str(record.offset).encode()),
            ("consumer-group", self._group.encode()),
            ("error-class", type(error).__name__.encode()),
            ("error-message", _safe_error_message(error).encode()),
            ("failed-at", datetime.now(timezone.utc).isoformat().encode()),
        ]
        try:
            self._send(dlq_topic(record.topic), record.key.decode() if record.key else None,
                       record.value or b"", headers)
        except KafkaError as exc:
            raise Rewind() from exc
        self._stats.dead_lettered += 1
        log.error("dead-lettered %s@%s:%s (%s)", record.topic, record.partition, record.offset,
                  type(error).__name__)


def _safe_error_message(error: BaseException) -> str:
    if isinstance(error, InvalidEvent):
        return str(error)[:500]
    # A handler's exception text may quote data; the class name and the handler's location are enough.
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}" if tb else ""
    return f"{type(error).__name__}{where}"


class HaltOnDeadLetters:
    """Stops the consumer when most of the latest messages went to the DLQ: something is broken (a bad deploy,
    an incompatible producer), and dead-lettering a whole topic would only move the problem.

    Events refused for crossing tenants ("refused") do not count: that is the boundary holding, and one
    organisation's bad data must not stop every other organisation's events. Checked once per poll, by the
    loop, so that a poll's records are all handled (and committed) before it halts.
    """

    def __init__(self, group: str, max_share: float, stop: Callable[[], None]):
        self._group, self._max_share, self._stop = group, max_share, stop
        self._latest: deque[Outcome] = deque(maxlen=DLQ_WINDOW)
        self.halted = False

    def record(self, outcome: Outcome, count: int = 1) -> None:
        self._latest.extend([outcome] * count)

    def check(self) -> None:
        if len(self._latest) < DLQ_MIN_SAMPLE:
            return
        share = self._latest.count("dead_lettered") / len(self._latest)
        if share > self._max_share:
            self.halted = True
            CONSUMER_HALTED.labels(self._group).set(1)
            log.critical("consumer %s halted: %.0f%% of the last %d messages were dead-lettered",
                         self._group, share * 100, len(self._latest))
            self._stop()


class EventStep(Protocol):
    def submit(self, record: ConsumerRecord, event: Event) -> Outcome: ...


class HandleOnce:
    """A plain Handler, run once per consumer group and event: the group's processed-event record, written
    after the handler, says whether a redelivered event was handled already."""

    def __init__(self, group: str, handler: Handler, publish: Publish, stats: ConsumerStats):
        self._group, self._handler, self._publish, self._stats = group, handler, publish, stats

    def submit(self, record: ConsumerRecord, event: Event) -> Outcome:
        if ProcessedEvent.seen(self._group, event.event_id):
            self._stats.skipped_duplicates += 1
            return "duplicate"
        self._handler(event, self._publish)
        ProcessedEvent.mark(self._group, event)
        self._stats.processed += 1
        return "processed"


class HandleAlone:
    """A BatchHandler given one event (HandleTogether's fallback): idempotent by itself, so without a
    processed-event record, and with one wait for all that the event derives."""

    def __init__(self, handler: BatchHandler, publish_all: PublishAll, stats: ConsumerStats):
        self._handler, self._publish_all, self._stats = handler, publish_all, stats

    def submit(self, record: ConsumerRecord, event: Event) -> Outcome:
        self._handler.handle([event], self._publish_all)
        self._stats.processed += 1
        return "processed"


class RetryThenDeadLetter:
    """The dead-letter policy for a handler's failures. The handler refusing the event (InvalidEvent) sends it
    to the DLQ at once, as "refused" when it crosses tenants (CrossTenantEvent); a transient error rewinds;
    anything else (a bug, data the handler cannot take) is tried `max_attempts` times with a growing pause,
    then dead-lettered, so that one bad event holds its partition up for seconds, not for ever."""

    def __init__(self, next_step: EventStep, dead_letters: DeadLetterQueue, max_attempts: int, backoff_s: float,
                 stopping: threading.Event):
        self._next, self._dead_letters = next_step, dead_letters
        self._max_attempts, self._backoff_s, self._stopping = max_attempts, backoff_s, stopping

    def submit(self, record: ConsumerRecord, event: Event) -> Outcome:
        attempt = 0
        while True:
            try:
                return self._next.submit(record, event)
            except InvalidEvent as exc:  # the handler found the event unusable: retrying cannot help
                self._dead_letters.put(record, exc)
                return "refused" if isinstance(exc, CrossTenantEvent) else "dead_lettered"
            except TRANSIENT_ERRORS as exc:
                log.warning("transient failure on %s@%s:%s: %s", record.topic, record.partition, record.offset,
                            type(exc).__name__)
                raise Rewind() from exc
            except Exception as exc:
                attempt += 1
                log.warning("handler failed (attempt %d/%d) on %s@%s:%s: %s", attempt, self._max_attempts,
                            record.topic, record.partition, record.offset, type(exc).__name__)
                if attempt >= self._max_attempts:
                    self._dead_letters.put(record, exc)
                    return "dead_lettered"
                self._stopping.wait(self._backoff_s * attempt)


class Traced:
    """Runs the next step under the event's correlation id, so that every log line beneath carries it, and
    times it, retries included: the latency a message's partition sees."""

    def __init__(self, group: str, next_step: EventStep):
        self._group, self._next = group, next_step

    def submit(self, record: ConsumerRecord, event: Event) -> Outcome:
        token = current_correlation_id.set(event.correlation_id)
        started = time.perf_counter()
        try:
            outcome = self._next.submit(record, event)
        finally:
            current_correlation_id.reset(token)
        HANDLER_LATENCY.labels(self._group, record.topic).observe(time.perf_counter() - started)
        return outcome


class DecodeOrDeadLetter:
    """Bad JSON, a schema-invalid event or one on the wrong topic goes to the DLQ at once: no retry makes it
    valid. A valid event goes on to the next step."""

    def __init__(self, next_step: EventStep, dead_letters: DeadLetterQueue):
        self._next, self._dead_letters = next_step, dead_letters

    def submit(self, record: ConsumerRecord) -> Outcome:
        try:
            event = decode(record)
        except InvalidEvent as exc:
            self._dead_letters.put(record, exc)
            return "dead_lettered"
        return self._next.submit(record, event)


class PartitionStep(Protocol):
    def submit(self, records: Sequence[ConsumerRecord]) -> None: ...


class OneByOne:
    """A partition's records one at a time, each marked handled as soon as its outcome is known. On shutdown it
    stops between records: the rest stay unhandled, so uncommitted, and are read again by the next owner."""

    def __init__(self, group: str, first_step: DecodeOrDeadLetter, halt_rule: HaltOnDeadLetters,
                 handled: MarkHandled, stopping: threading.Event):
        self._group, self._first, self._halt_rule = group, first_step, halt_rule
        self._handled, self._stopping = handled, stopping

    def submit(self, records: Sequence[ConsumerRecord]) -> None:
        for record in records:
            if self._stopping.is_set():
                return
            outcome = self._first.submit(record)
            EVENTS_CONSUMED.labels(self._group, record.topic, outcome).inc()
            self._halt_rule.record(outcome)
            self._handled(record)


class HandleTogether:
    """A BatchHandler's topic: a partition's records in one call, with one wait for the broker. What the batch
    cannot take as a whole goes to OneByOne, so that only the record at fault is retried and dead-lettered:
    a record that does not decode, or a failure that is not transient. A transient one rewinds the batch."""

    def __init__(self, group: str, handler: BatchHandler, publish_all: PublishAll, stats: ConsumerStats,
                 halt_rule: HaltOnDeadLetters, handled: MarkHandled, one_by_one: OneByOne):
        self._group, self._handler, self._publish_all, self._stats = group, handler, publish_all, stats
        self._halt_rule, self._handled, self._one_by_one = halt_rule, handled, one_by_one

    def submit(self, records: Sequence[ConsumerRecord]) -> None:
        first = records[0]
        try:
            events = [decode(record) for record in records]
        except InvalidEvent:
            self._one_by_one.submit(records)
            return
        started = time.perf_counter()
        try:
            self._handler.handle(events, self._publish_all)
        except TRANSIENT_ERRORS as exc:
            log.warning("transient failure on a batch of %d from %s:%s: %s", len(records), first.topic,
                        first.partition, type(exc).__name__)
            raise Rewind() from exc
        except Exception as exc:
            log.warning("batch of %d from %s:%s failed (%s); handling its events one by one", len(records),
                        first.topic, first.partition, type(exc).__name__)
            self._one_by_one.submit(records)
            return
        share = (time.perf_counter() - started) / len(events)
        for _ in events:  # the latency histogram counts events: each gets its share of the batch's time
            HANDLER_LATENCY.labels(self._group, first.topic).observe(share)
        EVENTS_CONSUMED.labels(self._group, first.topic, "processed").inc(len(events))
        self._halt_rule.record("processed", len(events))
        self._stats.processed += len(events)
        self._handled(records[-1])


def steps_by_topic(handlers: Mapping[str, Handler | BatchHandler], *, settings: Settings, group: str,
                   producer: EventProducer, stats: ConsumerStats, halt_rule: HaltOnDeadLetters,
                   handled: MarkHandled, stopping: threading.Event) -> dict[str, PartitionStep]:
    """Each topic's steps, chosen once from the kind of handler it is listed with."""
    dead_letters = DeadLetterQueue(group, producer.send, stats)

    def one_by_one(handle: EventStep) -> OneByOne:
        retried = RetryThenDeadLetter(handle, dead_letters, settings.consumer_max_attempts,
                                      settings.consumer_retry_backoff_s, stopping)
        return OneByOne(group, DecodeOrDeadLetter(Traced(group, retried), dead_letters), halt_rule, handled,
                        stopping)

    steps: dict[str, PartitionStep] = {}
    for topic, handler in handlers.items():
        if isinstance(handler, BatchHandler):
            fallback = one_by_one(HandleAlone(handler, producer.send_all, stats))
            steps[topic] = HandleTogether(group, handler, producer.send_all, stats, halt_rule, handled,
                                          fallback)
        else:
            steps[topic] = one_by_one(HandleOnce(group, handler, producer.send, stats))
    return steps
