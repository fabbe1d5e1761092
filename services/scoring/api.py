from __future__ import annotations

from flask import abort
from flask_smorest import Blueprint

from services.common.schemas import QuerySetPage

from .models import SessionScore
from .schemas import ScoreQuerySchema, SessionScoreSchema

scores = Blueprint("scores", __name__, url_prefix="/api/scores", description="Alliance scores per session")


@scores.get("")
@scores.arguments(ScoreQuerySchema, location="query")
@scores.response(200, SessionScoreSchema(many=True))
@scores.paginate(QuerySetPage)
def list_scores(query):
    """A client's scored sessions, in session order."""
    return SessionScore.objects(client_id=query["client_id"]).order_by("session_number", "scored_at")


@scores.get("/<score_id>")
@scores.response(200, SessionScoreSchema)
def get_score(score_id):
    return SessionScore.objects(id=score_id).first() or abort(404)
