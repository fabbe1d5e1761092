"""Notify's API and pages on the real database: identity from the token, scoping by organisation, clinic
and role, acknowledgement, preferences with the webhook secret, and the supervision view."""
from __future__ import annotations

import pytest

from services.common.auth import Identity, issue_token
from services.common.events import Topic, decode_event, encode_event, make_event
from services.notify.adapters.config import NotifySettings
from services.notify.bootstrap import bootstrap, event_handlers
from services.notify.commands import Dispatch
from services.notify.adapters.models import AlertAcknowledgement, Notification, RecipientPreferences
from tests.support.alerts import alliance_dropped
from tests.support.concurrency import at_once
from tests.support.identity import form_token
from tests.support.kafka_reader import events_on, wait_for

CLINIC = "clinic-a"
EVENT_HANDLERS = event_handlers()


def auth(app, org, staff_id, role, clinics=(CLINIC,)):
    token = issue_token(app.extensions["rapport.settings"], Identity(staff_id, org, tuple(clinics), role))
    return {"Authorization": f"Bearer {token}"}


def alert(org, counselor, client="cl-1", clinic=CLINIC, severity="high"):
    e = make_event(Topic.ALLIANCE_DROPPED, alliance_dropped(client, counselor, session_number=3, dimension="bond",
                                                            severity=severity), org_id=org, clinic_id=clinic,
                   producer="tests")
    EVENT_HANDLERS[e.type](decode_event(encode_event(e)), lambda *_: None)
    return Notification.objects.get(source_event_id=e.event_id)


def test_the_inbox_is_the_callers_own_from_the_token(notify, org):
    mine, _theirs = alert(org, "co-1"), alert(org, "co-2")
    client = notify.test_client()

    assert client.get("/api/inbox").status_code == 401
    answer = client.get("/api/inbox", headers=auth(notify, org, "co-1", "counselor"))
    assert answer.status_code == 200 and [n["id"] for n in answer.get_json()] == [mine.id]
    own_by_param = client.get("/api/inbox?counselor_id=co-1", headers=auth(notify, org, "co-1", "counselor"))
    assert [n["id"] for n in own_by_param.get_json()] == [mine.id]
    assert client.get("/api/inbox?counselor_id=co-2", headers=auth(notify, org, "co-1", "counselor")).status_code == 403
    assert client.get("/api/inbox?counselor_id=not an id", headers=auth(notify, org, "co-1", "counselor")
                      ).get_json()["errors"]["query"] == {"counselor_id": ["Not a valid id."]}


def test_another_clinic_or_organisation_sees_nothing(notify, org):
    item = alert(org, "co-1")
    client = notify.test_client()
    elsewhere = auth(notify, org, "sup-z", "supervisor", clinics=("clinic-z",))
    assert client.get("/api/inbox?counselor_id=co-1", headers=elsewhere).get_json() == []
    assert client.get(f"/api/inbox/{item.id}", headers=elsewhere).status_code == 404
    # A recipient's own notifications are theirs in any clinic of the organisation (a telehealth counselor's
    # client of another clinic): the token's clinics do not hide them.
    own_elsewhere = auth(notify, org, "co-1", "counselor", clinics=("clinic-z",))
    assert [n["id"] for n in client.get("/api/inbox", headers=own_elsewhere).get_json()] == [item.id]
    other_org = auth(notify, f"{org}x", "co-1", "counselor")
    assert client.get(f"/api/inbox/{item.id}", headers=other_org).status_code == 404
    assert client.post(f"/api/inbox/{item.id}/ack", headers=other_org).status_code == 404


def test_supervisors_filter_by_counselor_within_their_clinics(notify, org):
    item = alert(org, "co-1")
    client = notify.test_client()
    supervisor = auth(notify, org, "sup-1", "supervisor")
    assert [n["id"] for n in client.get("/api/inbox?counselor_id=co-1", headers=supervisor).get_json()] == [item.id]
    assert client.get(f"/api/inbox/{item.id}", headers=supervisor).status_code == 200
    # Only the recipient acknowledges.
    assert client.post(f"/api/inbox/{item.id}/ack", headers=supervisor).status_code == 403
    other_clinic = auth(notify, org, "sup-2", "supervisor", clinics=("clinic-z",))
    assert client.get("/api/inbox?counselor_id=co-1", headers=other_clinic).get_json() == []


