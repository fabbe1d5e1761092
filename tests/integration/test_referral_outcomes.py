"""Learning from referrals with the real database and broker: an accepted referral's new dyad is followed over
its first sessions against the old one, settled once, reported per clinic to its supervisors only, and fed
back as each counselor's record per concern."""
from __future__ import annotations

import pytest

from services.common.auth import COOKIE_NAME, Identity, issue_token
from services.common.events import Topic
from services.referral import queries
from services.referral.adapters.models import Referral, ReferralOutcome
from services.referral.handlers import referral_id_for
from tests.integration.test_referral_service import (  # noqa: F401  (fixtures: db, producer, referral_app)
    CLINIC, OTHER_CLINIC, bearer, db, directory_events, event, exit_interview, handle_all, intake, producer,
    referral_app, scored)

OUTCOMES = f"/api/clinics/{CLINIC}/referral-outcomes"


def _assigned(org_id, client_id, counselor_id, previous, referral_id):
    return event(Topic.CLIENT_ASSIGNED, {"client_id": client_id, "counselor_id": counselor_id,
                                         "previous_counselor_id": previous, "assigned_by": "sup-1",
                                         "referral_id": referral_id}, org_id)


def _accepted_referral(referral_app, producer, org_id, client_id, old_totals):
    """A trauma client with co-leaving (sessions scored `old_totals` of 30), a poor exit interview, and the
    referral it raised accepted for co-plain."""
    handle_all([*directory_events(org_id), intake(org_id, client_id, "co-leaving")], producer.send)
    handle_all([scored(org_id, client_id, "co-leaving", i + 1, total) for i, total in enumerate(old_totals)],
               producer.send)
    trigger = exit_interview(org_id, client_id, "co-leaving")
    handle_all([trigger], producer.send)
    referral = Referral.objects.get(id=referral_id_for(trigger.event_id))
    accepted = referral_app.test_client().post(f"/api/referrals/{referral.id}/accept",
                                               json={"counselor_id": "co-plain"},
                                               headers=bearer(referral_app, org_id))
    assert accepted.status_code == 200, accepted.json
    return referral


def _sign_in(app, client, org, role="supervisor", staff="sup-1", clinics=(CLINIC,)):
    client.set_cookie(COOKIE_NAME, issue_token(app.extensions["rapport.settings"],
                                               Identity(staff, org, tuple(clinics), role)))


def _outcome(org_id, client_id, counselor_id="co-plain"):
    return ReferralOutcome.objects.get(id=ReferralOutcome.key(org_id, client_id, counselor_id))


