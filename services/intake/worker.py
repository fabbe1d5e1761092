"""Intake's worker: the outbox relay for events its API could not publish itself.

`python -m services.intake.worker`
"""
from services.common.worker import run_outbox_relay

from .models import OUTBOX_DOCUMENTS

if __name__ == "__main__":
    run_outbox_relay("intake", OUTBOX_DOCUMENTS)
