"""HTTP entrypoints: scores, trajectories, alerts, clinic summaries and alert settings, FHIR export.

Every route needs a staff identity; queries are narrowed by `Identity.client_filter` (organisation, clinics, and for a
counselor their own clients), and what lies outside it answers 404.
"""
from __future__ import annotations

import json
from datetime import date, timedelta

from flask import Response, url_for
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError

from services.common.instruments import instrument_definitions
from services.common.schemas import QuerySetPage
from services.common.web.app import command_bus
from services.common.web.identity import caller, guard

from services.scoring import queries
from services.scoring.commands import UpdateAlertSettings
from services.scoring.adapters.rules import effective_settings
from services.scoring.domain.settings import AlertSettingsUpdateSchema
from services.scoring.entrypoints.schemas import (AlertDocumentSchema, AlertPreviewSchema, AlertQuerySchema, AlertSettingsSchema,
                      ClinicSummarySchema, PreviewQuerySchema, ScoreQuerySchema,
                      SessionScoreSchema, SummaryQuerySchema, TrajectoryQuerySchema, TrajectorySchema)

STAFF = queries.STAFF_ROLES
SUPERVISING = ("supervisor", "admin")

scores = Blueprint("scores", __name__, url_prefix="/api/scores", description="Alliance scores per session")
trajectories = Blueprint("trajectories", __name__, url_prefix="/api/trajectories",
                         description="A client's (or a client–counselor dyad's) scores over time")
alerts = Blueprint("alerts", __name__, url_prefix="/api/alerts", description="Alerts raised when the alliance fell")
clinics = Blueprint("clinics", __name__, url_prefix="/api/clinics",
                    description="Per clinic: summary and alert settings")
fhir = Blueprint("fhir", __name__, url_prefix="/api/clients", description="FHIR export of a client's responses")
instruments = Blueprint("instruments", __name__, url_prefix="/api/instruments",
                        description="The shipped instrument definitions (FHIR Questionnaire); no client data")


@scores.get("")
@guard(*STAFF)
@scores.arguments(ScoreQuerySchema, location="query")
@scores.response(200, SessionScoreSchema(many=True))
@scores.paginate(QuerySetPage)
def list_scores(query):
    """A client's scored sessions, in session order (optionally with one counselor only)."""
    return queries.scores(caller(), **query)


@scores.get("/<score_id>")
@guard(*STAFF)
@scores.response(200, SessionScoreSchema)
def get_score(score_id):
    return queries.score(caller(), score_id) or abort(404)


@trajectories.get("")
@guard(*STAFF)
@trajectories.arguments(TrajectoryQuerySchema, location="query")
@trajectories.response(200, TrajectorySchema)
def get_trajectory(query):
    """Per client (all counselors) or per dyad (with counselor_id: includes the running baseline)."""
    identity = caller()
    found = queries.trajectory(identity, query["client_id"], query.get("counselor_id")) or abort(404)
    found["chart_url"] = url_for("pages.trajectory_chart", _external=True, **query)
    return found


@alerts.get("")
@guard(*STAFF)
@alerts.arguments(AlertQuerySchema, location="query")
@alerts.response(200, AlertDocumentSchema(many=True))
@alerts.paginate(QuerySetPage)
def list_alerts(query):
    """Alerts, newest first; a counselor sees their own, supervisors and admins their clinics'."""
    return queries.alerts(caller(), **query)


@alerts.get("/<alert_id>")
@guard(*STAFF)
@alerts.response(200, AlertDocumentSchema)
def get_alert(alert_id):
    return queries.alert(caller(), alert_id) or abort(404)


def _clinic_or_404(clinic_id: str):
    identity = caller()
    if not queries.clinic_in_scope(identity, clinic_id):
        abort(404)
    return identity


@clinics.get("/<clinic_id>/summary")
@guard(*SUPERVISING)
@clinics.arguments(SummaryQuerySchema, location="query")
@clinics.response(200, ClinicSummarySchema)
def clinic_summary(query, clinic_id):
    """Share of sessions below cutoff and alerts per counselor per month (supervisors and admins)."""
    identity = _clinic_or_404(clinic_id)
    since = query.get("since") or (date.today() - timedelta(days=365)).replace(day=1)
    return queries.clinic_summary(identity, clinic_id, since)


@clinics.get("/<clinic_id>/alert-settings")
@guard(*SUPERVISING)
@clinics.response(200, AlertSettingsSchema)
def get_alert_settings(clinic_id):
    """The clinic's alert budget and rules: defaults (alert_rules.yaml), its overrides, what applies, and
    per instrument the threshold the budget gives."""
    identity = _clinic_or_404(clinic_id)
    return queries.alert_settings(identity.org_id, clinic_id)


@clinics.put("/<clinic_id>/alert-settings")
@guard("admin")
@clinics.arguments(AlertSettingsUpdateSchema)
@clinics.response(200, AlertSettingsSchema)
def put_alert_settings(data, clinic_id):
    """Replace the clinic's overrides (admins only); `{}` returns the clinic to the defaults. Applies to
    sessions scored from now on. Preview first: POST .../alert-settings/preview."""
    identity = _clinic_or_404(clinic_id)
    try:
        command_bus().handle(UpdateAlertSettings(identity, clinic_id, data))
    except ValidationError as exc:
        abort(422, errors={"json": exc.messages})
    return queries.alert_settings(identity.org_id, clinic_id)


@clinics.post("/<clinic_id>/alert-settings/preview")
@guard(*SUPERVISING)
@clinics.arguments(AlertSettingsUpdateSchema)
@clinics.arguments(PreviewQuerySchema, location="query")
@clinics.response(200, AlertPreviewSchema)
def preview_alert_settings(data, query, clinic_id):
    """What the clinic's counselors would have received over its last months with these overrides, next to
    what the settings in force give: the back-test over the clinic's stored sessions. Saves nothing."""
    identity = _clinic_or_404(clinic_id)
    return queries.alert_preview(identity, clinic_id, _checked(data), query["months"])


def _checked(data: dict) -> dict:
    try:
        return effective_settings(data)
    except ValidationError as exc:
        abort(422, errors={"json": exc.messages})


@fhir.get("/<client_id>/questionnaire-responses")
@guard(*STAFF)
@fhir.response(200, description="A FHIR R4 Bundle of QuestionnaireResponse resources",
               content_type="application/fhir+json")
def export_responses(client_id):
    """A client's answers, one FHIR QuestionnaireResponse per session, in session order."""
    found = queries.client_scores(caller(), client_id) or abort(404)
    bundle = queries.questionnaire_responses(found, url_for("instruments.list_instruments", _external=True),
                                           url_for("scores.list_scores", _external=True))
    return Response(json.dumps(bundle), mimetype="application/fhir+json")


@instruments.get("")
@instruments.response(200, description="Ids and titles of the shipped instruments")
def list_instruments():
    return Response(json.dumps([{"id": i, "title": d.get("title", i)} for i, d in instrument_definitions().items()]),
                    mimetype="application/json")


@instruments.get("/<instrument_id>")
@instruments.response(200, description="A FHIR Questionnaire", content_type="application/fhir+json")
def get_instrument(instrument_id):
    """An instrument's definition, as the Questionnaire its QuestionnaireResponses refer to."""
    definition = instrument_definitions().get(instrument_id) or abort(404)
    return Response(json.dumps(definition), mimetype="application/fhir+json")


BLUEPRINTS = (scores, trajectories, alerts, clinics, fhir, instruments)
