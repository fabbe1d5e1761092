"""Server-rendered pages: the alliance overview, a trajectory page, and the embeddable SVG chart."""
from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from flask_smorest import abort as api_abort

from services.common.web import require_identity, require_page_identity, signin_redirect

from . import views
from .chart import describe, render_trajectory
from .domain import repair_suggestion
from .models import Alert, Dyad
from .schemas import ChartQuerySchema

pages = Blueprint("pages", __name__, template_folder="templates")
RECENT_ALERTS = 50
MAX_DYADS = 500


@pages.get("/alliance")
def alliance():
    """A counselor's (their clients) or supervisor's (their clinics) overview: recent alerts and clients."""
    identity = require_page_identity(*views.STAFF_ROLES)
    if identity is None:
        return signin_redirect()
    where = views.scope(identity)
    recent = list(Alert.objects(**where).order_by("-raised_at")[:RECENT_ALERTS])
    # Those whose last session was below the cutoff first.
    dyads = list(Dyad.objects(**where).order_by("-below_cutoff", "client_id")[:MAX_DYADS])
    return render_template("alliance.html", alerts=recent, dyads=dyads, suggestion=repair_suggestion)


@pages.get("/alliance/trajectory")
def trajectory_page():
    identity = require_page_identity(*views.STAFF_ROLES)
    if identity is None:
        return signin_redirect()
    query = _chart_query()
    found = views.trajectory(identity, query["client_id"], query.get("counselor_id")) or abort(404)
    return render_template("trajectory.html", trajectory=found, query=query, description=describe(found))


@pages.get("/charts/trajectory.svg")
def trajectory_chart():
    """The trajectory as SVG, for <img>/<object> in any page; 401 without a session (an image cannot follow a
    sign-in redirect)."""
    identity = require_identity(*views.STAFF_ROLES)
    query = _chart_query()
    found = views.trajectory(identity, query["client_id"], query.get("counselor_id")) or abort(404)
    return Response(render_trajectory(found), mimetype="image/svg+xml",
                    headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})


def _chart_query() -> dict:
    errors = ChartQuerySchema().validate(request.args)
    if errors:
        api_abort(422, errors={"query": errors})
    return ChartQuerySchema().load(request.args)


