"""Referral's worker: consumes counselors, intakes, scores, alerts and exit interviews, publishes
recommendations, and relays the decisions its API could not publish itself (outbox relay in the same
process). `python -m services.referral.entrypoints.worker`"""
from services.common.worker import run

from services.referral.bootstrap import worker

if __name__ == "__main__":
    run(worker())
