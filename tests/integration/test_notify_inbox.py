"""Notify's inbox page on the real database and broker: alerts grouped by client with their dimension in words
and the scores against the client's usual level, the bulk acknowledgement (one answer for several alerts,
each told to scoring), and the alert page with the chart, the suggestion and the way to the client's record."""
from __future__ import annotations

from services.common.auth import Identity, issue_token
from services.common.events import Topic, decode_event, encode_event, make_event
from services.notify.adapters.models import AlertAcknowledgement, Notification
from tests.integration.test_notify_api import CLINIC, EVENT_HANDLERS
from tests.support.alerts import alliance_dropped
from tests.support.identity import form_token
from tests.support.kafka_reader import events_on, wait_for


def signed_in(app, org, staff_id, role="counselor"):
    client = app.test_client()
    client.set_cookie("rapport_token", issue_token(app.extensions["rapport.settings"],
                                                   Identity(staff_id, org, (CLINIC,), role)))
    return client


def alert(org, counselor, client, session, dimension="goal", total=5.5, usual=7.8):
    """An alliance alert as scoring sends it, handled by notify's own event handler."""
    e = make_event(Topic.ALLIANCE_DROPPED, alliance_dropped(
        client, counselor, session_number=session, dimension=dimension, total=total, baseline_mean=usual,
        baseline_sessions=3, subscales={"goal": 1.5, "task": 2.0, "bond": 2.5}),
        org_id=org, clinic_id=CLINIC, producer="tests")
    EVENT_HANDLERS[e.type](decode_event(encode_event(e)), lambda *_: None)
    return Notification.objects.get(source_event_id=e.event_id)


def test_the_inbox_groups_a_clients_alerts_and_says_how_far_the_alliance_fell(notify, org):
    first, second = alert(org, "co-1", "cl-1", 3), alert(org, "co-1", "cl-1", 4, dimension="bond", total=6)
    other = alert(org, "co-1", "cl-2", 2, dimension="task", usual=None)
    alert(org, "co-2", "cl-3", 2)  # someone else's

    page = signed_in(notify, org, "co-1").get("/inbox").get_data(as_text=True)

    groups = page.split('class="card inbox-group"')[1:]
    assert len(groups) == 2  # two clients, not three lines
    assert 'data-person-id="cl-2"' in groups[0] and other.id in groups[0]  # the newest first
    assert all(n.id in groups[1] for n in (first, second)) and 'data-person-id="cl-1"' in groups[1]
    assert "Alliance dropped: agreement on goals" in groups[1] and "Alliance dropped: emotional bond" in groups[1]
    assert "total 5.5, usual 7.8" in groups[1] and "total 6, usual 7.8" in groups[1]
    assert "total 5.5</td>" in groups[0]  # no usual level known yet: none is made up
    assert "cl-3" not in page and "3 unread" in page


def test_bulk_acknowledgement_records_one_answer_for_each_alert_and_tells_scoring(components, notify, org):
    first, second, kept = alert(org, "co-1", "cl-1", 3), alert(org, "co-1", "cl-1", 4), alert(org, "co-1", "cl-2", 2)
    theirs = alert(org, "co-2", "cl-3", 2)
    client = signed_in(notify, org, "co-1")
    token = form_token(client.get("/inbox").get_data(as_text=True))

    nothing_ticked = client.post("/inbox/acknowledge", data={**token, "action": "reagreed_goals"})
    foreign = client.post("/inbox/acknowledge", data={**token, "notification_id": [first.id, theirs.id]})
    without_token = client.post("/inbox/acknowledge", data={"notification_id": [first.id]})
    assert nothing_ticked.status_code == 422 and "Tick the notifications" in nothing_ticked.get_data(as_text=True)
    assert foreign.status_code == 404 and without_token.status_code == 403
    assert Notification.objects(acknowledged_at__ne=None, org_id=org).count() == 0  # nothing half-done

    done = client.post("/inbox/acknowledge", data={**token, "notification_id": [first.id, second.id],
                                                   "action": "reagreed_goals"})

    assert done.status_code == 303 and done.headers["Location"].endswith("/inbox")
    stored = {n.id: n for n in Notification.objects(org_id=org)}
    assert [stored[n.id].action for n in (first, second)] == ["reagreed_goals"] * 2
    assert all(stored[n.id].acknowledged_at for n in (first, second))
    assert stored[kept.id].acknowledged_at is None and stored[theirs.id].acknowledged_at is None
    told = wait_for(lambda: (found := events_on(components.kafka_bootstrap, Topic.ALERT_ACKNOWLEDGED,
                                                lambda e: e["org_id"] == org)) and len(found) == 2 and found, 20)
    assert sorted((e["payload"]["alert_id"], e["payload"]["action"]) for e in told) == sorted(
        (n.alert_id, "reagreed_goals") for n in (first, second))
    assert {a.id for a in AlertAcknowledgement.objects(org_id=org)} == {first.id, second.id}
    page = client.get("/inbox").get_data(as_text=True)
    assert "1 unread" in page and page.count('name="notification_id"') == 1  # only the open one to tick
    assert "acknowledged: Agreed the goals again" in page


