"""Referral's worker: consumes counselors, intakes, scores, alerts and exit interviews, publishes
recommendations, and relays the decisions its API could not publish itself (outbox relay in the same
process). `python -m services.referral.entrypoints.worker`"""
from services.common.worker import Worker, run

from services.referral.handlers import EVENT_HANDLERS
from services.referral.adapters.models import OUTBOX_DOCUMENTS

if __name__ == "__main__":
    run(Worker("referral", handlers=EVENT_HANDLERS, outbox_documents=OUTBOX_DOCUMENTS))
