"""Referral's worker: consumes intakes (and later exit interviews and scores). `python -m services.referral.worker`"""
from services.common.worker import run_consumer

from .handlers import EVENT_HANDLERS

if __name__ == "__main__":
    run_consumer("referral", EVENT_HANDLERS)
