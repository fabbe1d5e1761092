"""The front desk on a phone (390 px, Debian's Chromium): a failed sign-in puts the focus on the error; the front
desk, the directory, the new-client form and the client's record fit the screen; the record shows the
preferred days and times and the concerns in words; the counselor picker shows what each counselor offers.
Intake runs alone (the `intake` fixture of test_browser_intake: an admin, a front desk and Casey Counselor)."""
from __future__ import annotations

import requests
from playwright.sync_api import expect

from tests.e2e import test_browser_intake
from tests.e2e.test_browser_intake import PASSWORD
from tests.support.browser import PHONE, Journey, chromium, sign_in

intake = test_browser_intake.intake  # the fixture: intake alone, with its admin, front desk and counselor
intake_extra_env = test_browser_intake.intake_extra_env  # the fixture `intake` asks for: nothing more

SCREEN_WIDTH = PHONE["viewport"]["width"]


def page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_front_desk_on_a_phone(intake, unique):
    token = requests.post(f"{intake}/api/auth/token", json={"email": f"admin@{unique}.test",
                                                            "password": "admin-password-1"}, timeout=10).json()
    response = requests.post(f"{intake}/api/staff", headers={"Authorization": f"Bearer {token['token']}"}, json={
        "email": f"morgan@{unique}.test", "display_name": "Morgan Mood", "role": "counselor", "password": PASSWORD,
        "clinic_ids": [f"{unique}-north"], "counselor": {
            "specialties": ["mood_bipolar", "ocd"], "languages": ["es", "en"], "modalities": ["telehealth"],
            "weekly_capacity": 8}}, timeout=10)
    assert response.status_code == 201, response.text

    journey = Journey("front desk on a phone")
    with chromium() as browser:
        phone = browser.new_context(**PHONE).new_page()
        phone.goto(f"{intake}/signin")
        phone.get_by_label("E-mail").fill(f"desk@{unique}.test")
        phone.get_by_label("Password").fill("not-the-password")
        phone.get_by_role("button", name="Sign in").click()
        # The browser moves focus to an autofocus element as it renders, a moment after the load: wait for it.
        error = phone.locator("#signin-error")
        expect(error).to_be_focused()
        assert error.text_content() == "That e-mail and password do not match an active account."
        assert phone.get_by_label("Password").get_attribute("aria-describedby") == "signin-error"
        journey.snap(phone, "failed sign-in")

        sign_in(phone, intake, f"desk@{unique}.test", PASSWORD)
        assert phone.locator("h1").inner_text() == "Front desk"
        assert page_width(phone) <= SCREEN_WIDTH

        phone.goto(f"{intake}/counselors")
        morgan = phone.locator("tr", has_text="Morgan Mood")
        assert "Mood — bipolar" in morgan.inner_text() and "Spanish, English" in morgan.inner_text()
        assert page_width(phone) <= SCREEN_WIDTH
        journey.snap(phone, "directory")

        phone.goto(f"{intake}/clients/new")
        assert page_width(phone) <= SCREEN_WIDTH
        phone.get_by_label("First name").fill("Sam")
        phone.get_by_label("Last name").fill("Phone")
        phone.get_by_label("Clinic").select_option(label="North clinic")
        for concern in ("OCD", "Mood — bipolar"):
            phone.get_by_label(concern, exact=True).check()
        phone.get_by_label("Language").fill("es")
        for choice in ("Monday", "Thursday", "Evening"):
            phone.get_by_label(choice, exact=True).check()
        journey.snap(phone, "new client")
        phone.get_by_role("button", name="Register client").click()
        assert "Client registered." in phone.locator("main").inner_text()

        preferences = phone.locator("#preferences").inner_text()
        assert "Monday, Thursday" in preferences and "Evening" in preferences and "Spanish" in preferences
        assert "OCD" in phone.locator("main").inner_text()
        # Morgan fits both concerns and speaks Spanish: first, with what they offer; Casey fits neither.
        picker = phone.locator("fieldset.picker li")
        assert picker.count() == 2
        first = picker.nth(0).inner_text()
        assert first.startswith("Morgan Mood") and "Fits: OCD, Mood — bipolar." in first
        assert "Spanish, English (speaks the client's)" in first and "Telehealth" in first
        assert "North clinic" in first and "Caseload 0 of 8" in first
        assert "Specialties: Anxiety." in picker.nth(1).inner_text()
        assert page_width(phone) <= SCREEN_WIDTH
        journey.snap(phone, "client record")

        phone.get_by_role("button", name="Assign", exact=True).click()  # nothing chosen: the error, not a crash
        assert phone.locator("#counselor_id-error").inner_text() == "Choose a counselor."
        phone.get_by_label("Morgan Mood").check()
        phone.get_by_role("button", name="Assign", exact=True).click()
        assert phone.locator("#current-counselor").inner_text() == "Morgan Mood"
        phone.get_by_role("button", name="Record session").click()
        assert "Session recorded." in phone.locator("main").inner_text()
        assert page_width(phone) <= SCREEN_WIDTH
        journey.snap(phone, "counselor assigned, session recorded")

        phone.goto(f"{intake}/")
        row = phone.locator("tr", has_text="Sam Phone").first
        assert "OCD, Mood — bipolar" in row.inner_text() and "Morgan Mood" in row.inner_text()
        assert page_width(phone) <= SCREEN_WIDTH
        journey.snap(phone, "front desk")
