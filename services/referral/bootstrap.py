"""Referral's wiring (services/common/wiring.py): its handlers need a publisher and a clock, nothing else."""
from services.common.wiring import ServiceWiring

from services.referral import handlers
from services.referral.adapters.models import OUTBOX_DOCUMENTS

WIRING = ServiceWiring("referral", handlers.COMMAND_HANDLERS, handlers.EVENT_HANDLERS,
                       outbox_documents=OUTBOX_DOCUMENTS)
bootstrap, event_handlers, worker = WIRING.bootstrap, WIRING.event_handlers, WIRING.worker
