"""Referral over the real broker and database: read models, triggers, duplicate delivery, decisions, page."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from kafka.errors import KafkaError

from deploy.local.components import free_port
from deploy.local.topic_reader import read_topic
from services.common import mongo
from services.common.auth import COOKIE_NAME, Identity, issue_token
from services.common.events import InvalidEvent, Topic, decode_event, encode_event, make_event
from services.common.kafka import EventProducer
from services.referral import handlers
from services.referral.adapters import config as referral_config
from services.referral.entrypoints.app import create_app
from services.referral.handlers import EVENT_HANDLERS, referral_id_for
from services.common.outbox import relay_pending
from services.referral.adapters.models import (OUTBOX_DOCUMENTS, ClientAllianceRecord, ClientView, CounselorFit,
                                      CounselorView, ParkedEvent, Referral)
from tests.support.alerts import alliance_dropped
from tests.support.kafka_reader import events_on, send_raw, wait_for
from tests.support.identity import bearer as bearer_for
from tests.support.identity import form_token

CLINIC, OTHER_CLINIC = "clinic-a", "clinic-b"
EXIT_POOR = {"session_number": 4, "comfortable": 3, "style_fit": 3, "confident_progress": 3,
             "outside_expertise": True, "wants_someone_else": False}


def event(topic, payload, org, clinic=CLINIC, at=None):
    return make_event(topic, payload, org_id=org, clinic_id=clinic, producer="tests", occurred_at=at)


def counselor(org, cid, **payload):
    return event(Topic.COUNSELOR_UPDATED, {
        "counselor_id": cid, "clinic_ids": [CLINIC], "specialties": [], "languages": ["en"],
        "modalities": ["in_person"], "weekly_capacity": 10, "caseload": 5, **payload}, org)


def intake(org, client_id, counselor_id=None, **payload):
    return event(Topic.INTAKE_SUBMITTED, {
        "intake_id": f"in-{client_id}", "client_id": client_id, "concerns": ["trauma"],
        "preferences": {"language": "es"}, "assigned_counselor_id": counselor_id, **payload}, org)


def exit_interview(org, client_id, counselor_id, **answers):
    return event(Topic.EXIT_INTERVIEW_SUBMITTED, {"exit_interview_id": f"ex-{client_id}", "client_id": client_id,
                                                  "counselor_id": counselor_id, **EXIT_POOR, **answers}, org)


def directory_events(org):
    """co-leaving: the client's counselor. Expected order for a Spanish-speaking trauma client leaving
    co-leaving because of expertise: co-trauma (trauma specialist), co-plain; co-full and co-en excluded."""
    return [counselor(org, "co-leaving", languages=["en", "es"], specialties=["anxiety"]),
            counselor(org, "co-trauma", languages=["es"], specialties=["trauma"]),
            counselor(org, "co-plain", languages=["es", "en"], caseload=0),
            counselor(org, "co-full", languages=["es"], specialties=["trauma"], caseload=10),
            counselor(org, "co-en", specialties=["trauma"])]


@pytest.fixture
def producer(settings_for):
    producer = EventProducer(settings_for("referral"))
    yield producer
    producer.close()


@pytest.fixture
def db(settings_for):
    mongo.connect(settings_for("referral"))


@pytest.fixture
def referral_app(settings_for):
    settings = settings_for("referral")
    app = create_app({"kafka_bootstrap": settings.kafka_bootstrap, "mongo_uri": settings.mongo_uri,
                      "db_prefix": settings.db_prefix})
    yield app
    app.extensions["rapport.kafka"].close()


def bearer(app, org, role="supervisor", staff="sup-1", clinics=(CLINIC,)):
    return bearer_for(Identity(staff, org, tuple(clinics), role), app.extensions["rapport.settings"])


def recommended(components, org, trigger_id=None):
    return events_on(components.kafka_bootstrap, Topic.REFERRAL_RECOMMENDED,
                     lambda e: e["org_id"] == org and trigger_id in (None, e["payload"]["trigger_event_id"]))


def announcing(components, referral):
    return events_on(components.kafka_bootstrap, Topic.REFERRAL_RECOMMENDED,
                     lambda e: e["event_id"] == referral.announced_event_id)


def decided(components, org):
    return events_on(components.kafka_bootstrap, Topic.REFERRAL_DECIDED, lambda e: e["org_id"] == org)


def publish_event(producer, e, key):
    """Publish, retrying while a broker started a moment ago still elects partition leaders (a retried send
    that had arrived is a duplicate, which the consumers drop by event id)."""
    def sent():
        try:
            producer.publish(e, key=key)
            return True
        except KafkaError:
            return False
    wait_for(sent, timeout_s=30)


def handle_all(events, publish):
    """Hand events to the handlers as the consumer loop would: decoded from the wire, defaults filled in."""
    for e in events:
        EVENT_HANDLERS[e.type](as_received(e), publish)


def as_received(e):
    return decode_event(encode_event(e))


# --- the exit-interview path over Kafka -------------------------------------------------------------------

def test_poor_exit_interview_over_kafka_recommends_others_once_even_when_redelivered(
        components, run_loop, producer, referral_app, unique):
    org, client_id = f"o{unique}", f"cl-{unique}"
    # The directory is there before the client comes (topics are not ordered between each other).
    for e in directory_events(org):
        publish_event(producer, e, key=e.payload.counselor_id)
    # Each step consumes as a fresh group, from the beginning (a group rejoining right after it left can
    # wait on the broker for long): the handlers must be idempotent on their own for that, and are.
    steps = iter(range(10))

    def consume():
        run_loop("referral", f"referral-{unique}-{next(steps)}", EVENT_HANDLERS, timeout_s=120)

    consume()
    # Intake and exit interview travel on different topics: whichever is handled first, one recommendation
    # each (an exit interview that overtakes the intake waits for it).
    first, exit_event = intake(org, client_id, "co-leaving"), exit_interview(org, client_id, "co-leaving")
    publish_event(producer, first, key=client_id)
    publish_event(producer, exit_event, key=client_id)
    consume()

    # Filtered by event id: in a full test run the e2e platform's own referral worker reads these topics too.
    referral = Referral.objects.get(id=referral_id_for(exit_event.event_id))
    [published] = announcing(components, referral)
    payload = published["payload"]
    assert payload["reason"] == "exit_interview" and payload["client_id"] == client_id
    assert payload["current_counselor_id"] == "co-leaving"
    assert payload["referral_id"] == referral_id_for(exit_event.event_id)
    assert [c["counselor_id"] for c in payload["candidates"]] == ["co-trauma", "co-plain"]
    assert "specialises in trauma" in payload["candidates"][0]["reasons"]
    assert "speaks es" in payload["candidates"][0]["reasons"]
    # Every number explained: the parts (numbers only) sum to the score; the specialty weight doubled for
    # "outside my counselor's expertise"; nobody has measured trauma yet, so the strength is neutral.
    for candidate in payload["candidates"]:
        parts = {k: v for k, v in candidate["parts"].items() if "." not in k}
        assert set(parts) == {"specialty", "strength", "preference", "capacity", "clinic"}
        assert sum(parts.values()) == pytest.approx(candidate["score"], abs=1e-5)
        assert candidate["parts"]["strength"] == 0 and candidate["parts"]["strength.trauma.clients"] == 0
    assert payload["candidates"][0]["parts"]["specialty"] == pytest.approx(0.7)
    assert referral.weights["specialty"] == pytest.approx(0.7) and referral.outside_expertise
    # Who was not considered, and why: the counselor left by id, the hard constraints as counts.
    assert referral.excluded_counselor_ids == ["co-leaving"]
    assert referral.excluded == {"current_counselor": 1, "no_capacity": 1, "language": 1}
    assert referral.candidates[0].parts == {k: v for k, v in payload["candidates"][0]["parts"].items() if "." not in k}
    assert [(s.concern, s.clients, s.estimate) for s in referral.candidates[0].strengths] == [("trauma", 0, None)]
    [intake_referral] = announcing(components, Referral.objects.get(id=referral_id_for(first.event_id)))
    assert intake_referral["payload"]["reason"] == "intake"
    # At intake the client's counselor is not excluded.
    assert "co-leaving" in [c["counselor_id"] for c in intake_referral["payload"]["candidates"]]

    # The exit interview delivered again, and everything handled once more by another group on the same
    # database (the referral id derived from the trigger finds the stored referral): still one.
    [record] = [r for r in read_topic(components.kafka_bootstrap, Topic.EXIT_INTERVIEW_SUBMITTED)
                if r.key == client_id.encode()]
    send_raw(components.kafka_bootstrap, Topic.EXIT_INTERVIEW_SUBMITTED, client_id, record.value)
    consume()
    assert len(announcing(components, referral)) == 1
    assert Referral.objects(org_id=org).count() == 2

    response = referral_app.test_client().get("/api/referrals", query_string={"client_id": client_id},
                                              headers=bearer(referral_app, org))
    assert response.status_code == 200
    assert [r["reason"] for r in response.json] == ["exit_interview", "intake"]
    assert response.json[0]["candidates"][0]["counselor_id"] == "co-trauma"


def test_a_good_exit_interview_recommends_nothing(db, producer, unique):
    org, client_id = f"o{unique}", f"cl-{unique}"
    handle_all([*directory_events(org), intake(org, client_id, "co-leaving")], producer.send)
    fine = exit_interview(org, client_id, "co-leaving", comfortable=4, style_fit=5, confident_progress=4,
                          outside_expertise=False)
    handle_all([fine], producer.send)
    assert Referral.objects(org_id=org, reason="exit_interview").count() == 0


def test_an_exit_interview_before_the_intake_waits_for_it(db, producer, unique):
    org, client_id = f"o{unique}", f"cl-{unique}"
    handle_all(directory_events(org), producer.send)
    early = exit_interview(org, client_id, "co-leaving")
    handle_all([early], producer.send)
    assert ParkedEvent.objects(client_id=client_id).count() == 1 and Referral.objects(org_id=org).count() == 0

    handle_all([intake(org, client_id, "co-leaving")], producer.send)

    referral = Referral.objects.get(id=referral_id_for(early.event_id))
    assert [c.counselor_id for c in referral.candidates] == ["co-trauma", "co-plain"]
    assert ParkedEvent.objects(client_id=client_id).count() == 0
    assert referral.pending_events == []


def test_a_trigger_naming_another_clinic_or_organisation_than_the_clients_is_refused(db, producer, unique):
    org, client_id = f"o{unique}", f"cl-{unique}"
    handle_all([*directory_events(org), intake(org, client_id, "co-leaving")], producer.send)
    wrong_clinic = exit_interview(org, client_id, "co-leaving")
    wrong_clinic = event(Topic.EXIT_INTERVIEW_SUBMITTED, wrong_clinic.payload, org, clinic=OTHER_CLINIC)
    wrong_org = event(Topic.EXIT_INTERVIEW_SUBMITTED, wrong_clinic.payload, f"x{org}")
    for refused in (wrong_clinic, wrong_org):
        with pytest.raises(InvalidEvent):
            handle_all([refused], producer.send)
    assert Referral.objects(org_id=org, reason="exit_interview").count() == 0


# --- read models ------------------------------------------------------------------------------------------

def test_counselor_snapshots_keep_the_newest_and_refuse_another_organisation(db, unique):
    org, now = f"o{unique}", datetime.now(timezone.utc)
    newer = event(Topic.COUNSELOR_UPDATED, {"counselor_id": f"co-{unique}", "clinic_ids": [CLINIC],
                                            "caseload": 7}, org, at=now)
    older = event(Topic.COUNSELOR_UPDATED, {"counselor_id": f"co-{unique}", "clinic_ids": [CLINIC],
                                            "caseload": 2}, org, at=now - timedelta(minutes=5))
    handle_all([newer, older, newer], None)
    assert CounselorView.objects.get(id=f"co-{unique}").caseload == 7

    intruder = event(Topic.COUNSELOR_UPDATED, {"counselor_id": f"co-{unique}", "clinic_ids": [CLINIC]},
                     f"other{unique}", at=now + timedelta(minutes=1))
    with pytest.raises(InvalidEvent):
        handlers.handle_counselor_updated(as_received(intruder), None)
    assert CounselorView.objects.get(id=f"co-{unique}").org_id == org


def test_assignments_delivered_out_of_order_keep_the_newest_counselor(db, producer, unique):
    org, client_id, now = f"o{unique}", f"cl-{unique}", datetime.now(timezone.utc)

    def assigned(counselor_id, at, concerns=()):
        return event(Topic.CLIENT_ASSIGNED, {"client_id": client_id, "counselor_id": counselor_id,
                                             "assigned_by": "fd-1", "concerns": list(concerns)}, org, at=at)

    handle_all([assigned("co-new", now, ["grief"]), assigned("co-old", now - timedelta(hours=1))], producer.send)
    view = ClientView.objects.get(id=client_id)
    assert view.counselor_id == "co-new" and view.concerns == ["grief"] and view.clinic_id == CLINIC

    with pytest.raises(InvalidEvent):
        handle_all([event(Topic.CLIENT_ASSIGNED, {"client_id": client_id, "counselor_id": "x",
                                                  "assigned_by": "fd-1"}, f"other{unique}")], None)


def scored(org, client_id, counselor_id, session, total):
    return event(Topic.ALLIANCE_SCORED, {
        "score_id": f"sc-{client_id}-{session}", "source_event_id": f"fb-{client_id}-{session}",
        "client_id": client_id, "counselor_id": counselor_id, "session_number": session,
        "instrument_id": "rapport-short", "total": total, "mean": total / 3,
        "subscales": {"goal": total / 3, "task": total / 3, "bond": total / 3}}, org)


def test_measured_fit_counts_each_score_once_and_each_client_once(db, producer, unique):
    org = f"o{unique}"
    handle_all([intake(org, "cl-1", concerns=["anxiety", "grief"]), intake(org, "cl-2", concerns=["anxiety"])],
               producer.send)
    sessions = [scored(org, "cl-1", "co-1", 1, 24), scored(org, "cl-1", "co-1", 2, 30),
                scored(org, "cl-2", "co-1", 1, 15)]
    handle_all(sessions + sessions, producer.send)  # every score delivered twice

    fit = CounselorFit.objects.get(id=CounselorFit.key(org, "co-1"))
    # cl-1: (0.8 + 1.0) / 2 = 0.9; cl-2: 0.5 -> anxiety 1.4 over 2 clients, grief 0.9 over 1
    assert fit.concerns["anxiety"]["clients"] == 2 and fit.concerns["anxiety"]["total"] == pytest.approx(1.4)
    assert fit.concerns["grief"] == {"total": pytest.approx(0.9), "clients": 1}
    assert sorted((c.client_id, c.sessions) for c in fit.clients) == [("cl-1", 2), ("cl-2", 1)]
    # The sums of squares, for the within-client variance: 0.8² + 1.0², and 0.5².
    assert sorted((c.client_id, c.sum_squares) for c in fit.clients) == [("cl-1", pytest.approx(1.64)),
                                                                          ("cl-2", pytest.approx(0.25))]


def test_a_record_kept_before_sums_of_squares_keeps_them_unknown(db, producer, unique):
    org = f"o{unique}"
    handle_all([intake(org, "cl-old", concerns=["anxiety"])], producer.send)
    CounselorFit(id=CounselorFit.key(org, "co-1"), org_id=org, counselor_id="co-1", clients=[
        ClientAllianceRecord(client_id="cl-old", concerns=["anxiety"], total=1.5, sessions=2,
                             score_ids=["old-1", "old-2"])],
        concerns={"anxiety": {"total": 0.75, "clients": 1}}).save(force_insert=True)
    handle_all([scored(org, "cl-old", "co-1", 3, 27)], producer.send)
    [record] = CounselorFit.objects.get(id=CounselorFit.key(org, "co-1")).clients
    assert (record.sessions, record.total, record.sum_squares) == (3, pytest.approx(2.4), None)


def test_a_score_before_the_intake_is_counted_once_the_intake_arrives(db, producer, unique):
    org = f"o{unique}"
    handle_all([scored(org, "cl-late", "co-1", 1, 27)], producer.send)
    assert CounselorFit.objects(org_id=org).count() == 0
    handle_all([intake(org, "cl-late", concerns=["sleep"])], producer.send)
    assert CounselorFit.objects.get(id=CounselorFit.key(org, "co-1")).concerns == {
        "sleep": {"total": pytest.approx(0.9), "clients": 1}}


@pytest.fixture
def fresh_strengths(monkeypatch):
    """Strengths estimated again at the first recommendation after a scored session (the service lets its
    cached ones age up to RAPPORT_REFERRAL_STRENGTH_REFRESH_S first: adapters/directory_cache.py)."""
    monkeypatch.setattr(referral_config, "strength_refresh_s", lambda: 0.0)


def test_measured_fit_shapes_the_ranking_and_its_reasons(db, producer, fresh_strengths, unique):
    org = f"o{unique}"
    handle_all([counselor(org, "co-a"), counselor(org, "co-b")], producer.send)
    past = {"co-a": [f"past-a{i}" for i in range(6)], "co-b": [f"past-b{i}" for i in range(6)]}
    handle_all([intake(org, c, concerns=["depression"], preferences={}) for c in past["co-a"] + past["co-b"]],
               producer.send)
    # co-b (the larger id, so it would lose a tie) has six clients at 29/30, co-a six at 15/30.
    handle_all([scored(org, c, "co-b", 1, 29) for c in past["co-b"]] +
               [scored(org, c, "co-a", 1, 15) for c in past["co-a"]], producer.send)
    new = intake(org, f"new-{unique}", concerns=["depression"], preferences={})
    handle_all([new], producer.send)
    referral = Referral.objects.get(id=referral_id_for(new.event_id))
    assert [c.counselor_id for c in referral.candidates] == ["co-b", "co-a"]
    assert "strong alliance with depression clients (6 clients, 6 sessions)" in referral.candidates[0].reasons
    [strength] = referral.candidates[0].strengths
    assert (strength.concern, strength.clients, strength.sessions) == ("depression", 6, 6)
    assert 0.9 < strength.estimate < 29 / 30 and strength.sd > 0 and strength.usual == pytest.approx(0.733, abs=0.01)
    assert referral.candidates[0].parts["strength"] > 0 > referral.candidates[1].parts["strength"]


def test_a_strength_below_the_minimum_evidence_is_not_shown_nor_weighed(db, producer, fresh_strengths, unique):
    org = f"o{unique}"
    handle_all([counselor(org, "co-a"), counselor(org, "co-b")], producer.send)
    past = [f"past-{i}" for i in range(4)]
    handle_all([intake(org, c, concerns=["depression"], preferences={}) for c in past], producer.send)
    handle_all([scored(org, c, "co-b", 1, 30) for c in past], producer.send)  # four perfect clients: too few
    new = intake(org, f"new-{unique}", concerns=["depression"], preferences={})
    handle_all([new], producer.send)
    referral = Referral.objects.get(id=referral_id_for(new.event_id))
    assert [c.counselor_id for c in referral.candidates] == ["co-a", "co-b"]  # a tie, by id
    co_b = referral.candidates[1]
    assert co_b.parts["strength"] == 0 and co_b.strengths[0].estimate is None
    assert "alliance with depression clients: not enough data yet (4 clients)" in co_b.reasons


# --- alliance drops ---------------------------------------------------------------------------------------

def dropped(org, client_id, counselor_id, rules, alert):
    return event(Topic.ALLIANCE_DROPPED, alliance_dropped(client_id, counselor_id, rules=rules, alert_id=alert,
                                                          session_number=5, severity="medium"), org)


def test_a_lasting_low_alliance_asks_once_to_review_the_match(components, db, producer, unique):
    org, client_id = f"o{unique}", f"cl-{unique}"
    handle_all([*directory_events(org), intake(org, client_id, "co-leaving")], producer.send)

    single = dropped(org, client_id, "co-leaving", ["rupture"], "a1")  # one low session: no review
    other_counselor = dropped(org, client_id, "co-plain", ["persistently_low"], "a2")
    sustained = dropped(org, client_id, "co-leaving", ["rupture", "persistently_low"], "a3")
    again = dropped(org, client_id, "co-leaving", ["persistently_low"], "a4")
    handle_all([single, other_counselor, sustained, sustained, again], producer.send)

    [review] = Referral.objects(org_id=org, reason="alliance_decline")
    assert review.id == referral_id_for(sustained.event_id)
    assert review.current_counselor_id == "co-leaving"
    assert "co-leaving" not in [c.counselor_id for c in review.candidates]
    assert len(recommended(components, org, sustained.event_id)) == 1


# --- decisions --------------------------------------------------------------------------------------------

@pytest.fixture
def open_referral(referral_app, producer, unique):
    org, client_id = f"o{unique}", f"cl-{unique}"
    handle_all([*directory_events(org), intake(org, client_id, "co-leaving")], producer.send)
    trigger = exit_interview(org, client_id, "co-leaving")
    handle_all([trigger], producer.send)
    return Referral.objects.get(id=referral_id_for(trigger.event_id))


def test_accepting_publishes_referral_decided_exactly_once(components, referral_app, open_referral):
    org, client = open_referral.org_id, referral_app.test_client()
    url = f"/api/referrals/{open_referral.id}/accept"

    response = client.post(url, json={"counselor_id": "co-plain"}, headers=bearer(referral_app, org))

    assert response.status_code == 200, response.json
    assert response.json["status"] == "accepted" and response.json["chosen_counselor_id"] == "co-plain"
    again = client.post(url, json={"counselor_id": "co-trauma"}, headers=bearer(referral_app, org))
    assert again.status_code == 409
    [event_on_topic] = decided(components, org)
    assert event_on_topic["payload"] == {
        "referral_id": open_referral.id, "client_id": open_referral.client_id, "decision": "accepted",
        "decided_by": "sup-1", "previous_counselor_id": "co-leaving", "new_counselor_id": "co-plain",
        "decline_reason": None}
    assert event_on_topic["correlation_id"] == open_referral.correlation_id
    assert Referral.objects.get(id=open_referral.id).pending_events == []


@pytest.mark.parametrize("role, clinics, body, status", [
    ("counselor", (CLINIC,), {"counselor_id": "co-plain"}, 403),
    ("front_desk", (CLINIC,), {"counselor_id": "co-plain"}, 403),
    ("supervisor", (OTHER_CLINIC,), {"counselor_id": "co-plain"}, 404),
    ("supervisor", (CLINIC,), {"counselor_id": "co-leaving"}, 422),
    ("supervisor", (CLINIC,), {"counselor": "co-plain"}, 422),
])
def test_accepting_is_for_supervisors_of_the_clinic_and_one_of_the_candidates(
        components, referral_app, open_referral, role, clinics, body, status):
    org = open_referral.org_id
    response = referral_app.test_client().post(
        f"/api/referrals/{open_referral.id}/accept", json=body,
        headers=bearer(referral_app, org, role=role, clinics=clinics))
    assert response.status_code == status
    assert Referral.objects.get(id=open_referral.id).status == "recommended"
    assert decided(components, org) == []


def test_declining_keeps_the_note_out_of_the_event(components, referral_app, open_referral):
    org = open_referral.org_id
    response = referral_app.test_client().post(
        f"/api/referrals/{open_referral.id}/decline", headers=bearer(referral_app, org, role="admin", clinics=()),
        json={"reason": "client_declined", "note": "Prefers to wait until after the holidays"})
    assert response.status_code == 200, response.json
    assert response.json["decision_note"] == "Prefers to wait until after the holidays"
    [on_topic] = decided(components, org)
    assert on_topic["payload"]["decision"] == "declined"
    assert on_topic["payload"]["decline_reason"] == "client_declined"
    assert "holidays" not in str(on_topic)


def test_counselors_see_only_their_own_clients_referrals(referral_app, open_referral):
    org, client = open_referral.org_id, referral_app.test_client()
    own = client.get("/api/referrals", headers=bearer(referral_app, org, "counselor", "co-leaving"))
    others = client.get("/api/referrals", headers=bearer(referral_app, org, "counselor", "co-plain"))
    assert open_referral.id in [r["id"] for r in own.json]
    assert others.json == []
    assert client.get(f"/api/referrals/{open_referral.id}",
                      headers=bearer(referral_app, org, "counselor", "co-plain")).status_code == 404
    assert client.get("/api/referrals").status_code == 401


def test_intake_view_needs_an_identity_of_the_organisation(referral_app, open_referral):
    org, client = open_referral.org_id, referral_app.test_client()
    url = f"/api/intakes/in-{open_referral.client_id}"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=bearer(referral_app, f"x{org}")).status_code == 404
    seen = client.get(url, headers=bearer(referral_app, org, "front_desk"))
    assert seen.status_code == 200 and seen.json["client_id"] == open_referral.client_id
    assert seen.json["concerns"] == ["trauma"]


def test_counselors_known_to_referral_are_listed_by_clinic(referral_app, open_referral):
    org, client = open_referral.org_id, referral_app.test_client()
    listed = client.get("/api/counselors", headers=bearer(referral_app, org, "front_desk"))
    assert [c["id"] for c in listed.json] == ["co-en", "co-full", "co-leaving", "co-plain", "co-trauma"]
    assert listed.json[1]["caseload"] == 10
    elsewhere = client.get("/api/counselors", headers=bearer(referral_app, org, clinics=(OTHER_CLINIC,)))
    assert elsewhere.json == []


# --- the supervisors' page --------------------------------------------------------------------------------

def sign_in(app, client, org, role="supervisor", staff="sup-1"):
    token = issue_token(app.extensions["rapport.settings"], Identity(staff, org, (CLINIC,), role))
    client.set_cookie(COOKIE_NAME, token)


def test_the_page_lists_candidates_with_reasons_and_accepts_in_a_form(components, referral_app, open_referral):
    org, client = open_referral.org_id, referral_app.test_client()
    assert client.get("/referrals").status_code == 302  # to sign-in
    sign_in(referral_app, client, org)

    page = client.get("/referrals")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    # People by id for people.js to name; the client's record in intake; each candidate's directory entry in words.
    assert 'data-person-kind="staff" data-person-id="co-trauma"' in html
    assert f'data-person-kind="client" data-person-id="{open_referral.client_id}"' in html
    assert f'href="http://127.0.0.1:8001/clients/{open_referral.client_id}"' in html
    assert "/counselors/co-trauma" not in html  # intake has no such page
    assert "specialises in trauma" in html and "Exit interview" in html
    # Each candidate's parts, the weights (specialty raised for outside expertise) and who was not considered.
    assert "Parts of the score" in html and "Measured strength" in html
    assert "Trauma and PTSD: not enough data yet (0 clients)" in html
    assert "Specialty 0.70 (raised: the concerns were outside the previous counselor" in html
    assert "No free place: 1" in html and "Does not speak the language asked for: 1" in html
    assert "Trauma and PTSD" in html and "Spanish" in html and "In person" in html and "This clinic" in html
    assert f'action="/referrals/{open_referral.id}/accept"' in html

    accept = {"counselor_id": "co-trauma", **form_token(html)}
    elsewhere = client.post(f"/referrals/{open_referral.id}/accept", data=accept,
                            headers={"Origin": "http://127.0.0.1:9999"})
    assert elsewhere.status_code == 403  # a sibling site's form, even with a token it somehow learnt
    posted = client.post(f"/referrals/{open_referral.id}/accept", data=accept)
    assert posted.status_code == 303
    assert posted.headers["Location"].startswith(f"/referrals/{open_referral.id}")
    decided_page = client.get(posted.headers["Location"]).get_data(as_text=True)
    assert "Referral accepted" in decided_page and "Accepted: the client moves to" in decided_page
    assert Referral.objects.get(id=open_referral.id).chosen_counselor_id == "co-trauma"
    assert [e["payload"]["new_counselor_id"] for e in decided(components, org)] == ["co-trauma"]


def test_the_page_shows_front_desk_the_referrals_without_forms(referral_app, open_referral):
    client = referral_app.test_client()
    sign_in(referral_app, client, open_referral.org_id, role="front_desk", staff="fd-1")
    html = client.get("/referrals").get_data(as_text=True)
    assert "co-trauma" in html and "/accept" not in html
    assert "Parts of the score" not in html  # strengths are for the supervisors deciding
    assert client.post(f"/referrals/{open_referral.id}/accept",
                       data={"counselor_id": "co-trauma", **form_token(html)}).status_code == 403


def test_a_decision_taken_while_the_broker_is_away_is_published_by_the_relay(
        components, settings_for, producer, open_referral):
    settings = settings_for("referral")
    offline = create_app({"kafka_bootstrap": f"127.0.0.1:{free_port()}", "mongo_uri": settings.mongo_uri,
                          "db_prefix": settings.db_prefix})
    try:
        response = offline.test_client().post(f"/api/referrals/{open_referral.id}/accept",
                                              json={"counselor_id": "co-trauma"},
                                              headers=bearer(offline, open_referral.org_id))
    finally:
        offline.extensions["rapport.kafka"].close()

    assert response.status_code == 200  # decided and stored with its event
    assert len(Referral.objects.get(id=open_referral.id).pending_events) == 1
    assert decided(components, open_referral.org_id) == []
    assert relay_pending(OUTBOX_DOCUMENTS, producer.send, older_than=timedelta(0)) == 1
    assert relay_pending(OUTBOX_DOCUMENTS, producer.send, older_than=timedelta(0)) == 0
    [on_topic] = decided(components, open_referral.org_id)
    assert on_topic["payload"]["new_counselor_id"] == "co-trauma"
