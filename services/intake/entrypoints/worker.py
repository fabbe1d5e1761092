"""Intake's worker: consumes `referral.decided` (an accepted referral reassigns the client) and runs the
outbox relay for events the API could not publish itself, in one process.

`python -m services.intake.entrypoints.worker`
"""
from services.common.worker import Worker, run

from services.intake.handlers import EVENT_HANDLERS
from services.intake.adapters.models import OUTBOX_DOCUMENTS, drop_global_email_index

if __name__ == "__main__":
    run(Worker("intake", handlers=EVENT_HANDLERS, outbox_documents=OUTBOX_DOCUMENTS,
               migrations=[drop_global_email_index]))
