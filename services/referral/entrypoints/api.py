"""HTTP entrypoints: validate input, build a command, hand it to the handlers, render the result."""
from __future__ import annotations

from contextlib import contextmanager

from flask import abort
from flask_smorest import Blueprint
from flask_smorest import abort as api_abort

from services.common.schemas import QuerySetPage
from services.common.web.app import command_bus
from services.common.web.identity import caller, guard

from services.referral import domain, queries
from services.referral.commands import AcceptReferral, DeclineReferral
from services.referral.entrypoints.schemas import ReferralOutcomesSchema
from services.referral.entrypoints.schemas import (AcceptSchema, CounselorViewSchema, DeclineSchema, IntakeViewSchema, ReferralQuerySchema,
                      ReferralSchema)

ALL_STAFF = ("admin", "supervisor", "counselor", "front_desk")
DECIDERS = ("admin", "supervisor")

intakes = Blueprint("intakes", __name__, url_prefix="/api/intakes",
                    description="Intakes as referral received them from intake.submitted")
counselors = Blueprint("counselors", __name__, url_prefix="/api/counselors",
                       description="The counselors referral matches against, as counselor.updated described them")
referrals = Blueprint("referrals", __name__, url_prefix="/api/referrals",
                      description="Counselor recommendations and the supervisors' decisions")
clinics = Blueprint("clinics", __name__, url_prefix="/api/clinics",
                    description="Per clinic: how accepted referrals worked out")


@intakes.get("/<intake_id>")
@guard(*ALL_STAFF)
@intakes.response(200, IntakeViewSchema)
def get_intake(intake_id):
    return queries.visible_intake(caller(), intake_id) or abort(404)


@counselors.get("")
@guard(*ALL_STAFF)
@counselors.response(200, CounselorViewSchema(many=True))
@counselors.paginate(QuerySetPage)
def list_counselors():
    """Counselors of the caller's clinics (admins: the whole organisation), by id."""
    return queries.counselors(caller())


@referrals.get("")
@guard(*ALL_STAFF)
@referrals.arguments(ReferralQuerySchema, location="query")
@referrals.response(200, ReferralSchema(many=True))
@referrals.paginate(QuerySetPage)
def list_referrals(query):
    """Referrals the caller may see, newest first; counselors see their own clients' only."""
    return queries.visible_referrals(caller()).filter(**query).order_by("-created_at", "id")


@referrals.get("/<referral_id>")
@guard(*ALL_STAFF)
@referrals.response(200, ReferralSchema)
def get_referral(referral_id):
    return queries.visible_referral(caller(), referral_id) or abort(404)


@referrals.post("/<referral_id>/accept")
@guard(*DECIDERS)
@referrals.arguments(AcceptSchema)
@referrals.response(200, ReferralSchema)
@referrals.alt_response(404, description="No such referral in the caller's clinics")
@referrals.alt_response(409, description="The referral was decided or superseded already, or made while the "
                                         "client was with another counselor than now (stale)")
def accept_referral(data, referral_id):
    """A supervisor picks one of the candidates; publishes `referral.decided` (intake reassigns the client)."""
    with decision_errors(referral_id):
        return command_bus().handle(AcceptReferral(caller(), referral_id, data["counselor_id"]))


@referrals.post("/<referral_id>/decline")
@guard(*DECIDERS)
@referrals.arguments(DeclineSchema)
@referrals.response(200, ReferralSchema)
@referrals.alt_response(404, description="No such referral in the caller's clinics")
@referrals.alt_response(409, description="The referral was decided already")
def decline_referral(data, referral_id):
    """A supervisor declines with a reason code; the note stays here. Publishes `referral.decided`."""
    with decision_errors(referral_id):
        return command_bus().handle(DeclineReferral(caller(), referral_id, data["reason"], data["note"]))


@clinics.get("/<clinic_id>/referral-outcomes")
@guard(*DECIDERS)
@clinics.response(200, ReferralOutcomesSchema)
@clinics.alt_response(404, description="Not a clinic of the caller's")
def referral_outcomes(clinic_id):
    """How the clinic's accepted referrals worked out: the new dyad's first sessions against the alliance
    with the counselor before, counted overall, per reason and per concern (supervisors and admins; counts,
    never a table of counselors)."""
    return queries.referral_outcome_report(caller(), clinic_id) or abort(404)


def refusal_message(referral_id: str, error: Exception) -> str:
    """What the API and the page say when a decision is refused because of the referral's state."""
    if isinstance(error, domain.StaleReferral):
        return (f"Referral {referral_id} was made while the client was with another counselor: the client has "
                f"been reassigned since, so it was not accepted. Review the client's current situation instead.")
    return f"Referral {referral_id} was {error.status} already."


@contextmanager
def decision_errors(referral_id: str):
    """The workflow's refusals as HTTP answers: unknown (or out of scope) 404, decided, superseded or stale
    409 naming the referral, bad pick 422."""
    try:
        yield
    except domain.ReferralNotFound:
        abort(404)
    except (domain.ReferralNotOpen, domain.StaleReferral) as exc:
        message = refusal_message(referral_id, exc)
        api_abort(409, message=message, errors={"referral_id": [message]})
    except domain.NotACandidate:
        api_abort(422, errors={"json": {"counselor_id": ["Not a candidate of this referral."]}})


BLUEPRINTS = (intakes, referrals, counselors, clinics)
