"""Scoring's worker: consumes feedback and exit interviews, publishes scores and alerts (with an outbox relay
as a backstop for events a crash left pending). `python -m services.scoring.entrypoints.worker`"""
from services.common.worker import Worker, run

from services.scoring.handlers import EVENT_HANDLERS
from services.scoring.adapters.models import ExitInterviewScore, SessionScore

if __name__ == "__main__":
    run(Worker("scoring", handlers=EVENT_HANDLERS, outbox_documents=[SessionScore, ExitInterviewScore]))
