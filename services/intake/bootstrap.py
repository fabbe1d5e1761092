"""Intake's wiring (services/common/wiring.py): its handlers need a publisher and a clock; its worker runs
the migration of the e-mail index before it starts."""
from services.common.wiring import ServiceWiring

from services.intake import handlers
from services.intake.adapters.models import OUTBOX_DOCUMENTS, drop_global_email_index

WIRING = ServiceWiring("intake", handlers.COMMAND_HANDLERS, handlers.EVENT_HANDLERS,
                       outbox_documents=OUTBOX_DOCUMENTS, migrations=(drop_global_email_index,))
bootstrap, event_handlers, worker = WIRING.bootstrap, WIRING.event_handlers, WIRING.worker
