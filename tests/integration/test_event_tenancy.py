"""Consumers check that an event's organisation and clinic fit the entities it touches: an event of one
organisation can neither attach a score, a counselor or a notification to another organisation's client or
staff, nor reassign another organisation's client. Refused events raise an InvalidEvent (CrossTenantEvent
where another organisation's entity is named: the consumer loop dead-letters those without counting them
toward its halt) and change nothing."""
from __future__ import annotations

import pytest

from services.common import mongo
from services.common.events import InvalidEvent, Topic, encode_event, make_event
from services.common.kafka import EventProducer
from services.intake import handlers as intake_handlers
from services.intake.adapters.models import Client, Staff
from services.notify.bootstrap import event_handlers as notify_event_handlers
from services.notify.adapters.models import Notification
from services.referral.adapters.models import ClientView, IntakeView
from services.scoring.domain.alerting import DyadHistory
from services.scoring.handlers import EVENT_HANDLERS as SCORING_HANDLERS
from services.scoring.adapters.models import Dyad, ScoredSession
from tests.integration.test_intake_api import register
from tests.integration.test_intake_api import org  # noqa: F401  (the `org` fixture)
from tests.integration.test_referral_service import CLINIC, as_received, counselor, db, handle_all, intake  # noqa: F401
from tests.integration.test_referral_service import event as referral_event

def discard(*_) -> None:
    """A publish that drops what it is given: these tests look at what the handlers keep, not send."""


# --- intake: referral.decided ---------------------------------------------------------------------------

def decided(org_id: str, clinic_id: str, client_id: str, new_counselor_id: str, previous: str | None = None):
    return make_event(Topic.REFERRAL_DECIDED, {
        "referral_id": f"ref-{client_id[:8]}", "client_id": client_id, "decision": "accepted",
        "decided_by": "supervisor-1", "new_counselor_id": new_counselor_id, "previous_counselor_id": previous,
    }, org_id=org_id, clinic_id=clinic_id, producer="referral")


def test_a_decision_cannot_reassign_another_organisations_client_nor_give_it_their_counselor(org, unique):
    client_id = register(org, counselor_id=org.counselor_north).json["id"]
    # A counselor of another organisation, even one that claims to work at this clinic id.
    stranger = Staff(id=f"co-{unique}", org_id=f"x{unique}", email=f"co@x{unique}.test", display_name="Stranger",
                     password_hash="-", role="counselor", clinic_ids=[org.north])
    stranger.save(force_insert=True)
    handle = intake_handlers.EVENT_HANDLERS[Topic.REFERRAL_DECIDED]
    for refused in (decided(f"x{unique}", org.north, client_id, stranger.id),       # another org's event
                    decided(org.id, org.north, client_id, stranger.id)):           # another org's counselor
        with pytest.raises(InvalidEvent):
            handle(refused, discard)
    client = Client.objects.get(id=client_id)
    assert client.counselor_id == org.counselor_north and len(client.assignments) == 1

    # The control: it works (made while the client was with counselor_north, as they still are).
    handle(decided(org.id, org.north, client_id, org.counselor_north, previous=org.counselor_north), discard)
    assert len(Client.objects.get(id=client_id).assignments) == 2


# --- referral: intake.submitted, client.assigned, alliance.scored -----------------------------------------

def test_referral_refuses_to_tie_a_client_to_another_organisations_counselor(db, unique):  # noqa: F811
    ours, theirs = f"o{unique}", f"x{unique}"
    handle_all([counselor(theirs, f"co-{unique}"), counselor(ours, f"mine-{unique}")], discard)
    client_id = f"cl-{unique}"

    with pytest.raises(InvalidEvent):
        handle_all([intake(ours, client_id, counselor_id=f"co-{unique}")], discard)
    assert IntakeView.objects(client_id=client_id).count() == 0 and ClientView.objects(id=client_id).count() == 0

    handle_all([intake(ours, client_id, counselor_id=f"mine-{unique}")], discard)
    assigned = referral_event(Topic.CLIENT_ASSIGNED, {"client_id": client_id, "counselor_id": f"co-{unique}",
                                                      "assigned_by": "fd-1"}, ours)
    scored = referral_event(Topic.ALLIANCE_SCORED, {
        "score_id": f"sc-{unique}", "source_event_id": f"fb-{unique}", "client_id": client_id,
        "counselor_id": f"co-{unique}", "session_number": 1,
        "instrument_id": "rapport-short", "total": 20.0, "mean": 6.7, "subscales": {}}, ours)
    for refused in (assigned, scored):
        with pytest.raises(InvalidEvent):
            handle_all([refused], discard)
    assert ClientView.objects.get(id=client_id).counselor_id == f"mine-{unique}"


