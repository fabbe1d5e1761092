"""People by name on other services' pages, in a real browser on the platform's one origin (the local gateway,
routed as deploy/proxy): a supervisor signs in once at /, opens scoring's alliance page and notify's inbox, and
sees the client's name — asked of intake by people.js on the same origin — where the pages hold only ids.
Pages that do not exist answer a page, not JSON. Data is seeded through the APIs as a front desk, a client's
phone and an admin would."""
from __future__ import annotations

import re

import requests

from services.common.auth import Identity
from tests.e2e.test_platform import TIMEOUT_S, Practice
from tests.support.browser import DESKTOP, Journey, add_staff, chromium, names_filled, sign_in
from tests.support.identity import bearer
from tests.support.kafka_reader import wait_for

PASSWORD = "supervisor-password-1"


def answer_exit_interview(practice: Practice, client_id: str) -> None:
    """The client says they would like someone else: referral opens a review, which the supervisor is told of."""
    session = requests.post(practice.url("intake", f"/api/clients/{client_id}/sessions"), headers=practice.desk,
                            json={"held_on": "2026-03-09"}, timeout=10)
    assert session.status_code == 201, session.text
    link = requests.post(practice.url("intake", f"/api/clients/{client_id}/feedback-requests"), timeout=10,
                         headers=practice.desk, json={"session_id": session.json()["id"], "kind": "exit_interview"})
    assert link.status_code == 201, link.text
    answered = requests.post(link.json()["url"], timeout=10, data={  # the link is on the one origin
        "comfortable": "2", "style_fit": "2", "confident_progress": "2", "outside_expertise": "no",
        "wants_someone_else": "yes"})
    assert answered.status_code == 200, answered.text


def test_a_supervisor_sees_clients_by_name_on_scoring_and_notify_pages(platform):
    entry = platform.entry_url
    practice = Practice.create(platform)
    supervisor = add_staff(practice, "supervisor", "Sam Supervisor", "supervisor", PASSWORD)
    client_id = practice.new_client()["id"]  # Robin E2e
    practice.answer_feedback_link(client_id, 10, 10, 9)
    answer_exit_interview(practice, client_id)
    as_supervisor = bearer(Identity(supervisor["id"], practice.org, (practice.clinic,), "supervisor"))
    wait_for(lambda: practice.scores(client_id), TIMEOUT_S)
    wait_for(lambda: [n for n in requests.get(practice.url("notify", "/api/inbox"), headers=as_supervisor,
                                               timeout=10).json() if n["client_id"] == client_id], TIMEOUT_S)
    stand_in = f"Client {client_id[:6]}"

    journey = Journey("people by name")
    with chromium() as browser:
        page = browser.new_context(**DESKTOP).new_page()
        page.goto(f"{entry}/")
        assert "/signin" in page.url  # one sign-in, at the one origin
        sign_in(page, entry, supervisor["email"], PASSWORD)

        page.goto(f"{entry}/scoring/alliance")
        names_filled(page)
        journey.snap(page, "alliance by name")
        assert page.locator("main").get_by_text("Robin E2e").first.is_visible()
        assert stand_in not in page.locator("main").inner_text()
        # The layout's links lead to the other services on the same origin.
        assert page.get_by_role("link", name="Inbox").get_attribute("href") == f"{entry}/notify/inbox"

        page.get_by_role("link", name="Inbox").click()
        page.wait_for_url(f"{entry}/notify/inbox")
        names_filled(page)
        journey.snap(page, "inbox by name")
        assert page.locator("main").get_by_text("Robin E2e").first.is_visible()
        assert stand_in not in page.locator("main").inner_text()

        # A page that does not exist, or a record that is not there, is a page with the layout and a way on.
        for path in ("/notify/no-such-page", "/scoring/no-such-page", "/referral/no-such-page", "/no-such-page",
                     "/notify/inbox/no-such-notification", "/referral/referrals/no-such-referral",
                     "/scoring/alliance/trajectory?client_id=no-such-client"):
            missing = page.goto(f"{entry}{path}")
            assert missing.status == 404 and missing.headers["content-type"].startswith("text/html"), path
            assert page.get_by_role("heading", name="Not found").is_visible(), path
        journey.snap(page, "not found")
        page.get_by_role("link", name="Back to the front desk").click()
        page.wait_for_url(re.compile(re.escape(entry) + "/$"))
        # A form posted through the gateway passes the Origin and form-token checks.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(re.escape(entry) + "/signin"))
