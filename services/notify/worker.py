"""Notify's worker: `python -m services.notify.worker`.

Two loops in one process: the ConsumerLoop turns events into notifications (and keeps the recipient read
model), and the dispatcher thread sends due deliveries and escalates overdue alerts. Both only read and
write the database, so either can be restarted at any moment and resume from what it finds there.
"""
from __future__ import annotations

import logging
import signal
import threading

from services.common import mongo
from services.common.config import Settings
from services.common.kafka import ConsumerLoop, EventProducer, wait_for_broker
from services.common.logs import configure_logging

from .config import notify_settings
from .delivery import Dispatcher
from .handlers import EVENT_HANDLERS

log = logging.getLogger(__name__)


def main() -> None:
    settings = Settings.load("notify")
    configure_logging("notify", settings.log_level)
    mongo.connect(settings)
    dispatcher = Dispatcher(settings, notify_settings())
    sender = threading.Thread(target=dispatcher.run, name="notify-dispatcher")
    sender.start()
    producer = None
    try:
        wait_for_broker(settings)
        producer = EventProducer(settings)
        loop = ConsumerLoop(settings, group="notify", handlers=EVENT_HANDLERS, producer=producer)

        def stop(*_: object) -> None:
            loop.stop()
            dispatcher.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        loop.run()
    finally:
        dispatcher.stop()
        sender.join(30)
        if producer is not None:
            producer.close()
        log.info("notify worker stopped")


if __name__ == "__main__":
    main()
