"""A reassignment that lands, with the real database and broker: an accepted referral moves the client in
intake and opens their record to a telehealth counselor of another clinic; a decision made on stale facts is
refused (by referral when it knows, by intake otherwise); an assignment supersedes the client's other open
referrals; notify tells the new counselor (whatever their clinic), the old one and the front desk, and stops
showing a decided referral as one to review."""
from __future__ import annotations

from services.common.auth import Identity, issue_token
from services.common.events import Topic, decode_event, encode_event, make_event
from services.intake.adapters.models import Client
from services.intake.handlers import EVENT_HANDLERS as INTAKE_HANDLERS
from services.notify.adapters.models import Notification
from services.notify.bootstrap import event_handlers as notify_event_handlers
from services.notify.entrypoints.app import create_app as create_notify_app
from services.referral.adapters.models import Referral
from services.referral.handlers import referral_id_for
from tests.integration.test_intake_api import PASSWORD, org, register  # noqa: F401  (the `org` fixture)
from tests.integration.test_referral_service import (  # noqa: F401  (fixtures: db, producer, referral_app)
    CLINIC, OTHER_CLINIC, bearer, db, decided, directory_events, event, exit_interview, handle_all, intake,
    producer, referral_app, sign_in)
from tests.support.identity import form_token


def _open_referrals(producer, org_id, client_id, *leaving):
    """The client with co-leaving, and one open exit-interview referral per counselor named in `leaving`."""
    handle_all([*directory_events(org_id), intake(org_id, client_id, "co-leaving")], producer.send)
    referrals = []
    for counselor_id in leaving:
        trigger = exit_interview(org_id, client_id, counselor_id)
        handle_all([trigger], producer.send)
        referrals.append(Referral.objects.get(id=referral_id_for(trigger.event_id)))
    return referrals


def _assigned(org_id, client_id, counselor_id, previous, referral_id=None, by="sup-1", clinic=CLINIC):
    return event(Topic.CLIENT_ASSIGNED, {"client_id": client_id, "counselor_id": counselor_id,
                                         "previous_counselor_id": previous, "assigned_by": by,
                                         "referral_id": referral_id}, org_id, clinic)


# --- referral: supersede and refuse -----------------------------------------------------------------------

