from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from services.common import mongo
from services.common.kafka import ConsumerLoop, EventProducer


def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return consumer.end_offsets(partitions)
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {tp: meta.offset for tp, meta in admin.list_group_offsets({group: None})[group].items()}
    except KafkaError:  # e.g. the coordinator is still being elected on a fresh broker: nothing yet
        return {}
    finally:
        admin.close()


@pytest.fixture
def intake_app(settings_for):
    """Intake's Flask app on this test's database; its Kafka clients are closed after the test."""
    from services.intake.entrypoints.app import create_app  # imported here: only intake's tests need it
    apps = []

    def make(**overrides):
        settings = settings_for("intake", **overrides)
        app = create_app({"kafka_bootstrap": settings.kafka_bootstrap, "mongo_uri": settings.mongo_uri,
                          "db_prefix": settings.db_prefix, **overrides})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["rapport.kafka"].close()


@pytest.fixture
def notify(settings_for):
    """Notify's Flask app on this test's database; its Kafka clients are closed after the test."""
    from services.notify.entrypoints.app import create_app  # imported here: only notify's tests need it
    settings = settings_for("notify")
    app = create_app({"kafka_bootstrap": settings.kafka_bootstrap, "mongo_uri": settings.mongo_uri,
                      "db_prefix": settings.db_prefix})
    yield app
    app.extensions["rapport.kafka"].close()


@pytest.fixture
def org(unique):
    """A fresh organisation id (intake's tests use the richer `org` of test_intake_api, which overrides this)."""
    return f"o{unique}"


@pytest.fixture
def run_loop(components, settings_for):
    """Run a ConsumerLoop in a thread until its group has committed everything now on its topics."""
    producers = []

    def run(service: str, group: str, handlers, timeout_s: float = 60.0, **overrides) -> ConsumerLoop:
        settings = settings_for(service, **overrides)
        mongo.connect(settings)
        producer = EventProducer(settings)
        producers.append(producer)
        loop = ConsumerLoop(settings, group=group, handlers=handlers, producer=producer, poll_timeout_ms=200)
        targets = {tp: end for topic in handlers for tp, end in end_offsets(components.kafka_bootstrap,
                                                                             topic).items()}
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                committed = committed_offsets(components.kafka_bootstrap, group)
                if all(committed.get(tp, 0) >= end for tp, end in targets.items()):
                    return loop
                if time.monotonic() > deadline or not thread.is_alive():
                    raise TimeoutError(f"group {group} did not reach {targets}; committed {committed}")
                time.sleep(0.2)
        finally:
            loop.stop()
            thread.join(30)
            assert not thread.is_alive(), "the consumer loop did not stop"

    yield run
    for producer in producers:
        producer.close()
