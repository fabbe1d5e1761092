"""A counselor acts on alerts, in a real browser on a phone, on the platform's one origin: the inbox fits the
screen and lists each alert under the client's name with the dimension in words and the scores against the
client's usual level; the alert page shows the fall, the chart (loaded from scoring) and what to try first;
acknowledging records what was done, and two other alerts are acknowledged together. The alerts come from
feedback answered as clients' phones do, through the APIs."""
from __future__ import annotations

import re

import requests

from services.common.vocabulary import label
from tests.e2e.test_platform import TIMEOUT_S, Practice
from tests.support.browser import PHONE, Journey, launch, sign_in
from tests.support.kafka_reader import wait_for

PASSWORD = "e2e-password-1"  # the practice's counselor (tests/e2e/test_platform.py)
PHONE_WIDTH = PHONE["viewport"]["width"]


def new_client(practice: Practice, first_name: str, last_name: str) -> str:
    response = requests.post(practice.url("intake", "/api/clients"), headers=practice.desk, timeout=10, json={
        "clinic_id": practice.clinic, "first_name": first_name, "last_name": last_name, "concerns": ["anxiety"],
        "preferences": {"language": "en"}, "counselor_id": practice.counselor})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def alerted(practice: Practice, client_id: str) -> dict:
    [item] = wait_for(lambda: practice.inbox_matches_alerts(client_id), TIMEOUT_S)
    return item


def names_in(page) -> None:
    """Wait until people.js has put the names in. A locator rather than support.browser.names_filled: its
    string predicate is polled with eval in the page, which the Content-Security-Policy refuses."""
    page.locator("html[data-people-loaded='true']").wait_for(state="attached", timeout=10000)


def fits_the_phone(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH


def test_a_counselor_acts_on_alerts_from_the_inbox_on_a_phone(platform):
    from playwright.sync_api import sync_playwright

    entry = platform.entry_url
    practice = Practice.create(platform)
    falling = new_client(practice, "Robin", "Falls")
    for answers in ((10, 10, 9), (10, 9, 10), (9, 10, 10)):  # 29 each: the client's usual
        practice.answer_feedback_link(falling, *answers)
    practice.answer_feedback_link(falling, 9, 6, 9)  # 24: well under the usual
    low = [new_client(practice, "Bea", "Low"), new_client(practice, "Cy", "Low")]
    for client_id in low:
        for _ in range(3):  # below the cutoff from the first session: one persistently-low alert, at the third
            practice.answer_feedback_link(client_id, 5, 5, 5)
    alert = alerted(practice, falling)
    others = [alerted(practice, client_id) for client_id in low]
    dimension = label(alert["dimension"])  # e.g. "collaboration on tasks"

    journey = Journey("counselor acts on alerts")
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_context(**PHONE).new_page()
            sign_in(page, entry, f"counselor@{practice.org}.test", PASSWORD)
            page.goto(f"{entry}/notify/inbox")
            names_in(page)
            journey.snap(page, "inbox on a phone")
            assert fits_the_phone(page)  # was 493 px wide
            robin = page.locator("section.inbox-group", has=page.get_by_role("heading", name=re.compile("Robin Falls")))
            line = robin.get_by_role("link", name=f"Alliance dropped: {dimension}")
            assert line.is_visible()
            assert "total 24, usual 29" in robin.inner_text()
            assert page.locator("section.inbox-group").count() == 3  # one group per client, whatever it holds
            assert f"Client {falling[:6]}" not in page.locator("main").inner_text()

            line.click()
            page.wait_for_url(re.compile(re.escape(f"{entry}/notify/inbox/")))
            names_in(page)
            page.wait_for_load_state("load")  # images included
            assert page.evaluate("document.querySelector('figure img.chart').naturalWidth") > 0  # the chart loaded
            assert page.get_by_role("heading", name=f"Alliance dropped: {dimension}").is_visible()
            assert "24 against a usual 29 (5 lower)" in page.get_by_test_id("total").inner_text()
            assert page.get_by_test_id("suggestion").inner_text() == alert["suggestion"]
            assert page.get_by_text("Robin Falls").first.is_visible()
            record = page.get_by_role("link", name="Open the client's record")
            assert record.get_attribute("href") == f"{entry}/clients/{falling}"
            assert fits_the_phone(page)
            journey.snap(page, "the alert")
            page.get_by_label("Agreed the goals again").check()
            page.get_by_role("button", name="Acknowledge").click()
            page.wait_for_load_state()
            acknowledged = page.locator("main p.flash").inner_text()
            assert "Acknowledged" in acknowledged and "Agreed the goals again" in acknowledged
            journey.snap(page, "acknowledged with what was done")

            record.click()  # one click from the alert to the client's record
            page.wait_for_url(f"{entry}/clients/{falling}")
            assert "Robin" in page.locator("main").inner_text()
            journey.snap(page, "the client's record")

            page.goto(f"{entry}/notify/inbox")
            names_in(page)
            for first_name in ("Bea", "Cy"):
                group = page.locator("section.inbox-group",
                                     has=page.get_by_role("heading", name=re.compile(f"{first_name} Low")))
                group.get_by_role("checkbox", name=re.compile("Alliance dropped")).check()
            page.get_by_label("What did you do about the ticked alerts?").select_option(label="Changed the approach or the tasks")
            journey.snap(page, "two alerts ticked")
            page.get_by_role("button", name="Acknowledge selected").click()
            page.wait_for_url(f"{entry}/notify/inbox")
            names_in(page)
            assert fits_the_phone(page)
            journey.snap(page, "acknowledged together")
            assert page.get_by_role("checkbox", name=re.compile("Alliance dropped")).count() == 0
        finally:
            browser.close()

    acted = {i["id"]: i for i in practice.inbox() if i["kind"] == "alliance_dropped"}
    assert acted[alert["id"]]["action"] == "reagreed_goals"
    assert [acted[o["id"]]["action"] for o in others] == ["changed_approach"] * 2
    assert all(acted[i]["acknowledged_at"] for i in acted)