def test_acknowledging_counts_down_unread_and_stops_the_escalation(notify, org):
    first, second = alert(org, "co-1", "cl-1"), alert(org, "co-1", "cl-2")
    client, counselor = notify.test_client(), auth(notify, org, "co-1", "counselor")
    assert client.get("/api/inbox/unread-count", headers=counselor).get_json() == {"unread": 2}
    assert first.escalate_at is not None

    acked = client.post(f"/api/inbox/{first.id}/ack", headers=counselor)
    again = client.post(f"/api/inbox/{first.id}/ack", headers=counselor)

    assert acked.status_code == 200 and acked.get_json()["acknowledged_at"]
    assert again.get_json()["acknowledged_at"] == acked.get_json()["acknowledged_at"]
    assert client.get("/api/inbox/unread-count", headers=counselor).get_json() == {"unread": 1}
    unread = client.get("/api/inbox?unacknowledged=true", headers=counselor).get_json()
    assert [n["id"] for n in unread] == [second.id]
    assert Notification.objects.get(id=first.id).escalate_at is None
    assert client.post("/api/inbox/nope/ack", headers=counselor).status_code == 404


def test_acknowledging_an_alert_says_what_was_done_and_tells_scoring(components, notify, org):
    item = alert(org, "co-1", "cl-7")
    client, counselor = notify.test_client(), auth(notify, org, "co-1", "counselor")
    refused = client.post(f"/api/inbox/{item.id}/ack", headers=counselor, json={"action": "talked a lot"})
    assert refused.status_code == 422 and "action" in str(refused.get_json())
    acked = client.post(f"/api/inbox/{item.id}/ack", headers=counselor, json={"action": "reagreed_goals"})
    assert acked.status_code == 200 and acked.get_json()["action"] == "reagreed_goals"
    again = client.post(f"/api/inbox/{item.id}/ack", headers=counselor, json={"action": "other"})
    assert again.get_json()["action"] == "reagreed_goals"  # the first answer stands
    assert acked.get_json()["suggestion"] and "empathy" in acked.get_json()["suggestion"]  # bond

    [told] = wait_for(lambda: events_on(components.kafka_bootstrap, Topic.ALERT_ACKNOWLEDGED,
                                        lambda e: e["org_id"] == org), 20)
    assert told["payload"] == {"alert_id": item.alert_id, "client_id": "cl-7", "counselor_id": "co-1",
                               "acknowledged_by": "co-1", "action": "reagreed_goals"}
    assert AlertAcknowledgement.objects.get(id=item.id).pending_events == []


