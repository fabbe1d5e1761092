"""Notify in the running platform (gunicorn API + worker processes): an alert published on Kafka reaches
the counselor's inbox over the API with a Bearer token and in a real browser, and is acknowledged there."""
from __future__ import annotations

import uuid

import requests

from services.common.auth import Identity, issue_token
from services.common.config import Settings
from services.common.events import Topic, make_event
from tests.integration.test_notify_harness import publish
from tests.support.alerts import alliance_dropped
from tests.support.kafka_reader import wait_for

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CLINIC = "clinic-a"


def token(org, staff_id, role="counselor"):
    # The platform's processes and this test share the development JWT secret.
    return issue_token(Settings.load("tests"), Identity(staff_id, org, (CLINIC,), role))


def inbox(platform, org, counselor):
    """How to read a counselor's inbox: their own Bearer token, no counselor_id parameter."""
    answer = requests.get(f"{platform.urls['notify']}/api/inbox",
                          headers={"Authorization": f"Bearer {token(org, counselor)}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_alert_on_kafka_is_in_the_inbox_and_acknowledged_in_the_browser(platform):
    from playwright.sync_api import sync_playwright

    org, counselor, client_id = uuid.uuid4().hex, f"co-{uuid.uuid4().hex[:8]}", f"cl-{uuid.uuid4().hex[:8]}"
    publish(Settings.load("tests", {"kafka_bootstrap": platform.kafka_bootstrap}), [make_event(
        Topic.ALLIANCE_DROPPED, alliance_dropped(client_id, counselor, session_number=4, dimension="bond"),
        org_id=org, clinic_id=CLINIC, producer="tests")])

    [item] = wait_for(lambda: inbox(platform, org, counselor), 30)
    assert requests.get(f"{platform.urls['notify']}/api/inbox", timeout=10).status_code == 401
    assert inbox(platform, org, "someone-else") == []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": "rapport_token", "value": token(org, counselor),
                                  "url": platform.urls["notify"]}])
            page = context.new_page()
            page.goto(f"{platform.urls['notify']}/inbox")
            assert page.get_by_test_id("unread").inner_text() == "1 unread"
            page.get_by_role("link", name="alliance dropped").click()
            chart = page.locator("img[alt^='Alliance trajectory']").get_attribute("src")
            assert chart.endswith(f"/charts/trajectory.svg?client_id={client_id}&counselor_id={counselor}")
            page.get_by_role("button", name="Acknowledge").click()
            page.wait_for_load_state()
            assert "Acknowledged" in page.inner_text("main")
        finally:
            browser.close()

    [acknowledged] = inbox(platform, org, counselor)
    assert acknowledged["id"] == item["id"] and acknowledged["acknowledged_at"]
