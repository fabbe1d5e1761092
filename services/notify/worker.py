"""Notify's worker: turns alerts into inbox items. `python -m services.notify.worker`"""
from services.common.worker import run_consumer

from .handlers import EVENT_HANDLERS

if __name__ == "__main__":
    run_consumer("notify", EVENT_HANDLERS)
