"""Server-rendered pages: the alliance overview, a trajectory page, and the embeddable SVG chart."""
from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from flask_smorest import abort as api_abort
from marshmallow import ValidationError

from services.common import audit
from services.common.repair import ACTION_LABELS, repair_suggestion
from services.common.web.app import command_bus
from services.common.web.identity import caller, guard, require_page_identity, signin_redirect

from services.scoring import queries
from services.scoring.commands import UpdateAlertSettings
from services.scoring.entrypoints.chart import describe, render_trajectory
from services.scoring.adapters.rules import effective_settings
from services.scoring.domain.settings import AlertSettingsUpdateSchema
from services.scoring.entrypoints.schemas import ChartQuerySchema

pages = Blueprint("pages", __name__, template_folder="templates")
RECENT_ALERTS = 50
MAX_DYADS = 500


@pages.get("/alliance")
def alliance():
    """A counselor's (their clients) or supervisor's (their clinics) overview: recent alerts and clients."""
    identity = require_page_identity(*queries.STAFF_ROLES)
    if identity is None:
        return signin_redirect()
    recent, dyads = queries.alliance_overview(identity, RECENT_ALERTS, MAX_DYADS)
    audit.reads(*(a.client_id for a in recent), *(d.client_id for d in dyads))
    return render_template("alliance.html", alerts=recent, dyads=dyads, suggestion=repair_suggestion,
                           actions=ACTION_LABELS)


@pages.get("/alliance/trajectory")
def trajectory_page():
    identity = require_page_identity(*queries.STAFF_ROLES)
    if identity is None:
        return signin_redirect()
    query = _chart_query()
    found = queries.trajectory(identity, query["client_id"], query.get("counselor_id")) or abort(404)
    return render_template("trajectory.html", trajectory=found, query=query, description=describe(found))


@pages.get("/charts/trajectory.svg")
@guard(*queries.STAFF_ROLES)
def trajectory_chart():
    """The trajectory as SVG, for <img>/<object> in any page; 401 without a session (an image cannot follow a
    sign-in redirect)."""
    identity = caller()
    query = _chart_query()
    found = queries.trajectory(identity, query["client_id"], query.get("counselor_id")) or abort(404)
    return Response(render_trajectory(found), mimetype="image/svg+xml",
                    headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})


def _chart_query() -> dict:
    errors = ChartQuerySchema().validate(request.args)
    if errors:
        api_abort(422, errors={"query": errors})
    return ChartQuerySchema().load(request.args)




# The settings a clinic's admin changes on the page; the rest stays as the defaults or the API set them.
PAGE_RULE_TOGGLES = ("sustained_decline", "reliable_drop", "drop_vs_previous")
PREVIEW_MONTHS = (3, 6, 12)


@pages.route("/alliance/settings", methods=("GET", "POST"))
def alert_settings_page():
    """The clinic's alert budget and rules (supervisors read, admins change), with a preview of what the
    settings in the form would have sent over the clinic's own last months (the back-test, queries.
    alert_preview) before anything is saved: "Preview" posts the form and saves nothing. As in the API,
    supervisors may preview and only admins save."""
    identity = require_page_identity("supervisor", "admin")
    if identity is None:
        return signin_redirect()
    clinic_id = request.values.get("clinic_id") or (identity.clinic_ids[0] if identity.clinic_ids else None)
    if clinic_id is None or not queries.clinic_in_scope(identity, clinic_id):
        abort(404)
    overrides, errors, preview, saved = queries.clinic_overrides(identity.org_id, clinic_id), {}, None, False
    months = _preview_months(request.form)
    if request.method == "POST":
        saving = request.form.get("action") == "save"
        if saving and identity.role != "admin":
            abort(403)
        try:
            overrides = AlertSettingsUpdateSchema().load(_overrides_from_form(request.form))
            effective = effective_settings(overrides)
            if saving:
                command_bus().handle(UpdateAlertSettings(identity, clinic_id, overrides))
                saved = True
            else:
                preview = queries.alert_preview(identity, clinic_id, effective, months)
        except ValidationError as exc:
            errors = settings_form_errors(exc.messages)
    effective = effective_settings(overrides) if not errors else queries.clinic_settings(identity.org_id, clinic_id)
    return render_template("alert_settings.html", clinic_id=clinic_id, clinics=identity.clinic_ids,
                           settings=effective, errors=errors, preview=preview, saved=saved, months=months,
                           preview_months=PREVIEW_MONTHS, submitted=request.form if errors else {},
                           may_change=identity.role == "admin", toggles=PAGE_RULE_TOGGLES), 422 if errors else 200


def _preview_months(form) -> int:
    chosen = form.get("months", "")
    return int(chosen) if chosen.isdigit() and int(chosen) in PREVIEW_MONTHS else 6


def settings_form_errors(messages, path: str = "") -> dict[str, str]:
    """The schema's nested messages by the form field they belong to: the budget input is `budget`, a rule's
    input `<rule>.<setting>`; a message about the settings as a whole (contradictory rules) is `settings`."""
    if isinstance(messages, list):
        field = {"budget.false_alerts_per_counselor_month": "budget", "budget": "budget"}.get(path) \
            or path.removeprefix("rules.") or "settings"
        return {field: str(messages[0])}
    found: dict[str, str] = {}
    for key, value in messages.items():
        nested = path if key == "_schema" else (f"{path}.{key}" if path else str(key))
        for field, message in settings_form_errors(value, nested).items():
            found.setdefault(field, message)
    return found


def _overrides_from_form(form) -> dict:
    rules = {"below_cutoff": {"push": "below_cutoff.push" in form},
             "persistently_low": {"enabled": "persistently_low.enabled" in form}}
    if form.get("persistently_low.sessions"):
        rules["persistently_low"]["sessions"] = form["persistently_low.sessions"]
    for rule in PAGE_RULE_TOGGLES:
        rules[rule] = {"enabled": f"{rule}.enabled" in form}
    return {"budget": {"false_alerts_per_counselor_month": form.get("budget", "")}, "rules": rules}
