"""Find events on a topic (read with deploy.local.topic_reader) and put events on it."""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from kafka import KafkaProducer

from deploy.local.topic_reader import read_topic
from services.common.config import Settings
from services.common.events import Event
from services.common.kafka import EventProducer


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
            producer.publish(event, key=event.payload.client_id)
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
