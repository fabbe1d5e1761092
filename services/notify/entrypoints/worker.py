"""Notify's worker: `python -m services.notify.entrypoints.worker`.

One process, three threads (services.common.worker.Worker): the ConsumerLoop turns events into notifications
and keeps the recipient read model; the dispatcher, a periodic task, sends due deliveries and escalates
overdue alerts; the outbox relay publishes acknowledgements the API could not. Both work only from what the database says, so either may be killed at any moment and
resumes where it stopped.
"""
from __future__ import annotations

from services.common.config import Settings
from services.common.worker import PeriodicTask, Worker, run

from services.notify.adapters.config import notify_settings
from services.notify.delivery import Dispatcher
from services.notify.handlers import EVENT_HANDLERS
from services.notify.adapters.models import AlertAcknowledgement


def build_worker(settings: Settings | None = None) -> Worker:
    settings = settings or Settings.load("notify")
    config = notify_settings()
    dispatcher = Dispatcher(settings, config)
    return Worker("notify", handlers=EVENT_HANDLERS, settings=settings, outbox_documents=[AlertAcknowledgement],
                  tasks=[PeriodicTask("dispatcher", config.dispatch_poll_s, dispatcher.run_once)])


if __name__ == "__main__":
    run(build_worker())
