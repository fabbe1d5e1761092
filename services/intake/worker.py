"""Intake's worker: consumes `referral.decided` (an accepted referral reassigns the client) and runs the
outbox relay for events the API could not publish itself, in one process.

`python -m services.intake.worker`
"""
from __future__ import annotations

import logging
import signal
import threading

from services.common import mongo
from services.common.config import Settings
from services.common.kafka import ConsumerLoop, EventProducer, wait_for_broker
from services.common.logs import configure_logging
from services.common.outbox import OutboxRelay

from .handlers import EVENT_HANDLERS
from .models import OUTBOX_DOCUMENTS

log = logging.getLogger(__name__)
SERVICE = "intake"


def main() -> None:
    settings = Settings.load(SERVICE)
    configure_logging(SERVICE, settings.log_level)
    mongo.connect(settings)
    wait_for_broker(settings)
    producer = EventProducer(settings)  # thread-safe: shared by the relay and the consumer
    relay = OutboxRelay(OUTBOX_DOCUMENTS, producer.send, settings.outbox_grace_s, settings.outbox_poll_s)
    loop = ConsumerLoop(settings, group=SERVICE, handlers=EVENT_HANDLERS, producer=producer)

    def stop(*_: object) -> None:
        loop.stop()
        relay.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    relay_thread = threading.Thread(target=relay.run, name="outbox-relay", daemon=True)
    relay_thread.start()
    log.info("outbox relay started for %s", [c.__name__ for c in OUTBOX_DOCUMENTS])
    try:
        loop.run()  # returns once stopped, after committing what it handled
    finally:
        relay.stop()
        relay_thread.join(30)
        producer.close()


if __name__ == "__main__":
    main()
