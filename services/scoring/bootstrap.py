"""Scoring's wiring (services/common/wiring.py): its handlers need a publisher and a clock, nothing else."""
from services.common.wiring import ServiceWiring

from services.scoring import handlers
from services.scoring.adapters.models import ScoredExitInterview, ScoredSession

WIRING = ServiceWiring("scoring", handlers.COMMAND_HANDLERS, handlers.EVENT_HANDLERS,
                       outbox_documents=(ScoredSession, ScoredExitInterview))
bootstrap, event_handlers, worker = WIRING.bootstrap, WIRING.event_handlers, WIRING.worker
