"""The supervisors' page: open referrals with their candidates and reasons, and the accept/decline forms."""
from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from marshmallow import ValidationError

from services.common import audit
from services.common.web.defences import form_fields
from services.common.web.app import command_bus
from services.common.web.identity import require_page_identity, signin_redirect

from services.referral import domain, queries
from services.referral.entrypoints.api import ALL_STAFF, DECIDERS
from services.referral.commands import AcceptReferral, DeclineReferral
from services.referral.entrypoints.schemas import AcceptSchema, DeclineSchema

PAGE_SIZE = 50
DONE_MESSAGES = {"accepted": "Referral accepted: intake will reassign the client.",
                 "declined": "Referral declined."}

pages = Blueprint("referral_pages", __name__)


@pages.get("/referrals")
def referral_list():
    identity = require_page_identity(*ALL_STAFF)
    if identity is None:
        return signin_redirect()
    return _render(identity, message=DONE_MESSAGES.get(request.args.get("done", "")))


@pages.post("/referrals/<referral_id>/accept")
def accept(referral_id):
    identity = require_page_identity(*DECIDERS)
    if identity is None:
        return signin_redirect()
    return _decide(identity, AcceptSchema, lambda data: AcceptReferral(identity, referral_id, data["counselor_id"]))


@pages.post("/referrals/<referral_id>/decline")
def decline(referral_id):
    identity = require_page_identity(*DECIDERS)
    if identity is None:
        return signin_redirect()
    return _decide(identity, DeclineSchema,
                   lambda data: DeclineReferral(identity, referral_id, data["reason"], data["note"] or None))


def _decide(identity, schema, command):
    try:
        data = schema().load(form_fields())
    except ValidationError as exc:
        return _render(identity, error=f"Please check: {', '.join(sorted(exc.messages))}.", status=422)
    try:
        referral = command_bus().handle(command(data))
    except domain.ReferralNotFound:
        abort(404)
    except domain.ReferralNotOpen:
        return _render(identity, error="That referral was decided already.", status=409)
    except domain.NotACandidate:
        return _render(identity, error="That counselor is not a candidate of this referral.", status=422)
    # Post/redirect/get: a reload does not post the decision again.
    return redirect(url_for("referral_pages.referral_list", done=referral.status), 303)


def _render(identity, message=None, error=None, status=200):
    open_referrals = queries.open_referrals(identity, PAGE_SIZE)
    audit.reads(*(r.client_id for r in open_referrals))
    return render_template("referrals.html", referrals=open_referrals,
                           can_decide=identity.role in DECIDERS, decline_reasons=domain.DECLINE_REASONS,
                           page_size=PAGE_SIZE, message=message, error=error), status