def test_the_alert_page_shows_the_fall_the_chart_the_suggestion_and_the_record(notify, org):
    item = alert(org, "co-1", "cl-42", 4)
    page = signed_in(notify, org, "co-1").get(f"/inbox/{item.id}").get_data(as_text=True)

    assert "Alliance dropped: agreement on goals" in page
    assert "5.5" in page and "against a usual 7.8 (2.3 lower)" in page
    assert "Agreement on goals this session" in page and "1.5 (item mean)" in page
    assert "Revisit the client&#39;s goals together" in page  # the goal suggestion, from services.common.repair
    assert f'href="{notify.extensions["rapport.settings"].intake_url}/clients/cl-42"' in page
    assert "/charts/trajectory.svg?client_id=cl-42&amp;counselor_id=co-1" in page
    assert 'data-person-id="cl-42"' in page and ">cl-42<" not in page


def test_the_supervision_page_names_counselors_by_the_macro(notify, org):
    alert(org, "co-1", "cl-1", 3)
    page = signed_in(notify, org, "sup-1", "supervisor").get("/supervision").get_data(as_text=True)
    assert 'data-person-kind="staff" data-person-id="co-1"' in page and ">co-1<" not in page


def test_the_alert_page_and_the_inbox_show_the_dimension_against_its_usual_level(notify, org):
    e = make_event(Topic.ALLIANCE_DROPPED, alliance_dropped(
        "cl-77", "co-1", rules=["rupture"], session_number=5, dimension="goal", total=17, baseline_mean=27,
        baseline_sessions=3, subscales={"goal": 4, "task": 6, "bond": 7},
        usual_subscales={"goal": 8, "task": 5.5, "bond": None}), org_id=org, clinic_id=CLINIC, producer="tests")
    EVENT_HANDLERS[e.type](decode_event(encode_event(e)), lambda *_: None)
    item = Notification.objects.get(source_event_id=e.event_id)
    assert item.usual_subscales == {"goal": 8, "task": 5.5}  # numbers only, those known
    client = signed_in(notify, org, "co-1")

    page = client.get(f"/inbox/{item.id}").get_data(as_text=True)

    assert "Agreement on goals 4 against a usual 8 (4 lower)" in page  # the named dimension, in words
    assert "against a usual 27 (10 lower)" in page  # the total, as before
    dimensions = page.split('<dl class="alert-scores">')[1].split("</dl>")[0]
    assert "Agreement on goals this session" in dimensions and "4 (item mean)" in dimensions
    assert "against a usual 5.5 (0.5 higher)" in dimensions  # task rose
    assert "Emotional bond this session" in dimensions and "7 (item mean)" in dimensions  # no usual level: none made up
    inbox = client.get("/inbox").get_data(as_text=True)
    assert "total 17, usual 27; agreement on goals 4 against a usual 8 (4 lower)</td>" in inbox