def test_an_assignment_supersedes_the_clients_other_open_referrals_once_and_announces_it(
        components, db, producer, referral_app, unique):
    org_id, client_id = f"o{unique}", f"cl-{unique}"
    chosen, older = _open_referrals(producer, org_id, client_id, "co-leaving", "co-leaving")
    http = referral_app.test_client()
    accepted = http.post(f"/api/referrals/{chosen.id}/accept", json={"counselor_id": "co-plain"},
                         headers=bearer(referral_app, org_id))
    assert accepted.status_code == 200, accepted.json

    # Intake carries the decision out; its client.assigned reaches referral (twice: a redelivery).
    moved = _assigned(org_id, client_id, "co-plain", "co-leaving", referral_id=chosen.id)
    handle_all([moved, moved], producer.send)

    # Every other open referral of the client - the older exit interview's and the intake's - is closed.
    statuses = {r.id: (r.status, r.decided_by) for r in Referral.objects(org_id=org_id, client_id=client_id)}
    assert statuses.pop(chosen.id) == ("accepted", "sup-1")
    assert older.id in statuses and set(statuses.values()) == {("superseded", "sup-1")}
    on_topic = {e["payload"]["referral_id"]: e for e in decided(components, org_id)}
    assert len(decided(components, org_id)) == 3, "one event per referral, none for the redelivery"
    assert {on_topic[r]["payload"]["decision"] for r in statuses} == {"superseded"}
    superseded = on_topic[older.id]
    assert superseded["version"] == 2 and superseded["payload"]["decision"] == "superseded"
    assert (superseded["payload"]["previous_counselor_id"], superseded["payload"]["new_counselor_id"]) == (
        "co-leaving", "co-plain")

    # The older referral can no longer move the client: a 409 naming it, the page says so.
    again = http.post(f"/api/referrals/{older.id}/accept", json={"counselor_id": "co-trauma"},
                      headers=bearer(referral_app, org_id))
    assert again.status_code == 409
    assert older.id in again.json["message"] and "superseded" in again.json["message"]
    assert again.json["errors"] == {"referral_id": [again.json["message"]]}
    listed = http.get("/api/referrals?status=superseded", headers=bearer(referral_app, org_id))
    assert sorted(r["id"] for r in listed.json) == sorted(statuses)

    # The chosen counselor works elsewhere (telehealth): they see the referral that brought the client; the
    # counselor left behind sees it too, on a page that says where the client went and offers no record link.
    for counselor_id in ("co-plain", "co-leaving"):
        seen = http.get(f"/api/referrals/{chosen.id}",
                        headers=bearer(referral_app, org_id, "counselor", counselor_id, clinics=(OTHER_CLINIC,)))
        assert seen.status_code == 200, counselor_id
    intake_of = f"/api/intakes/in-{client_id}"
    assert http.get(intake_of, headers=bearer(referral_app, org_id, "counselor", "co-plain",
                                              clinics=(OTHER_CLINIC,))).status_code == 200
    assert http.get(intake_of, headers=bearer(referral_app, org_id, "counselor", "co-leaving")).status_code == 404
    sign_in(referral_app, http, org_id, role="counselor", staff="co-leaving")
    page = http.get(f"/referrals/{chosen.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Accepted: the client moved to" in html and 'data-person-id="co-plain"' in html
    assert f"/clients/{client_id}" not in html, "the record is no longer theirs to open"
    sign_in(referral_app, http, org_id)
    superseded_page = http.get("/referrals?status=superseded").get_data(as_text=True)
    assert f'id="referral-{older.id}"' in superseded_page and "Superseded: the client was reassigned" in superseded_page


def test_a_referral_made_for_another_counselor_than_the_clients_now_is_refused_as_stale(
        components, db, producer, referral_app, unique):
    org_id, client_id = f"o{unique}", f"cl-{unique}"
    # An exit interview about a session with co-plain, while referral knows the client is with co-leaving.
    [stale] = _open_referrals(producer, org_id, client_id, "co-plain")
    http = referral_app.test_client()

    refused = http.post(f"/api/referrals/{stale.id}/accept", json={"counselor_id": "co-trauma"},
                        headers=bearer(referral_app, org_id))

    assert refused.status_code == 409
    assert stale.id in refused.json["message"] and "reassigned since" in refused.json["message"]
    sign_in(referral_app, http, org_id)
    html = http.get("/referrals").get_data(as_text=True)
    page = http.post(f"/referrals/{stale.id}/accept", data={"counselor_id": "co-trauma", **form_token(html)})
    assert page.status_code == 409
    assert "was made while the client was with another counselor" in page.get_data(as_text=True)
    assert Referral.objects.get(id=stale.id).status == "recommended"
    assert decided(components, org_id) == []


# --- intake: the move, access across clinics, stale decisions ---------------------------------------------

def _decision(org, client_id, new_counselor_id, previous, referral_id):
    return decode_event(encode_event(make_event(Topic.REFERRAL_DECIDED, {
        "referral_id": referral_id, "client_id": client_id, "decision": "accepted", "decided_by": "sup-1",
        "previous_counselor_id": previous, "new_counselor_id": new_counselor_id,
    }, org_id=org.id, clinic_id=org.north, producer="referral")))


def test_an_accepted_referral_opens_the_record_to_a_telehealth_counselor_of_another_clinic(org, unique):
    telehealth = org.http.post("/api/staff", headers=org.admin, json={
        "email": f"tele@{unique}.test", "display_name": "Tele Health", "password": PASSWORD, "role": "counselor",
        "clinic_ids": [org.south], "counselor": {"modalities": ["telehealth"], "languages": ["es"]}}).json["id"]
    client_id = register(org, counselor_id=org.counselor_north).json["id"]
    as_telehealth = org.token(Identity(telehealth, org.id, (org.south,), "counselor"))
    as_old = org.token(Identity(org.counselor_north, org.id, (org.north,), "counselor"))
    assert org.http.get(f"/api/clients/{client_id}", headers=as_telehealth).status_code == 404

    INTAKE_HANDLERS[Topic.REFERRAL_DECIDED](_decision(org, client_id, telehealth, org.counselor_north, "ref-1"),
                                            lambda *_: None)

    assert Client.objects.get(id=client_id).counselor_id == telehealth
    record = org.http.get(f"/api/clients/{client_id}", headers=as_telehealth)
    assert record.status_code == 200 and record.json["first_name"] == "Canary"
    assert client_id in [c["id"] for c in org.http.get("/api/clients", headers=as_telehealth).json]
    assert org.http.get(f"/api/clients/{client_id}", headers=as_old).status_code == 404
    browser = org.app.test_client()
    browser.set_cookie("rapport_token", issue_token(org.app.extensions["rapport.settings"],
                                                    Identity(telehealth, org.id, (org.south,), "counselor")))
    page = browser.get(f"/clients/{client_id}")
    assert page.status_code == 200 and "Canary" in page.get_data(as_text=True)


def test_intake_does_not_carry_out_a_decision_made_on_stale_facts_and_does_not_dead_letter_it(org, unique):
    client_id = register(org, counselor_id=org.counselor_north).json["id"]
    telehealth = org.http.post("/api/staff", headers=org.admin, json={
        "email": f"tele@{unique}.test", "display_name": "Tele Health", "password": PASSWORD, "role": "counselor",
        "clinic_ids": [org.south], "counselor": {"modalities": ["telehealth"]}}).json["id"]
    moved = _decision(org, client_id, telehealth, org.counselor_north, "ref-2")
    INTAKE_HANDLERS[Topic.REFERRAL_DECIDED](moved, lambda *_: None)
    # An older open referral, made while the client was with counselor_north, accepted minutes later.
    stale = _decision(org, client_id, org.counselor_north, org.counselor_north, "ref-3")
    INTAKE_HANDLERS[Topic.REFERRAL_DECIDED](stale, lambda *_: None)  # consumed without effect, no exception
    INTAKE_HANDLERS[Topic.REFERRAL_DECIDED](moved, lambda *_: None)  # a redelivery is not stale

    client = Client.objects.get(id=client_id)
    assert client.counselor_id == telehealth
    assert [a.referral_id for a in client.assignments] == [None, "ref-2"]


# --- notify: who is told, and where -----------------------------------------------------------------------

NOTIFY_HANDLERS = notify_event_handlers()


def _notify(e):
    NOTIFY_HANDLERS[e.type](decode_event(encode_event(e)), lambda *_: None)


def test_a_move_reaches_the_new_counselor_of_another_clinic_the_old_one_and_the_front_desk(settings_for, unique):
    settings = settings_for("notify")
    app = create_notify_app({"kafka_bootstrap": settings.kafka_bootstrap, "mongo_uri": settings.mongo_uri,
                             "db_prefix": settings.db_prefix})
    try:
        org_id, client_id = f"o{unique}", f"cl-{unique}"
        for staff_id, role, clinics in (("sup-1", "supervisor", [CLINIC]), ("fd-1", "front_desk", [CLINIC]),
                                        ("co-leaving", "counselor", [CLINIC]), ("co-far", "counselor", [OTHER_CLINIC])):
            _notify(event(Topic.STAFF_UPDATED, {"staff_id": staff_id, "role": role, "clinic_ids": clinics}, org_id,
                          clinics[0]))
        recommended = event(Topic.REFERRAL_RECOMMENDED, {
            "referral_id": "ref-1", "trigger_event_id": "t-1", "client_id": client_id,
            "current_counselor_id": "co-leaving", "reason": "exit_interview", "candidates": []}, org_id)
        _notify(recommended)
        _notify(event(Topic.REFERRAL_DECIDED, {"referral_id": "ref-1", "client_id": client_id, "decision": "accepted",
                                               "decided_by": "sup-1", "previous_counselor_id": "co-leaving",
                                               "new_counselor_id": "co-far"}, org_id))
        _notify(_assigned(org_id, client_id, "co-far", "co-leaving", referral_id="ref-1"))

        [review] = Notification.objects(org_id=org_id, kind="referral_recommended")
        assert review.acknowledged_at is not None, "a decided referral is no longer one to review"
        http = app.test_client()

        def inbox(staff_id, role, clinic):
            token = issue_token(app.extensions["rapport.settings"], Identity(staff_id, org_id, (clinic,), role))
            answer = http.get("/api/inbox", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200
            return [(n["kind"], n["rule"], n["referral_id"]) for n in answer.get_json() if n["client_id"] == client_id]

        assert inbox("co-far", "counselor", OTHER_CLINIC) == [("new_client", "referral_accepted", "ref-1")]
        assert inbox("co-leaving", "counselor", CLINIC) == [("referral_accepted", None, "ref-1")]
        assert inbox("fd-1", "front_desk", CLINIC) == [("referral_accepted", None, "ref-1")]

        # The page each one opens works: no chart of sessions that do not exist; the old counselor is sent to
        # the referral's page rather than to a record they may no longer open.
        old = Notification.objects.get(org_id=org_id, recipient_id="co-leaving")
        new = Notification.objects.get(org_id=org_id, recipient_id="co-far")
        # What an e-mail or a webhook links to: the referral's page for the old counselor, the record for the new.
        assert old.link.endswith("/referrals/ref-1") and new.link.endswith(f"/clients/{client_id}")
        http.set_cookie("rapport_token", issue_token(app.extensions["rapport.settings"],
                                                     Identity("co-leaving", org_id, (CLINIC,), "counselor")))
        page = http.get(f"/inbox/{old.id}")
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert "/referrals/ref-1" in html and f"/clients/{client_id}" not in html and "trajectory.svg" not in html
        http.set_cookie("rapport_token", issue_token(app.extensions["rapport.settings"],
                                                     Identity("co-far", org_id, (OTHER_CLINIC,), "counselor")))
        page = http.get(f"/inbox/{new.id}")
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert f"/clients/{client_id}" in html and "trajectory.svg" not in html
    finally:
        app.extensions["rapport.kafka"].close()
