"""Scoring's worker: consumes feedback and exit interviews, publishes scores and alerts (with an outbox relay
as a backstop for events a crash left pending). `python -m services.scoring.entrypoints.worker`"""
from services.common.worker import run

from services.scoring.bootstrap import worker

if __name__ == "__main__":
    run(worker())
