"""The admin's journey in a real browser on the platform's one origin: sign in, open the administration pages
from the top bar, add a clinic and a counselor, give the counselor a second clinic, set them a new password
(their open session ends), read the audit trail of every service by name, filter it by person, export it as
CSV, and preview alert settings on the clinic's history without saving them."""
from __future__ import annotations

import csv
import re

from tests.e2e.test_platform import TIMEOUT_S, Practice
from tests.support.browser import DESKTOP, Journey, add_staff, chromium, sign_in
from tests.support.kafka_reader import wait_for

PASSWORD = "admin-password-1"
COUNSELOR_PASSWORD = "counselor-password-1"
NEW_PASSWORD = "a fresh passphrase 2"


def audit_loaded(page) -> None:
    # A selector, not wait_for_function: the pages' Content-Security-Policy forbids evaluating strings.
    page.locator("html[data-audit-loaded='true']").wait_for(state="attached", timeout=30000)


def test_an_admin_manages_staff_reads_the_audit_trail_and_previews_alert_settings(platform, tmp_path):
    entry = platform.entry_url
    practice = Practice.create(platform)
    admin = add_staff(practice, "ada", "Ada Admin", "admin", PASSWORD)
    client_id = practice.new_client()["id"]  # Robin E2e
    practice.answer_feedback_link(client_id, 10, 10, 9)
    # The counselor reads the client's scores: records with a person and a client in scoring's trail.
    wait_for(lambda: practice.scores(client_id), TIMEOUT_S)
    email = f"noor@{practice.org}.test"

    journey = Journey("admin pages")
    with chromium() as browser:
        page = browser.new_context(**DESKTOP, accept_downloads=True).new_page()
        sign_in(page, entry, admin["email"], PASSWORD)
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
        page.wait_for_url(f"{entry}/admin")
        journey.snap(page, "admin home")

        # A second clinic.
        page.get_by_role("link", name="Clinics").click()
        page.get_by_label("Name", exact=True).last.fill("South")
        page.get_by_role("button", name="Add clinic").click()
        assert page.get_by_role("status").get_by_text("Clinic added.").is_visible()
        assert page.get_by_role("rowheader", name="South").is_visible()
        journey.snap(page, "clinic added")

        # A counselor, first with a mistake: the error sits next to its field and nothing is lost.
        page.goto(f"{entry}/staff/new")
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("First password").fill("short")
        page.get_by_label("Name", exact=True).fill("Noor Newcomer")
        page.get_by_label("Role").select_option("counselor")
        page.get_by_role("group", name="Clinics").get_by_label("North").check()
        page.get_by_label("OCD").check()
        page.get_by_label("Languages").fill("en, ar")
        page.get_by_role("button", name="Add staff member").click()
        assert page.get_by_label("First password").get_attribute("aria-invalid") == "true"
        assert page.locator("#password-error").is_visible()
        assert page.get_by_label("Name", exact=True).input_value() == "Noor Newcomer"
        page.get_by_label("First password").fill(COUNSELOR_PASSWORD)
        page.get_by_role("group", name="Clinics").get_by_label("North").check()
        page.get_by_role("button", name="Add staff member").click()
        assert page.get_by_text("Staff member added.").is_visible()
        journey.snap(page, "counselor added")

        # Their clinics: North and South.
        page.get_by_role("group", name="Clinics").get_by_label("South").check()
        page.get_by_role("button", name="Save changes").click()
        assert page.get_by_text("Changes saved.").is_visible()
        assert "North, South" in page.locator("main p.muted").first.inner_text()
        journey.snap(page, "clinics changed")

        # The counselor is signed in elsewhere; a new password ends that session.
        counselor = browser.new_context(**DESKTOP).new_page()
        sign_in(counselor, entry, email, COUNSELOR_PASSWORD)
        assert counselor.get_by_role("button", name="Sign out").is_visible()
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_label("The same again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set password").click()
        assert page.get_by_text("Password set.").is_visible()
        journey.snap(page, "password set")
        counselor.reload()
        assert "/signin" in counselor.url
        sign_in(counselor, entry, email, NEW_PASSWORD)
        assert counselor.get_by_role("button", name="Sign out").is_visible()

        # The audit trail of every service, by name.
        page.goto(f"{entry}/admin")
        page.get_by_role("link", name="Audit trail").click()
        audit_loaded(page)
        rows = page.locator("#audit-table tbody tr")
        services = set(page.locator("#audit-table tbody td:nth-child(2)").all_inner_texts())
        assert {"intake", "scoring"} <= services, services
        table = page.locator("#audit-table").inner_text()
        assert "Ada Admin" in table and "Casey Counselor" in table and "Robin E2e" in table
        journey.snap(page, "audit trail")

        page.get_by_label("Person").select_option(label="Casey Counselor (Counselor)")
        page.get_by_role("button", name="Show", exact=True).click()
        audit_loaded(page)
        people = page.locator("#audit-table tbody td:nth-child(3)").all_inner_texts()
        assert people and all(p.startswith("Casey Counselor") for p in people), people
        assert rows.count() == len(people)
        journey.snap(page, "audit by person")

        with page.expect_download() as download:
            page.get_by_role("button", name="Export CSV").click()
        saved = tmp_path / "audit.csv"
        download.value.save_as(saved)
        with saved.open(newline="", encoding="utf-8") as handle:
            exported = list(csv.DictReader(handle))
        assert len(exported) == len(people)
        assert {r["person"] for r in exported} == {"Casey Counselor"}
        assert any(r["service"] == "scoring" and "Robin E2e" in r["clients"] for r in exported), exported
        assert re.search(r"Exported \d+ records", page.locator("#audit-status").inner_text())

        # Alert settings, previewed on the clinic's history and not saved.
        page.goto(f"{entry}/admin")
        page.get_by_role("region", name="Alert settings").get_by_role("link", name="North").click()
        page.wait_for_url(re.compile(re.escape(f"{entry}/scoring/alliance/settings")))
        page.get_by_label("Unfounded alerts a counselor can look into per month").fill("2")
        page.get_by_role("button", name="Preview").click()
        preview = page.locator("#preview")
        assert "not saved" in preview.get_by_role("heading").inner_text()
        assert "alerts per counselor-month" in preview.inner_text()
        assert page.get_by_label("Unfounded alerts a counselor can look into per month").input_value() == "2"
        journey.snap(page, "alert settings preview")
        page.goto(page.url)  # the page afresh (a GET): the settings in force are as they were
        assert page.get_by_label("Unfounded alerts a counselor can look into per month").input_value() != "2"