def test_an_accepted_referral_is_followed_settled_once_and_reported_per_clinic(
        components, db, producer, referral_app, unique):
    org_id, client_id = f"o{unique}", f"cl-{unique}"
    referral = _accepted_referral(referral_app, producer, org_id, client_id, old_totals=[15, 15, 18])

    # Intake carries the decision out; its client.assigned reaches referral (twice: a redelivery).
    moved = _assigned(org_id, client_id, "co-plain", "co-leaving", referral.id)
    handle_all([moved, moved], producer.send)
    outcome = _outcome(org_id, client_id)
    assert (outcome.referral_id, outcome.reason, outcome.concerns, outcome.previous_counselor_id) == (
        referral.id, "exit_interview", ["trauma"], "co-leaving")
    assert outcome.old_mean == pytest.approx(0.5 * 2 / 3 + 0.6 / 3) and outcome.old_sessions == 3
    assert (outcome.status, outcome.new_sessions) == ("following", 0)

    # The new dyad's sessions, every one delivered twice; a session with the old counselor changes nothing.
    first_two = [scored(org_id, client_id, "co-plain", 1, 24), scored(org_id, client_id, "co-plain", 2, 27)]
    handle_all(first_two + first_two + [scored(org_id, client_id, "co-leaving", 9, 3)], producer.send)
    outcome = _outcome(org_id, client_id)
    assert (outcome.status, outcome.new_sessions, outcome.settled_at) == ("following", 2, None)
    third = scored(org_id, client_id, "co-plain", 3, 24)
    handle_all([third, third], producer.send)
    outcome = _outcome(org_id, client_id)
    assert (outcome.status, outcome.new_sessions) == ("improved", 3)
    assert outcome.new_total == pytest.approx(0.8 + 0.9 + 0.8)
    settled = (outcome.version, outcome.settled_at)

    # Later sessions are not the first ones: a low fourth session and any redelivery change nothing.
    handle_all([scored(org_id, client_id, "co-plain", 4, 3), third, moved], producer.send)
    outcome = _outcome(org_id, client_id)
    assert (outcome.status, outcome.new_sessions, outcome.version, outcome.settled_at) == ("improved", 3, *settled)
    assert ReferralOutcome.objects(org_id=org_id).count() == 1

    # The clinic's supervisors and the organisation's admins see the counts; nobody else.
    http = referral_app.test_client()
    report = http.get(OUTCOMES, headers=bearer(referral_app, org_id))
    assert report.status_code == 200, report.json
    assert report.json["overall"] == {"accepted": 1, "following": 0, "settled": 1, "improved": 1,
                                      "without_baseline": 0, "share_improved": 1.0}
    assert (report.json["sessions_compared"], report.json["margin"]) == (3, 0.05)
    reasons = {r["reason"]: (r["accepted"], r["improved"]) for r in report.json["by_reason"]}
    assert reasons == {"intake": (0, 0), "exit_interview": (1, 1), "alliance_decline": (0, 0)}
    assert [(c["concern"], c["settled"], c["improved"]) for c in report.json["by_concern"]] == [("trauma", 1, 1)]
    assert "co-plain" not in report.get_data(as_text=True), "counts, never counselors"
    admin = http.get(OUTCOMES, headers=bearer(referral_app, org_id, "admin", "adm-1", clinics=()))
    assert admin.status_code == 200 and admin.json == report.json
    assert http.get(OUTCOMES, headers=bearer(referral_app, org_id, clinics=(OTHER_CLINIC,))).status_code == 404
    assert http.get(OUTCOMES, headers=bearer(referral_app, f"x{unique}", "admin", "adm-x", clinics=())
                    ).status_code == 404
    assert http.get(f"/api/clinics/{OTHER_CLINIC}/referral-outcomes",
                    headers=bearer(referral_app, org_id, "admin", "adm-1", clinics=())).status_code == 404
    assert http.get(OUTCOMES, headers=bearer(referral_app, org_id, "counselor", "co-plain")).status_code == 403

    # What matching may learn: co-plain received one settled trauma referral, and it improved.
    assert queries.referral_track_record(org_id) == {"co-plain": {"trauma": (1, 1)}}
    assert queries.referral_track_record(f"x{unique}") == {}

    # The referrals page says it in words to the supervisor; another clinic's supervisor sees only their own.
    _sign_in(referral_app, http, org_id)
    html = http.get("/referrals").get_data(as_text=True)
    assert "How referrals worked out" in html and "1 accepted referral followed" in html
    assert "the alliance improved in 1" in html and "Exit interview" in html and "Trauma and PTSD" in html
    other = referral_app.test_client()
    _sign_in(referral_app, other, org_id, clinics=(OTHER_CLINIC,))
    elsewhere = other.get("/referrals").get_data(as_text=True)
    assert "How referrals worked out" in elsewhere and "No accepted referral has been followed here yet" in elsewhere
    assert "Trauma and PTSD" not in elsewhere
    _sign_in(referral_app, other, org_id, role="counselor", staff="co-plain")
    assert "How referrals worked out" not in other.get("/referrals").get_data(as_text=True)


def test_sessions_that_overtake_the_assignment_count_and_a_referral_that_did_not_help_is_said_so(
        db, producer, referral_app, unique):
    org_id, client_id = f"o{unique}", f"cl-{unique}"
    referral = _accepted_referral(referral_app, producer, org_id, client_id, old_totals=[24, 24])
    # Scoring's topic ran ahead of intake's: three sessions with co-plain before the assignment is heard of.
    handle_all([scored(org_id, client_id, "co-plain", i, 24) for i in (1, 2, 3)], producer.send)
    assert ReferralOutcome.objects(org_id=org_id).count() == 0
    handle_all([_assigned(org_id, client_id, "co-plain", "co-leaving", referral.id)], producer.send)
    outcome = _outcome(org_id, client_id)
    assert (outcome.status, outcome.new_sessions, outcome.old_mean) == ("not_improved", 3, pytest.approx(0.8))
    assert queries.referral_track_record(org_id) == {"co-plain": {"trauma": (1, 0)}}


def test_an_assignment_without_an_accepted_referral_is_not_followed(db, producer, referral_app, unique):
    org_id, client_id = f"o{unique}", f"cl-{unique}"
    handle_all([*directory_events(org_id), intake(org_id, client_id, "co-leaving")], producer.send)
    open_one = Referral.objects.get(org_id=org_id, client_id=client_id)
    # The front desk's own reassignment, and one naming a referral nobody accepted (or of another client).
    handle_all([_assigned(org_id, client_id, "co-plain", "co-leaving", None),
                _assigned(org_id, client_id, "co-trauma", "co-plain", open_one.id)], producer.send)
    assert ReferralOutcome.objects(org_id=org_id).count() == 0
