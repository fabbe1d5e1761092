"""Referral end to end: its own worker and API processes, input events published straight to Kafka."""
from __future__ import annotations

import uuid

import pytest
import requests

from deploy.local.topic_reader import read_topic
from services.common.auth import Identity, issue_token
from services.common.config import Settings
from services.common.events import Topic, make_event
from services.common.kafka import EventProducer
from tests.support.kafka_reader import events_on, send_raw, wait_for

TIMEOUT_S = 60
CLINIC = "clinic-a"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def kafka(platform):
    producer = EventProducer(Settings.load("tests", {"kafka_bootstrap": platform.kafka_bootstrap}))
    yield producer
    producer.close()


def token(org, role="supervisor", staff="sup-e2e"):
    return issue_token(Settings.load("tests"), Identity(staff, org, (CLINIC,), role))


def api(platform, path, org, method="get", **kwargs):
    return requests.request(method, f"{platform.urls['referral']}{path}", timeout=10,
                            headers={"Authorization": f"Bearer {token(org)}"}, **kwargs)


def publish(kafka, topic, payload, org, key):
    event = make_event(topic, payload, org_id=org, clinic_id=CLINIC, producer="tests")
    kafka.publish(event, key=key)
    return event


def world(platform, kafka, org, client_id, ids):
    """Three counselors known to referral, then a Spanish-speaking trauma client seeing "leaving"."""
    for cid, languages, specialties in ((ids["leaving"], ["es"], ["anxiety"]), (ids["trauma"], ["es"], ["trauma"]),
                                        (ids["other"], ["es", "en"], [])):
        publish(kafka, Topic.COUNSELOR_UPDATED, {
            "counselor_id": cid, "clinic_ids": [CLINIC], "specialties": specialties, "languages": languages,
            "modalities": ["in_person"], "weekly_capacity": 10, "caseload": 5}, org, key=cid)
    wait_for(lambda: len(api(platform, "/api/counselors", org).json()) == 3, TIMEOUT_S)
    publish(kafka, Topic.INTAKE_SUBMITTED, {
        "intake_id": f"in-{client_id}", "client_id": client_id, "concerns": ["trauma"],
        "preferences": {"language": "es"}, "assigned_counselor_id": ids["leaving"]}, org, key=client_id)
    wait_for(lambda: referrals(platform, org, client_id), TIMEOUT_S)


def exit_interview(kafka, org, client_id, leaving, session=6):
    return publish(kafka, Topic.EXIT_INTERVIEW_SUBMITTED, {
        "exit_interview_id": f"ex-{client_id}-{session}", "client_id": client_id, "counselor_id": leaving,
        "session_number": session, "comfortable": 2, "style_fit": 2, "confident_progress": 3,
        "outside_expertise": True, "wants_someone_else": True}, org, key=client_id)


def new_ids():
    """Counselor ids are global (an id names one counselor of one organisation), so each test has its own."""
    suffix = uuid.uuid4().hex[:8]
    return uuid.uuid4().hex, f"cl-{suffix}", {role: f"co-{role}-{suffix}" for role in ("leaving", "trauma", "other")}


def referrals(platform, org, client_id, reason=None):
    listed = api(platform, "/api/referrals", org, params={"client_id": client_id}).json()
    return [r for r in listed if reason in (None, r["reason"])]


def recommended_for(platform, trigger_id):
    return events_on(platform.kafka_bootstrap, Topic.REFERRAL_RECOMMENDED,
                     lambda e: e["payload"]["trigger_event_id"] == trigger_id)


def decided_for(platform, referral_id):
    return events_on(platform.kafka_bootstrap, Topic.REFERRAL_DECIDED,
                     lambda e: e["payload"]["referral_id"] == referral_id)


