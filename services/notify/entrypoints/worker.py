"""Notify's worker: `python -m services.notify.entrypoints.worker`.

One process, three threads (services.common.worker.Worker): the consumer loop turns events into notifications
and keeps the recipient read model; the dispatcher, a periodic task, sends due deliveries and escalates
overdue alerts; the outbox relay publishes acknowledgements the API could not. All work only from what the
database says, so any may be killed at any moment and resumes where it stopped.
"""
from services.common.worker import run

from services.notify.bootstrap import worker

if __name__ == "__main__":
    run(worker())
