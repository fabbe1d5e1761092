"""Read what is on a topic, from the beginning to its current end, without a consumer group; put events on it."""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from services.common.config import Settings
from services.common.events import Event
from services.common.kafka import EventProducer


def read_topic(bootstrap: str, topic: str, timeout_s: float = 20.0) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s}s")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def events_on(bootstrap: str, topic: str, where: Callable[[dict], bool]) -> list[dict]:
    """The decoded events on a topic that satisfy `where` (records that are not JSON objects are skipped)."""
    events = []
    for record in read_topic(bootstrap, topic):
        try:
            event = json.loads(record.value)
        except ValueError:
            continue
        if isinstance(event, dict) and where(event):
            events.append(event)
    return events


def publish_all(settings: Settings, events: list[Event]) -> None:
    """Publish events keyed by client id, as intake does, and wait for the broker to have each."""
    producer = EventProducer(settings)
    try:
        for event in events:
            producer.publish(event, key=event.payload["client_id"])
    finally:
        producer.close()


def send_raw(bootstrap: str, topic: str, key: str, value: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topic, key=key.encode(), value=value).get(timeout=10)
    finally:
        producer.close()


def wait_for(probe: Callable[[], Any], timeout_s: float = 30.0, interval_s: float = 0.2) -> Any:
    """Poll `probe` until it returns something truthy; fail with TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)