def test_preferences_are_the_callers_and_the_webhook_secret_is_shown_once(notify, org):
    client, counselor = notify.test_client(), auth(notify, org, "co-1", "counselor")
    body = {"email": "co-1@clinic.example", "webhook_url": "https://chat.example.org/hook",
            "channels": {"new_client": ["webhook"]}, "quiet_hours": {"start": "22:00", "end": "07:00"},
            "timezone": "Europe/Berlin", "daily_digest": True}

    created = client.put("/api/preferences", json=body, headers=counselor)
    assert created.status_code == 200, created.get_json()
    secret = created.get_json()["webhook_secret"]
    assert len(secret) == 64 and created.get_json()["webhook_secret_set"]
    read = client.get("/api/preferences", headers=counselor).get_json()
    assert "webhook_secret" not in read and read["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert read["email"] == "co-1@clinic.example" and read["channels"] == {"new_client": ["webhook"]}
    unchanged = client.put("/api/preferences", json=body, headers=counselor).get_json()
    assert "webhook_secret" not in unchanged
    rotated = client.put("/api/preferences", json={**body, "rotate_webhook_secret": True}, headers=counselor)
    assert rotated.get_json()["webhook_secret"] != secret
    # Someone else's settings are their own.
    assert client.get("/api/preferences", headers=auth(notify, org, "co-2", "counselor")).get_json()["email"] is None


def test_first_settings_saved_twice_at_once_are_both_answered(notify, org):
    # Two tabs (or a double submit) saving someone's first settings: both find nothing stored and insert.
    body = {"email": "co-3@clinic.example", "channels": {"new_client": ["email"]}, "timezone": "UTC"}

    for round_ in range(5):
        headers = auth(notify, org, f"co-race-{round_}", "counselor")
        answers = at_once(lambda: notify.test_client().put("/api/preferences", json=body, headers=headers), 4)
        assert [a.status_code for a in answers] == [200] * 4, [a.get_json() for a in answers]
    assert RecipientPreferences.objects(org_id=org, staff_id="co-race-0").count() == 1


@pytest.mark.parametrize("change, field", [
    ({"email": "not-an-address"}, "email"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours"),
    ({"channels": {"alliance_dropped": ["sms"]}}, "channels"),
    ({"phone": "123"}, "phone"),
])
def test_bad_preferences_are_a_422_naming_the_field(notify, org, change, field):
    answer = notify.test_client().put("/api/preferences", json={"email": "a@clinic.example", **change},
                                      headers=auth(notify, org, "co-1", "counselor"))
    assert answer.status_code == 422 and field in answer.get_json()["errors"]["json"]


def test_the_supervision_view_counts_open_alerts_per_counselor_for_supervisors_only(notify, org):
    alert(org, "co-1", "cl-1")
    alert(org, "co-1", "cl-2", severity="medium")
    alert(org, "co-2", "cl-3")
    alert(org, "co-9", "cl-4", clinic="clinic-z")
    client = notify.test_client()
    assert client.get("/api/supervision", headers=auth(notify, org, "co-1", "counselor")).status_code == 403

    view = client.get("/api/supervision", headers=auth(notify, org, "sup-1", "supervisor")).get_json()

    assert view["counselors"] == [
        {"counselor_id": "co-1", "unacknowledged_alerts": 2, "unacknowledged_high": 1, "escalated": 0},
        {"counselor_id": "co-2", "unacknowledged_alerts": 1, "unacknowledged_high": 1, "escalated": 0}]
    assert view["escalations"] == []


def test_pages_show_the_inbox_and_embed_the_alliance_chart(notify, org):
    item = alert(org, "co-1", "cl-42")
    client = notify.test_client()
    assert client.get("/inbox").status_code == 302  # to sign-in
    client.set_cookie("rapport_token", auth(notify, org, "co-1", "counselor")["Authorization"][7:])

    page = client.get("/inbox").get_data(as_text=True)
    assert "1 unread" in page and f"/inbox/{item.id}" in page
    detail = client.get(f"/inbox/{item.id}").get_data(as_text=True)
    assert ('<img src="http://127.0.0.1:8002/charts/trajectory.svg?client_id=cl-42&amp;counselor_id=co-1"'
            in detail)
    assert "What did you do about it?" in detail and "Be patient" in detail  # a bond alert's suggestion
    assert client.post(f"/inbox/{item.id}/ack", data={"action": "discussed_alliance"}).status_code == 403
    acked = client.post(f"/inbox/{item.id}/ack", data={"action": "discussed_alliance", **form_token(detail)})
    stored = Notification.objects.get(id=item.id)
    assert acked.status_code == 303 and stored.acknowledged_at is not None and stored.action == "discussed_alliance"
    assert client.get("/supervision").status_code == 403


def test_the_settings_page_saves_the_form_and_shows_a_new_webhook_secret_once(notify, org):
    client = notify.test_client()
    client.set_cookie("rapport_token", auth(notify, org, "co-1", "counselor")["Authorization"][7:])
    form = {**form_token(client.get("/preferences").get_data(as_text=True)),
            "email": "co-1@clinic.example", "webhook_url": "https://chat.example.org/hook",
            "channels.alliance_dropped": ["email", "webhook"], "channels.new_client": ["webhook"],
            "quiet_start": "22:00", "quiet_end": "07:00", "timezone": "Europe/Berlin"}

    saved = client.post("/preferences", data=form)
    again = client.post("/preferences", data=form)
    invalid = client.post("/preferences", data={**form, "email": "nope"})

    assert saved.status_code == 200 and 'data-testid="webhook-secret"' in saved.get_data(as_text=True)
    assert 'data-testid="webhook-secret"' not in again.get_data(as_text=True)
    assert invalid.status_code == 422 and 'id="email-error"' in invalid.get_data(as_text=True)
    stored = client.get("/api/preferences", headers=auth(notify, org, "co-1", "counselor")).get_json()
    assert stored["channels"]["new_client"] == ["webhook"] and stored["channels"]["referral_accepted"] == []
    assert stored["quiet_hours"] == {"start": "22:00", "end": "07:00"} and stored["email"] == "co-1@clinic.example"


def test_a_failing_delivery_is_visible_with_its_last_error(notify, org):
    RecipientPreferences(id=RecipientPreferences.key(org, "co-1"), org_id=org, staff_id="co-1",
                         email="co-1@clinic.example").save()
    item = alert(org, "co-1")
    bootstrap(publish=None, settings=notify.extensions["rapport.settings"],  # nobody listens on port 1
              config=NotifySettings(smtp_port=1)).handle(Dispatch())

    shown = notify.test_client().get(f"/api/inbox/{item.id}", headers=auth(notify, org, "co-1", "counselor"))

    email = shown.get_json()["deliveries"]["email"]
    assert (email["status"], email["attempts"], email["last_error"]) == ("pending", 1, "ConnectionRefusedError")
    assert shown.get_json()["status"] == "pending" and shown.get_json()["acknowledged_at"] is None
