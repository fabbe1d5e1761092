"""Referral's worker: consumes counselors, intakes, scores, alerts and exit interviews, publishes
recommendations, and relays the decisions the API could not publish itself. `python -m services.referral.worker`

The outbox relay runs in a thread beside the consumer loop, on the same producer (kafka-python's producer
is thread-safe), so the service needs one worker process, as every other service does.
"""
from __future__ import annotations

import threading

from services.common import mongo
from services.common.config import Settings
from services.common.kafka import ConsumerLoop, EventProducer, wait_for_broker
from services.common.logs import configure_logging
from services.common.outbox import OutboxRelay

from .handlers import EVENT_HANDLERS
from .models import OUTBOX_DOCUMENTS

SERVICE = "referral"


def main() -> None:
    settings = Settings.load(SERVICE)
    configure_logging(SERVICE, settings.log_level)
    mongo.connect(settings)
    wait_for_broker(settings)
    producer = EventProducer(settings)
    relay = OutboxRelay(OUTBOX_DOCUMENTS, producer.send, settings.outbox_grace_s, settings.outbox_poll_s)
    relay_thread = threading.Thread(target=relay.run, name="outbox-relay", daemon=True)
    loop = ConsumerLoop(settings, group=SERVICE, handlers=EVENT_HANDLERS, producer=producer)
    loop.install_signal_handlers()  # SIGTERM stops the loop; the relay is stopped right after it
    relay_thread.start()
    try:
        loop.run()
    finally:
        relay.stop()
        relay_thread.join(30)
        producer.close()


if __name__ == "__main__":
    main()
