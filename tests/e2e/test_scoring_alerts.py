"""End to end with scoring's own processes: feedback events on Kafka become scores, one alert naming its rules
and dimension, visible through the API and on the chart; a redelivery changes nothing."""
from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import requests

from services.common.auth import Identity, issue_token
from services.common.config import Settings
from services.common.events import Topic, encode_event, make_event
from services.common.kafka import EventProducer
from tests.support.kafka_reader import events_on, send_raw, wait_for

TIMEOUT_S = 30
CLINIC = "clinic-a"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def feedback(org, client, counselor, session, relationship, goals, approach, overall):
    return make_event(Topic.FEEDBACK_SUBMITTED, {
        "feedback_id": uuid.uuid4().hex, "client_id": client, "counselor_id": counselor,
        "session_number": session, "instrument_id": "session-rating-4",
        "answers": {"relationship": relationship, "goals-topics": goals, "approach": approach,
                    "overall": overall}}, org_id=org, clinic_id=CLINIC, producer="tests")


def falling_alliance(platform):
    """Three steady sessions on the four-item rating, then the relationship falls; returns the ids and events."""
    org, client, counselor = uuid.uuid4().hex, f"c-{uuid.uuid4().hex[:8]}", f"co-{uuid.uuid4().hex[:8]}"
    settings = Settings.load("tests", {"kafka_bootstrap": platform.kafka_bootstrap})
    events = [feedback(org, client, counselor, 1, 10, 9.5, 9.5, 10),   # 39
              feedback(org, client, counselor, 2, 9.5, 10, 9.5, 9.5),  # 38.5
              feedback(org, client, counselor, 3, 10, 9.5, 10, 9.5),   # 39
              feedback(org, client, counselor, 4, 6, 9, 9, 7)]         # 31: the relationship fell
    producer = EventProducer(settings)
    try:
        for event in events:
            producer.publish(event, key=client)
    finally:
        producer.close()
    token = issue_token(settings, Identity(counselor, org, (CLINIC,), "counselor"))
    return settings, org, client, counselor, events, token


def test_feedback_on_kafka_ends_as_scores_an_alert_and_a_chart(platform):
    settings, org, client, counselor, events, token = falling_alliance(platform)
    auth = {"Authorization": f"Bearer {token}"}
    url = platform.urls["scoring"]

    def scores():
        return requests.get(f"{url}/api/scores", params={"client_id": client}, headers=auth, timeout=10).json()

    session_scores = wait_for(lambda: len(scores()) == 4 and scores(), TIMEOUT_S)
    assert [s["total"] for s in session_scores] == [39, 38.5, 39, 31]
    assert session_scores[3]["subscales"] == {"bond": 6, "goal": 9, "task": 9}

    [alert] = requests.get(f"{url}/api/alerts", params={"client_id": client}, headers=auth, timeout=10).json()
    assert (alert["session_number"], alert["kind"], alert["rules"]) == (4, "change", ["rupture"])
    assert alert["dimension"] == "bond" and "empathy" in alert["suggestion"]
    alerts = [alert]
    dropped = wait_for(lambda: events_on(platform.kafka_bootstrap, Topic.ALLIANCE_DROPPED,
                                         lambda e: e["org_id"] == org), TIMEOUT_S)
    assert {e["payload"]["alert_id"] for e in dropped} == {a["alert_id"] for a in alerts}

    chart = requests.get(f"{url}/charts/trajectory.svg", params={"client_id": client, "counselor_id": counselor},
                         headers=auth, timeout=10)
    assert chart.status_code == 200 and chart.headers["Content-Type"].startswith("image/svg+xml")
    root = ET.fromstring(chart.content)
    markers = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "alert-marker"]
    assert len(markers) == 1 and "Session 4: Sudden fall" in markers[0].find("{http://www.w3.org/2000/svg}title").text
    assert "Cutoff 36; flagged below it at session(s) 4" in root.find("{http://www.w3.org/2000/svg}desc").text

    # A redelivery of the falling session and one more session after it: no second score, no second alert.
    send_raw(platform.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, client, encode_event(events[3]))
    producer = EventProducer(settings)
    try:
        producer.publish(feedback(org, client, counselor, 5, 9, 9, 9, 9), key=client)
    finally:
        producer.close()
    wait_for(lambda: len(scores()) == 5, TIMEOUT_S)
    again = requests.get(f"{url}/api/alerts", params={"client_id": client, "rule": "rupture"}, headers=auth,
                         timeout=10).json()
    assert [a["session_number"] for a in again] == [4]
    # One event per session; any copy on the topic (another scoring consumer of the shared topics) has its id.
    scored = {e["event_id"]: e for e in events_on(platform.kafka_bootstrap, Topic.ALLIANCE_SCORED,
                                                  lambda e: e["org_id"] == org)}
    assert sorted(e["payload"]["session_number"] for e in scored.values()) == [1, 2, 3, 4, 5]


def test_a_counselor_sees_the_alert_and_the_chart_in_the_browser(platform):
    from playwright.sync_api import sync_playwright

    _, org, client, counselor, _, token = falling_alliance(platform)
    url = platform.urls["scoring"]
    wait_for(lambda: requests.get(f"{url}/api/alerts", params={"client_id": client, "rule": "rupture"},
                                  headers={"Authorization": f"Bearer {token}"}, timeout=10).json(), TIMEOUT_S)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "rapport_token", "value": token, "url": url}])
            page = context.new_page()
            page.goto(f"{url}/alliance")
            alerts = page.get_by_role("region", name="Recent alerts")
            assert "Sudden fall" in alerts.inner_text() and "empathy" in alerts.inner_text()
            alerts.get_by_role("link", name="Trajectory").first.click()
            page.wait_for_load_state()
            chart = page.get_by_role("img")
            # The chart is an <img>: it loads with the session cookie, and its alt text says what it shows.
            page.wait_for_function("document.querySelector('figure img').naturalWidth > 0")
            assert "below it at session(s) 4" in chart.get_attribute("alt")
            assert "31" in page.get_by_role("table").inner_text()
        finally:
            browser.close()
