"""Entrypoints shared by the services' worker processes (`python -m services.<name>.worker`)."""
from __future__ import annotations

import logging
import signal

import mongoengine as me

from . import mongo
from .config import Settings
from .kafka import ConsumerLoop, EventProducer, Handler, wait_for_broker
from .logs import configure_logging
from .outbox import OutboxRelay

log = logging.getLogger(__name__)


def run_consumer(service: str, handlers: dict[str, Handler]) -> None:
    """Consume `handlers`' topics as the service's consumer group until SIGTERM, then commit and close."""
    settings = Settings.load(service)
    configure_logging(service, settings.log_level)
    mongo.connect(settings)
    wait_for_broker(settings)
    producer = EventProducer(settings)
    loop = ConsumerLoop(settings, group=service, handlers=handlers, producer=producer)
    loop.install_signal_handlers()
    try:
        loop.run()
    finally:
        producer.close()


def run_outbox_relay(service: str, document_classes: list[type[me.Document]]) -> None:
    """Publish what the service's API could not publish itself, until SIGTERM."""
    settings = Settings.load(service)
    configure_logging(service, settings.log_level)
    mongo.connect(settings)
    wait_for_broker(settings)
    producer = EventProducer(settings)
    relay = OutboxRelay(document_classes, producer.send, settings.outbox_grace_s, settings.outbox_poll_s)
    signal.signal(signal.SIGTERM, relay.stop)
    signal.signal(signal.SIGINT, relay.stop)
    log.info("outbox relay started for %s", [c.__name__ for c in document_classes])
    try:
        relay.run()
    finally:
        producer.close()
