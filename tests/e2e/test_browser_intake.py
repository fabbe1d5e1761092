"""In a real browser (Debian's Chromium): a front-desk user signs in, registers a client, records a session
and creates a feedback link; the client answers it, and an exit interview, on a phone-sized page; the events
reach Kafka. Intake's API runs as its own gunicorn process on this test's database."""
from __future__ import annotations

import os
import sys

import pytest
import requests

from deploy.local import runtime
from deploy.local.components import free_port, start_process
from deploy.local.runtime import ROOT
from services.common import mongo
from services.common.auth import Identity, issue_token
from services.common.events import Topic
from services.intake.bootstrap import bootstrap
from services.intake.commands import SeedOrganisation
from tests.support.kafka_reader import events_on, wait_for

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}
PASSWORD = "front-desk-password"


@pytest.fixture
def intake_extra_env() -> dict[str, str]:
    """More RAPPORT_* settings for the `intake` process; a test module overrides it (its SMTP server...)."""
    return {}


@pytest.fixture
def intake(components, settings_for, unique, tmp_path, intake_extra_env):
    """Intake's API (gunicorn) with an organisation, a counselor and a front-desk user who can sign in."""
    settings = settings_for("intake")
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "RAPPORT_KAFKA_BOOTSTRAP": components.kafka_bootstrap,
           "RAPPORT_MONGO_URI": components.mongo_uri, "RAPPORT_DB_PREFIX": settings.db_prefix,
           "RAPPORT_INTAKE_URL": url, "RAPPORT_WEB_WORKERS": "1", "PYTHONUNBUFFERED": "1", **intake_extra_env}
    process = start_process("intake-api", [
        sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
        "-b", url.removeprefix("http://"), "services.intake.entrypoints.app:create_app()"], tmp_path, env)
    try:
        runtime.wait_http([f"{url}/readyz"], timeout_s=60)
        mongo.connect(settings)
        clinic = f"{unique}-north"
        admin = bootstrap(publish=None).handle(SeedOrganisation(
            unique, "Browser practice", {clinic: "North clinic"}, f"admin@{unique}.test", "Ada Admin",
            "admin-password-1"))
        auth = {"Authorization": f"Bearer {issue_token(settings, Identity(admin.id, unique, (clinic,), 'admin'))}"}
        for body in ({"email": f"desk@{unique}.test", "display_name": "Dana Desk", "role": "front_desk"},
                     {"email": f"casey@{unique}.test", "display_name": "Casey Counselor", "role": "counselor",
                      "counselor": {"specialties": ["anxiety"], "languages": ["en"], "weekly_capacity": 10}}):
            response = requests.post(f"{url}/api/staff", json={**body, "password": PASSWORD, "clinic_ids": [clinic]},
                                     headers=auth, timeout=10)
            assert response.status_code == 201, response.text
        yield url
    finally:
        process.stop()


def test_front_desk_to_phone_in_a_real_browser(intake, components, unique):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            desk = browser.new_context().new_page()
            desk.goto(f"{intake}/clients/new")
            assert "/signin" in desk.url  # sent to sign in, and back afterwards
            desk.get_by_label("E-mail").fill(f"desk@{unique}.test")
            desk.get_by_label("Password").fill(PASSWORD)
            desk.get_by_role("button", name="Sign in").click()
            desk.wait_for_url(f"{intake}/clients/new")

            # A first attempt without a last name or concerns: the errors sit next to their fields.
            desk.get_by_label("First name").fill("Robin")
            desk.get_by_label("Clinic").select_option(label="North clinic")
            desk.get_by_role("button", name="Register client").click()
            last_name = desk.get_by_label("Last name")
            assert last_name.get_attribute("aria-invalid") == "true"
            assert desk.locator("#last_name-error").is_visible()
            assert "Choose at least one concern." in desk.locator("#concerns-error").inner_text()
            assert desk.get_by_label("First name").input_value() == "Robin"  # kept

            last_name.fill("Browser")
            desk.get_by_label("Anxiety").check()
            desk.get_by_label("Language").fill("en")
            desk.get_by_label("Counselor", exact=False).first.select_option(label="Casey Counselor (0/10)")
            desk.get_by_role("button", name="Register client").click()
            assert "Client registered." in desk.locator("main").inner_text()
            assert desk.locator("#current-counselor").inner_text() == "Casey Counselor"
            client_id = desk.url.rsplit("/", 1)[1].split("?")[0]

            desk.get_by_role("button", name="Record session").click()
            desk.get_by_role("button", name="Feedback link for session 1").click()
            feedback_link = desk.get_by_label("Link for session 1").input_value()  # on the link's own page
            desk.goto(f"{intake}/clients/{client_id}")
            desk.get_by_role("button", name="Exit interview link for session 1").click()
            exit_link = desk.get_by_label("Link for session 1").input_value()
            assert "/x/" in exit_link
            assert feedback_link.startswith(f"{intake}/f/")

            phone = browser.new_context(**PHONE).new_page()  # the client: no account, no cookie
            phone.goto(feedback_link)
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
            phone.get_by_role("button", name="Send my answers").click()  # nothing chosen yet
            assert phone.locator("#goal-1-error").is_visible()
            for item, value in (("goal-1", "8"), ("task-1", "6"), ("bond-1", "9")):
                phone.get_by_role("radiogroup").filter(has=phone.locator(f"input[name='{item}']")) \
                    .get_by_label(f"{value} of 10").check(force=True)
            phone.get_by_role("button", name="Send my answers").click()
            assert "Thank you" in phone.locator("h1").inner_text()
            phone.goto(feedback_link)
            assert "Already answered" in phone.locator("h1").inner_text()

            phone.goto(exit_link)
            for name, value in (("comfortable", "2"), ("style_fit", "1"), ("confident_progress", "2")):
                phone.locator(f"input[name='{name}'][value='{value}']").check(force=True)
            phone.locator("input[name='outside_expertise'][value='no']").check(force=True)
            phone.locator("input[name='wants_someone_else'][value='yes']").check(force=True)
            phone.get_by_label("Anything else you would like us to know?").fill("Robin would like someone calmer")
            phone.get_by_role("button", name="Send my answers").click()
            assert "Thank you" in phone.locator("h1").inner_text()

            desk.goto(f"{intake}/clients/{client_id}")
            assert "wants someone else: yes" in desk.locator("main").inner_text()
        finally:
            browser.close()

    [intake_event] = wait_for(lambda: events_on(components.kafka_bootstrap, Topic.INTAKE_SUBMITTED,
                                                lambda e: e["org_id"] == unique), 20)
    assert intake_event["payload"]["client_id"] == client_id
    [feedback] = wait_for(lambda: events_on(components.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED,
                                            lambda e: e["org_id"] == unique), 20)
    assert feedback["payload"]["answers"] == {"goal-1": 8, "task-1": 6, "bond-1": 9}
    assert feedback["payload"]["client_id"] == client_id and feedback["payload"]["session_number"] == 1
    [exit_interview] = wait_for(lambda: events_on(components.kafka_bootstrap, Topic.EXIT_INTERVIEW_SUBMITTED,
                                                  lambda e: e["org_id"] == unique), 20)
    assert exit_interview["payload"]["wants_someone_else"] is True
    for event in (intake_event, feedback, exit_interview):
        assert "Robin" not in str(event) and "Browser" not in str(event)
