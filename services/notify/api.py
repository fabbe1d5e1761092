from __future__ import annotations

from flask_smorest import Blueprint

from services.common.schemas import QuerySetPage

from .models import InboxItem
from .schemas import InboxItemSchema, InboxQuerySchema

inbox = Blueprint("inbox", __name__, url_prefix="/api/inbox", description="A counselor's notifications")


@inbox.get("")
@inbox.arguments(InboxQuerySchema, location="query")
@inbox.response(200, InboxItemSchema(many=True))
@inbox.paginate(QuerySetPage)
def list_inbox(query):
    """Newest first."""
    return InboxItem.objects(recipient_id=query["counselor_id"]).order_by("-created_at")
