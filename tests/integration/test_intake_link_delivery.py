"""Links that reach clients, over the real database, a real SMTP server (aiosmtpd) and a real HTTP receiver
for the SMS webhook: sent only with consent, reminded once and only once, and a second link for an answered
session only with a reason."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.common.events import derived_id
from services.intake.adapters.models import Client, FeedbackRequest, LinkDelivery
from services.intake.bootstrap import bootstrap
from services.intake.commands import SendDueReminders
from services.intake.handlers import REMINDER_NAMESPACE
from tests.integration.test_intake_api import PASSWORD, org, register  # noqa: F401  (the `org` fixture)
from tests.integration import test_notify_harness
from tests.integration.test_notify_harness import WebhookReceiver
from tests.support.identity import form_token

ADDRESS = "link-client@example.org"
SMS_SECRET = "sms-gateway-secret-0123456789"
smtp = test_notify_harness.smtp_server  # the fixture: a real SMTP server (aiosmtpd) for this test


@pytest.fixture
def gateway():
    with WebhookReceiver() as receiver:
        receiver.secret = SMS_SECRET
        yield receiver


@pytest.fixture
def reaching(org, intake_app, smtp, gateway):
    """Intake's app on the org's database, sending through the test SMTP server and the SMS gateway."""
    app = intake_app(smtp_port=smtp.port, sms_webhook_url=gateway.url, sms_webhook_secret=SMS_SECRET,
                     sms_webhook_allowed="127.0.0.1")
    browser = app.test_client()
    response = browser.post("/signin", data={"email": f"front_desk-{org.north}@{org.id}.test",
                                             "password": PASSWORD, "next": "/"})
    assert response.status_code == 303
    return browser


def post_form(browser, path, data, **options):
    return browser.post(path, data={**data, **form_token(browser.get("/").text)}, **options)


def client_with_session(org, **client):
    client_id = register(org, counselor_id=org.counselor_north, **{"email": ADDRESS, **client}).json["id"]
    session = org.http.post(f"/api/clients/{client_id}/sessions", json={"held_on": "2026-02-03"},
                            headers=org.desk_north).json
    return client_id, session["id"]


def make_link(browser, client_id, session_id, **extra):
    response = post_form(browser, f"/clients/{client_id}/links",
                         {"session_id": session_id, "kind": "feedback", **extra})
    assert response.status_code == 303, response.text
    return response.headers["Location"]


def test_the_front_desk_sends_a_link_by_e_mail_with_consent_and_it_arrives(org, reaching, smtp):
    client_id, session_id = client_with_session(org, contact_consent={"email": True})
    link_page = make_link(reaching, client_id, session_id)

    page = reaching.get(link_page).text
    assert 'class="qr-code"' in page and "<svg" in page
    url = page.split('id="link-url" class="link-url" readonly value="', 1)[1].split('"', 1)[0]
    assert "/f/" in url
    assert f"Send by e-mail to {ADDRESS}" in page
    assert "not agreed to text messages" in page  # e-mail consent only

    sent = post_form(reaching, f"{link_page.split('?')[0]}/send", {"channel": "email"}, follow_redirects=True)

    assert sent.status_code == 200 and "Link sent to the client." in sent.text
    [message] = smtp.inbox.to(ADDRESS)
    body = message.get_content()
    assert url in body and "Your counselor asks how the session went." in body
    for private in ("Canary", "Phi-Check", "grief", "sleep", "private note"):  # name, concerns, notes
        assert private not in body and private not in message["Subject"]
    [delivery] = LinkDelivery.objects(client_id=client_id)
    assert (delivery.channel, delivery.purpose, delivery.outcome) == ("email", "link", "sent")
    assert delivery.sent_by and "Sent" in sent.text


def test_without_consent_nothing_is_sent_and_the_page_says_why(org, reaching, smtp):
    client_id, session_id = client_with_session(org)  # no consent recorded at intake
    link_page = make_link(reaching, client_id, session_id).split("?")[0]
    assert "not agreed to be contacted by e-mail" in reaching.get(link_page).text

    refused = post_form(reaching, f"{link_page}/send", {"channel": "email"})

    assert refused.status_code == 422 and "record their consent first" in refused.text
    assert smtp.inbox.to(ADDRESS) == [] and LinkDelivery.objects(client_id=client_id).count() == 0

    recorded = post_form(reaching, f"/clients/{client_id}/consent", {"consent_email": "yes"}, follow_redirects=True)
    assert "Consent recorded." in recorded.text and f"Recorded by front_desk {org.north}" in recorded.text
    [consent] = Client.objects.get(id=client_id).consents
    assert consent.email and not consent.sms and consent.recorded_at is not None
    assert post_form(reaching, f"{link_page}/send", {"channel": "email"}).status_code == 303
    assert len(smtp.inbox.to(ADDRESS)) == 1


def test_a_link_goes_by_text_message_as_a_signed_webhook(org, reaching, gateway):
    client_id, session_id = client_with_session(org, contact_consent={"sms": True})
    link_page = make_link(reaching, client_id, session_id).split("?")[0]
    assert "Send by text message to +1 555 0100" in reaching.get(link_page).text

    assert post_form(reaching, f"{link_page}/send", {"channel": "sms"}).status_code == 303

    [received] = gateway.accepted()
    assert received["verified"] and received["body"]["to"] == "+1 555 0100"
    assert received["body"]["body"].startswith("Your counselor asks how the session went. http")
    assert "/f/" in received["body"]["body"] and "Canary" not in received["body"]["body"]


def test_without_a_gateway_no_text_message_is_offered(org, intake_app):
    client_id, session_id = client_with_session(org, contact_consent={"email": True, "sms": True})
    request_id = org.http.post(f"/api/clients/{client_id}/feedback-requests", headers=org.desk_north,
                               json={"session_id": session_id}).json["id"]
    browser = intake_app().test_client()  # no RAPPORT_SMS_WEBHOOK_URL
    browser.post("/signin", data={"email": f"front_desk-{org.north}@{org.id}.test", "password": PASSWORD})
    page = browser.get(f"/links/{request_id}").text
    assert "Send by e-mail" in page and "text message" not in page
    assert post_form(browser, f"/links/{request_id}/send", {"channel": "sms"}).status_code == 422


def reminder_bus(settings_for, smtp, later):
    settings = settings_for("intake", smtp_port=smtp.port, link_reminder_after_hours=48, link_reminder_max=1)
    return bootstrap(publish=None, settings=settings, clock=lambda: later)


def test_an_unanswered_link_is_reminded_once_with_consent_only(org, settings_for, smtp):
    now = datetime.now(timezone.utc)
    consenting, session_id = client_with_session(org, contact_consent={"email": True})
    reminded = org.http.post(f"/api/clients/{consenting}/feedback-requests", headers=org.desk_north,
                             json={"session_id": session_id}).json
    silent, silent_session = client_with_session(org, email="silent@example.org")  # no consent
    org.http.post(f"/api/clients/{silent}/feedback-requests", headers=org.desk_north,
                  json={"session_id": silent_session})

    assert reminder_bus(settings_for, smtp, now + timedelta(hours=47)).handle(SendDueReminders()) == 0
    assert reminder_bus(settings_for, smtp, now + timedelta(hours=49)).handle(SendDueReminders()) == 1
    # Again (the next pass, a restarted worker): the maximum is reached, nothing more goes out.
    assert reminder_bus(settings_for, smtp, now + timedelta(hours=99)).handle(SendDueReminders()) == 0

    [message] = smtp.inbox.to(ADDRESS)
    assert message["Subject"].startswith("Reminder") and reminded["url"] in message.get_content()
    assert smtp.inbox.to("silent@example.org") == []
    request = FeedbackRequest.objects.get(id=reminded["id"])
    assert request.reminders_sent == 1
    [delivery] = LinkDelivery.objects(request_id=reminded["id"])
    assert (delivery.purpose, delivery.outcome, delivery.sent_by) == ("reminder", "sent", None)


def test_a_reminder_recorded_before_a_crash_is_not_sent_again_and_answered_links_are_left_alone(
        org, settings_for, smtp):
    now = datetime.now(timezone.utc)
    client_id, session_id = client_with_session(org, contact_consent={"email": True})
    crashed = org.http.post(f"/api/clients/{client_id}/feedback-requests", headers=org.desk_north,
                            json={"session_id": session_id}).json
    # A pass recorded reminder 1 and died before counting or sending it.
    LinkDelivery(id=derived_id(REMINDER_NAMESPACE, crashed["id"], 1), request_id=crashed["id"], org_id=org.id,
                 client_id=client_id, channel="email", purpose="reminder", at=now, outcome="sending").save()
    answered = org.http.post(f"/api/clients/{client_id}/feedback-requests", headers=org.desk_north,
                             json={"session_id": session_id}).json
    path = "/" + answered["url"].split("/", 3)[3]
    assert org.http.post(path, data={"goal-1": "9", "task-1": "7", "bond-1": "10"}).status_code == 200

    assert reminder_bus(settings_for, smtp, now + timedelta(hours=49)).handle(SendDueReminders()) == 0

    assert smtp.inbox.to(ADDRESS) == []
    assert FeedbackRequest.objects.get(id=crashed["id"]).reminders_sent == 1
    assert LinkDelivery.objects(request_id=answered["id"]).count() == 0


EXIT_ANSWERS = {"comfortable": "2", "style_fit": "2", "confident_progress": "2", "outside_expertise": "no",
                "wants_someone_else": "no"}


def test_a_rated_session_offers_no_new_feedback_link_and_an_exit_interview_again_needs_a_reason(org, reaching):
    client_id, session_id = client_with_session(org)
    for kind, answers in (("feedback", {"goal-1": "9", "task-1": "7", "bond-1": "10"}),
                          ("exit_interview", EXIT_ANSWERS)):
        first = org.http.post(f"/api/clients/{client_id}/feedback-requests", headers=org.desk_north,
                              json={"session_id": session_id, "kind": kind}).json
        assert org.http.post("/" + first["url"].split("/", 3)[3], data=answers).status_code == 200

    record = reaching.get(f"/clients/{client_id}")
    assert "Rated (a session is rated once)" in record.text and "Feedback link for session 1" not in record.text
    refused = post_form(reaching, f"/clients/{client_id}/links", {"session_id": session_id, "kind": "feedback"})
    assert refused.status_code == 422 and "rated this session already" in refused.text

    asked = post_form(reaching, f"/clients/{client_id}/links", {"session_id": session_id, "kind": "exit_interview"})
    assert asked.status_code == 422
    assert "answered the exit interview for session 1 already" in asked.text and 'id="reissue_reason"' in asked.text
    other = post_form(reaching, f"/clients/{client_id}/links",
                      {"session_id": session_id, "kind": "exit_interview", "reissue_reason": "other"})
    assert other.status_code == 422 and 'id="reissue_note-error"' in other.text

    make_link(reaching, client_id, session_id, kind="exit_interview", reissue_reason="answered_by_someone_else",
              reissue_note="Partner")
    latest = FeedbackRequest.objects(client_id=client_id).order_by("-created_at").first()
    assert (latest.kind, latest.reissue_reason, latest.reissue_note) == (
        "exit_interview", "answered_by_someone_else", "Partner")

    api = org.http.post(f"/api/clients/{client_id}/feedback-requests", headers=org.desk_north,
                        json={"session_id": session_id, "kind": "exit_interview"})
    assert api.status_code == 422 and "reissue_reason" in api.json["errors"]["json"]


def test_another_clinics_link_page_is_not_found_and_sends_nothing(org, intake_app, smtp):
    client_id, session_id = client_with_session(org, contact_consent={"email": True})
    request_id = org.http.post(f"/api/clients/{client_id}/feedback-requests", headers=org.desk_north,
                               json={"session_id": session_id}).json["id"]
    south = intake_app(smtp_port=smtp.port).test_client()
    south.post("/signin", data={"email": f"front_desk-{org.south}@{org.id}.test", "password": PASSWORD})

    page = south.get(f"/links/{request_id}")
    assert page.status_code == 404 and "Canary" not in page.text and ADDRESS not in page.text
    assert post_form(south, f"/links/{request_id}/send", {"channel": "email"}).status_code == 404
    assert post_form(south, f"/clients/{client_id}/consent", {"consent_email": "yes"}).status_code == 404
    assert smtp.inbox.to(ADDRESS) == [] and len(Client.objects.get(id=client_id).consents) == 1