# --- notify: staff and notifications ---------------------------------------------------------------------

def dropped(org_id: str, counselor_id: str, unique: str):
    return make_event(Topic.ALLIANCE_DROPPED, {
        "alert_id": f"al-{org_id}", "source_event_id": f"fb-{org_id}", "client_id": f"cl-{unique}",
        "counselor_id": counselor_id, "session_number": 2, "instrument_id": "rapport-short", "kind": "level",
        "rules": ["persistently_low"], "severity": "high", "total": 10.0, "threshold": 24.0}, org_id=org_id, clinic_id=CLINIC, producer="scoring")


def staff_updated(org_id: str, staff_id: str):
    return make_event(Topic.STAFF_UPDATED, {"staff_id": staff_id, "role": "counselor", "clinic_ids": [CLINIC]},
                      org_id=org_id, clinic_id=CLINIC, producer="intake")


def test_notify_neither_notifies_nor_records_another_organisations_staff(settings_for, unique):
    mongo.connect(settings_for("notify"))
    ours, theirs, counselor_id = f"o{unique}", f"x{unique}", f"co-{unique}"
    handle = notify_event_handlers()
    handle[Topic.STAFF_UPDATED](as_received(staff_updated(ours, counselor_id)), discard)

    for refused in (dropped(theirs, counselor_id, unique), staff_updated(theirs, counselor_id)):
        with pytest.raises(InvalidEvent):
            handle[refused.type](as_received(refused), discard)
    assert Notification.objects(recipient_id=counselor_id).count() == 0

    handle[Topic.ALLIANCE_DROPPED](as_received(dropped(ours, counselor_id, unique)), discard)  # the control
    assert [n.org_id for n in Notification.objects(recipient_id=counselor_id)] == [ours]


# --- scoring: the dyad is keyed by organisation and clinic --------------------------------------------------

def feedback(org_id: str, clinic_id: str, client_id: str, counselor_id: str, session_number: int, level: int):
    return make_event(Topic.FEEDBACK_SUBMITTED, {
        "feedback_id": f"fb-{org_id}-{session_number}", "client_id": client_id, "counselor_id": counselor_id,
        "session_number": session_number, "instrument_id": "rapport-short",
        "answers": {"goal-1": level, "task-1": level, "bond-1": level}}, org_id=org_id, clinic_id=clinic_id,
        producer="intake")


def test_a_feedback_event_of_another_organisation_never_touches_this_ones_scores_or_trajectory(
        settings_for, run_loop, unique):
    ours, theirs, client_id, counselor_id = f"o{unique}", f"x{unique}", f"cl-{unique}", f"co-{unique}"
    producer = EventProducer(settings_for("scoring"))
    try:
        for event in (feedback(ours, CLINIC, client_id, counselor_id, 1, 8),
                      # Same client and counselor ids, another organisation (or a clinic of ours it is not in).
                      feedback(theirs, CLINIC, client_id, counselor_id, 2, 1),
                      feedback(ours, "elsewhere", client_id, counselor_id, 2, 1)):
            producer.send(Topic.FEEDBACK_SUBMITTED, client_id, encode_event(event))
    finally:
        producer.close()
    # Through the consumer loop and scoring's public EVENT_HANDLERS. A new group reads the whole shared topic,
    # other tests' poison messages included, so the halting share is lifted.
    run_loop("scoring", f"scoring-{unique}", SCORING_HANDLERS, consumer_dlq_halt_share=1.0)

    ours_scores = ScoredSession.objects(org_id=ours, clinic_id=CLINIC, client_id=client_id)
    assert [s.session_number for s in ours_scores] == [1]
    history = DyadHistory.from_dict(Dyad.objects.get(id=Dyad.key(ours, CLINIC, client_id, counselor_id)).trajectory)
    assert [p.session_number for p in history.recent] == [1]
    assert {(s.org_id, s.clinic_id) for s in ScoredSession.objects(client_id=client_id)} == {
        (ours, CLINIC), (theirs, CLINIC), (ours, "elsewhere")}
