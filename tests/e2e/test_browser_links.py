"""Links that reach clients, in a real browser (Debian's Chromium): the front desk registers a client who agrees
to e-mail, makes a feedback link, sees its QR code, copies it and sends it by e-mail, which a real SMTP server
(aiosmtpd) receives; the client answers it on a phone, and the record then says the session is rated.
Intake runs alone (the `intake` fixture of test_browser_intake), sending through this test's SMTP server."""
from __future__ import annotations

import pytest
import requests

from tests.e2e import test_browser_intake
from tests.e2e.test_browser_intake import PASSWORD
from tests.integration import test_notify_harness
from tests.support.browser import DESKTOP, PHONE, Journey, chromium, sign_in
from tests.support.kafka_reader import wait_for

intake = test_browser_intake.intake  # the fixture: intake alone, with its admin, front desk and counselor
smtp = test_notify_harness.smtp_server  # the fixture: a real SMTP server (aiosmtpd) for this test
CLIENT_EMAIL = "jordan.links@example.org"


@pytest.fixture
def intake_extra_env(smtp) -> dict[str, str]:
    return {"RAPPORT_SMTP_HOST": "127.0.0.1", "RAPPORT_SMTP_PORT": str(smtp.port)}


def assign_casey(intake: str, unique: str, client_id: str) -> None:
    token = requests.post(f"{intake}/api/auth/token", json={"email": f"admin@{unique}.test",
                                                            "password": "admin-password-1"}, timeout=10).json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    counselors = requests.get(f"{intake}/api/counselors", headers=headers, timeout=10).json()
    casey = next(c["id"] for c in counselors if c["display_name"] == "Casey Counselor")
    response = requests.post(f"{intake}/api/clients/{client_id}/assignment", json={"counselor_id": casey},
                             headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def test_front_desk_sends_a_link_that_reaches_the_client(intake, smtp, unique):
    from playwright.sync_api import expect

    journey = Journey("links that reach clients")
    with chromium() as browser:
        context = browser.new_context(**DESKTOP)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=intake)
        desk = context.new_page()
        sign_in(desk, intake, f"desk@{unique}.test", PASSWORD)

        desk.goto(f"{intake}/clients/new")
        desk.get_by_label("First name").fill("Jordan")
        desk.get_by_label("Last name").fill("Links")
        desk.locator("#email").fill(CLIENT_EMAIL)
        desk.get_by_label("by e-mail").check()  # the client's consent, captured at intake
        desk.get_by_label("Clinic").select_option(label="North clinic")
        desk.get_by_label("Anxiety", exact=True).check()
        desk.get_by_role("button", name="Register client").click()
        assert "Client registered." in desk.locator("main").inner_text()
        assert "by e-mail: yes" in desk.locator("#consent-state").inner_text().replace("\n", " ")
        journey.snap(desk, "consent on the record")
        client_id = desk.url.rsplit("/", 1)[1].split("?")[0]
        assign_casey(intake, unique, client_id)
        desk.reload()

        desk.get_by_role("button", name="Record session").click()
        desk.get_by_role("button", name="Feedback link for session 1").click()
        expect(desk.locator("h1")).to_have_text("Feedback link for session 1")
        assert desk.locator("#link-state").inner_text() == "open"
        qr = desk.locator("svg.qr-code")
        expect(qr).to_be_visible()
        assert qr.bounding_box()["width"] > 100  # big enough to scan from a tablet
        url = desk.locator("#link-url").input_value()
        assert url.startswith(f"{intake}/f/")
        journey.snap(desk, "link page with QR code")

        desk.get_by_role("button", name="Copy link").click()
        expect(desk.locator("#copy-status")).not_to_be_empty()
        copied = desk.locator("#copy-status").inner_text()
        # Over plain http the clipboard may be refused: then the text is selected for Ctrl+C instead.
        assert copied in ("Link copied.", "Link selected: press Ctrl+C (Cmd+C on a Mac) to copy it.")
        if copied == "Link copied.":
            assert desk.evaluate("navigator.clipboard.readText()") == url
        journey.snap(desk, "copied")

        desk.get_by_role("button", name=f"Send by e-mail to {CLIENT_EMAIL}").click()
        expect(desk.locator("#deliveries")).to_contain_text("Sent")
        journey.snap(desk, "sent by e-mail")
        [message] = wait_for(lambda: smtp.inbox.to(CLIENT_EMAIL), timeout_s=15)
        body = message.get_content()
        assert url in body and "Your counselor asks how the session went." in body
        assert "Jordan" not in body and "Anxiety" not in body.title()

        phone = browser.new_context(**PHONE).new_page()  # the client opens the e-mailed link
        phone.goto(url)
        for item, value in (("goal-1", "8"), ("task-1", "7"), ("bond-1", "9")):
            phone.get_by_role("radiogroup").filter(has=phone.locator(f"input[name='{item}']")) \
                .get_by_label(f"{value} of 10").check(force=True)
        phone.get_by_role("button", name="Send my answers").click()
        assert "Thank you" in phone.locator("h1").inner_text()
        journey.snap(phone, "answered on the phone")

        desk.goto(f"{intake}/clients/{client_id}")
        # A session is rated once: the record says so instead of offering a link that would lead nowhere.
        assert "Rated (a session is rated once)" in desk.locator("main").inner_text()
        assert desk.get_by_role("button", name="Feedback link for session 1").count() == 0
        journey.snap(desk, "rated once")
