"""Intake's worker: consumes `referral.decided` (an accepted referral reassigns the client), runs the
outbox relay for events the API could not publish itself and reminds clients of unanswered links, in one
process.

`python -m services.intake.entrypoints.worker`
"""
from services.common.worker import run

from services.intake.bootstrap import worker

if __name__ == "__main__":
    run(worker())