def test_a_poor_exit_interview_is_recommended_once_and_accepted_once(platform, kafka):
    org, client_id, ids = new_ids()
    world(platform, kafka, org, client_id, ids)

    trigger = exit_interview(kafka, org, client_id, ids["leaving"])
    [referral] = wait_for(lambda: referrals(platform, org, client_id, "exit_interview"), TIMEOUT_S)

    assert [c["counselor_id"] for c in referral["candidates"]] == [ids["trauma"], ids["other"]]
    assert "specialises in trauma" in referral["candidates"][0]["reasons"]
    # The score's parts, the weights applied (specialty doubled for outside expertise) and who was left out.
    assert sum(referral["candidates"][0]["parts"].values()) == pytest.approx(referral["candidates"][0]["score"],
                                                                             abs=1e-5)
    assert referral["weights"]["specialty"] == pytest.approx(0.7) and referral["outside_expertise"]
    assert referral["excluded_counselor_ids"] == [ids["leaving"]]
    [on_topic] = recommended_for(platform, trigger.event_id)
    assert on_topic["payload"]["referral_id"] == referral["id"]
    assert on_topic["payload"]["candidates"][0]["parts"]["strength.trauma.clients"] == 0

    # The same exit interview delivered again, then a later one for the same client (same partition) that
    # shows the worker is past the duplicate.
    [record] = [r for r in read_topic(platform.kafka_bootstrap, Topic.EXIT_INTERVIEW_SUBMITTED)
                if r.key == client_id.encode()]
    send_raw(platform.kafka_bootstrap, Topic.EXIT_INTERVIEW_SUBMITTED, client_id, record.value)
    exit_interview(kafka, org, client_id, ids["leaving"], session=7)
    wait_for(lambda: len(referrals(platform, org, client_id, "exit_interview")) == 2, TIMEOUT_S)
    assert len(recommended_for(platform, trigger.event_id)) == 1

    accepted = api(platform, f"/api/referrals/{referral['id']}/accept", org, method="post",
                   json={"counselor_id": ids["trauma"]})
    assert accepted.status_code == 200, accepted.text
    again = api(platform, f"/api/referrals/{referral['id']}/accept", org, method="post",
                json={"counselor_id": ids["other"]})
    assert again.status_code == 409
    [decision] = wait_for(lambda: decided_for(platform, referral["id"]), TIMEOUT_S)
    assert decision["payload"]["decision"] == "accepted"
    assert decision["payload"]["previous_counselor_id"] == ids["leaving"]
    assert decision["payload"]["new_counselor_id"] == ids["trauma"]
    assert len(decided_for(platform, referral["id"])) == 1


def test_a_supervisor_accepts_a_candidate_in_the_browser(platform, kafka):
    from playwright.sync_api import sync_playwright

    org, client_id, ids = new_ids()
    world(platform, kafka, org, client_id, ids)
    exit_interview(kafka, org, client_id, ids["leaving"])
    [referral] = wait_for(lambda: referrals(platform, org, client_id, "exit_interview"), TIMEOUT_S)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "rapport_token", "value": token(org), "url": platform.entry_url}])
            page = context.new_page()
            page.goto(f"{platform.entry_url}/referral/referrals")
            section = page.locator(f"#referral-{referral['id']}")
            assert "Exit interview" in section.inner_text()
            assert "specialises in trauma" in section.inner_text() and "Trauma and PTSD" in section.inner_text()
            assert "Parts of the score" in section.inner_text() and "Not considered" in section.inner_text()
            section.get_by_role("button", name="Accept candidate 1").click()
            page.wait_for_load_state()
            # To the referral's own page: decided, with the chosen counselor.
            assert page.url.startswith(f"{platform.entry_url}/referral/referrals/{referral['id']}")
            assert "Referral accepted" in page.inner_text("main")
            assert "Accepted: the client moves to" in page.inner_text("main")  # intake has not moved them yet
            page.goto(f"{platform.entry_url}/referral/referrals")
            assert page.locator(f"#referral-{referral['id']}").count() == 0  # no longer open
        finally:
            browser.close()

    [decision] = wait_for(lambda: decided_for(platform, referral["id"]), TIMEOUT_S)
    assert decision["payload"]["new_counselor_id"] == ids["trauma"]
    assert decision["payload"]["decided_by"] == "sup-e2e"
