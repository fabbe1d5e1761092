"""The referrals pages: the list (open referrals by default, or one status) with their candidates, reasons and
the accept/decline forms, and one referral's page (where a notification about it leads)."""
from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from marshmallow import ValidationError

from services.common import audit
from services.common.web.defences import form_fields
from services.common.web.app import command_bus
from services.common.web.identity import require_page_identity, signin_redirect

from services.referral import domain, queries
from services.referral.entrypoints.api import ALL_STAFF, DECIDERS, refusal_message
from services.referral.commands import AcceptReferral, DeclineReferral
from services.referral.entrypoints.schemas import AcceptSchema, DeclineSchema

PAGE_SIZE = 50
DONE_MESSAGES = {"accepted": "Referral accepted: intake reassigns the client, and the counselors and the front "
                             "desk are told.",
                 "declined": "Referral declined."}
# The list's filter: "all" or one status; the open ones unless asked.
STATUS_FILTERS = ("all",) + domain.STATUSES

pages = Blueprint("referral_pages", __name__)


@pages.get("/referrals")
def referral_list():
    identity = require_page_identity(*ALL_STAFF)
    if identity is None:
        return signin_redirect()
    return _render(identity, message=DONE_MESSAGES.get(request.args.get("done", "")))


@pages.get("/referrals/<referral_id>")
def referral_page(referral_id):
    identity = require_page_identity(*ALL_STAFF)
    if identity is None:
        return signin_redirect()
    referral = queries.visible_referral(identity, referral_id) or abort(404)
    audit.reads(referral.client_id)
    return render_template("referral.html", referral=referral, can_decide=identity.role in DECIDERS,
                           decline_reasons=domain.DECLINE_REASONS,
                           message=DONE_MESSAGES.get(request.args.get("done", "")),
                           **queries.referral_context(identity.org_id, [referral]))


@pages.post("/referrals/<referral_id>/accept")
def accept(referral_id):
    identity = require_page_identity(*DECIDERS)
    if identity is None:
        return signin_redirect()
    return _decide(identity, referral_id, AcceptSchema,
                   lambda data: AcceptReferral(identity, referral_id, data["counselor_id"]))


@pages.post("/referrals/<referral_id>/decline")
def decline(referral_id):
    identity = require_page_identity(*DECIDERS)
    if identity is None:
        return signin_redirect()
    return _decide(identity, referral_id, DeclineSchema,
                   lambda data: DeclineReferral(identity, referral_id, data["reason"], data["note"] or None))


def _decide(identity, referral_id, schema, command):
    try:
        data = schema().load(form_fields())
    except ValidationError as exc:
        return _render(identity, error=f"Please check: {', '.join(sorted(exc.messages))}.", status=422)
    try:
        referral = command_bus().handle(command(data))
    except domain.ReferralNotFound:
        abort(404)
    except (domain.ReferralNotOpen, domain.StaleReferral) as exc:
        return _render(identity, error=refusal_message(referral_id, exc), status=409)
    except domain.NotACandidate:
        return _render(identity, error="That counselor is not a candidate of this referral.", status=422)
    # Post/redirect/get: a reload does not post the decision again.
    return redirect(url_for("referral_pages.referral_page", referral_id=referral.id, done=referral.status), 303)


def _render(identity, message=None, error=None, status=200):
    shown = request.args.get("status", domain.OPEN)
    if shown not in STATUS_FILTERS:
        shown = domain.OPEN
    referrals = queries.referrals_with_status(identity, None if shown == "all" else shown, PAGE_SIZE)
    audit.reads(*(r.client_id for r in referrals))
    # How accepted referrals worked out, per clinic: for those who decide them (counts, never counselors).
    overseer = identity.role in DECIDERS
    return render_template("referrals.html", referrals=referrals, shown=shown, status_filters=STATUS_FILTERS,
                           can_decide=overseer, decline_reasons=domain.DECLINE_REASONS,
                           page_size=PAGE_SIZE, message=message, error=error,
                           outcome_reports=queries.referral_outcome_reports(identity) if overseer else None,
                           outcome_rule=queries.outcome_rule(),
                           **queries.referral_context(identity.org_id, referrals)), status
