"""Scoring's worker: consumes feedback, publishes scores and alerts. `python -m services.scoring.worker`"""
from services.common.worker import run_consumer

from .handlers import EVENT_HANDLERS

if __name__ == "__main__":
    run_consumer("scoring", EVENT_HANDLERS)
