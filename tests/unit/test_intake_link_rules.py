"""Intake's rules for reaching a client with a link: consent per channel, a reason for a second link to an
answered session, when a reminder is due, and what the message says."""
from datetime import datetime, timedelta, timezone

import pytest

from services.intake import domain
from services.intake.domain import ContactFacts, ReminderPolicy

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
EVERYTHING = ContactFacts(email_consent=True, sms_consent=True, email="c@example.org", phone="+1 555 0100")


# --- consent ---

def test_a_channel_needs_both_consent_and_an_address():
    assert domain.contact_refusal("email", EVERYTHING, sms_available=True) is None
    assert domain.contact_refusal("sms", EVERYTHING, sms_available=True) is None
    no_consent = ContactFacts(False, False, "c@example.org", "+1 555 0100")
    assert "not agreed" in domain.contact_refusal("email", no_consent, True)
    assert "not agreed" in domain.contact_refusal("sms", no_consent, True)
    no_address = ContactFacts(True, True, None, None)
    assert "No e-mail address" in domain.contact_refusal("email", no_address, True)
    assert "No phone number" in domain.contact_refusal("sms", no_address, True)


def test_text_messages_are_refused_where_no_gateway_is_configured_whatever_the_consent():
    assert "not set up" in domain.contact_refusal("sms", EVERYTHING, sms_available=False)
    assert domain.contact_refusal("email", EVERYTHING, sms_available=False) is None


def test_check_contact_names_the_channel_field_and_refuses_an_unknown_channel():
    with pytest.raises(domain.Refused) as refused:
        domain.check_contact("email", ContactFacts(False, False, "c@example.org", None), True)
    assert refused.value.field == "channel"
    with pytest.raises(domain.Refused):
        domain.check_contact("pigeon", EVERYTHING, True)


def test_reminders_prefer_e_mail_then_text_then_nothing():
    assert domain.reminder_channel(EVERYTHING, sms_available=True) == "email"
    assert domain.reminder_channel(ContactFacts(False, True, "c@example.org", "+1 555 0100"), True) == "sms"
    assert domain.reminder_channel(ContactFacts(False, True, "c@example.org", "+1 555 0100"), False) is None
    assert domain.reminder_channel(ContactFacts(True, False, None, "+1 555 0100"), True) is None


# --- a second link for an answered session ---

def test_an_unanswered_session_needs_no_reason():
    domain.check_reissue("feedback", False, None, None)
    domain.check_reissue("exit_interview", False, None, None)


def test_a_rated_session_gets_no_second_feedback_link_whatever_the_reason():
    for reason in (None, "client_asked_to_answer_again", "other"):
        with pytest.raises(domain.Refused) as refused:
            domain.check_reissue("feedback", True, reason, "a note")
        assert refused.value.field == "session_id" and "rated once" in refused.value.message


def test_an_answered_exit_interview_is_asked_again_only_with_a_known_reason():
    with pytest.raises(domain.Refused) as refused:
        domain.check_reissue("exit_interview", True, None, None)
    assert refused.value.field == "reissue_reason" and "answered" in refused.value.message
    with pytest.raises(domain.Refused, match="reissue_reason"):
        domain.check_reissue("exit_interview", True, "felt_like_it", None)
    domain.check_reissue("exit_interview", True, "answered_by_someone_else", None)


def test_another_reason_needs_a_note_of_reasonable_length():
    with pytest.raises(domain.Refused, match="reissue_note"):
        domain.check_reissue("exit_interview", True, "other", "  ")
    domain.check_reissue("exit_interview", True, "other", "Client's phone was stolen before answering")
    with pytest.raises(domain.Refused, match="reissue_note"):
        domain.check_reissue("exit_interview", True, "client_asked_to_answer_again",
                             "x" * (domain.REISSUE_NOTE_MAX + 1))


# --- when a reminder is due ---

POLICY = ReminderPolicy(after=timedelta(hours=48), max_reminders=2)


def test_a_reminder_is_due_after_the_wait_since_the_last_contact():
    sent = NOW - timedelta(hours=48)
    assert domain.reminder_due(POLICY, "open", 0, sent, NOW)
    assert not domain.reminder_due(POLICY, "open", 0, sent + timedelta(minutes=1), NOW)
    assert domain.reminder_due(POLICY, "open", 1, sent, NOW)  # the second, 48 hours after the first


def test_no_reminder_beyond_the_maximum_or_for_a_closed_link():
    long_ago = NOW - timedelta(days=10)
    assert not domain.reminder_due(POLICY, "open", 2, long_ago, NOW)
    assert not domain.reminder_due(POLICY, "answered", 0, long_ago, NOW)
    assert not domain.reminder_due(POLICY, "expired", 0, long_ago, NOW)
    assert not domain.reminder_due(ReminderPolicy(timedelta(hours=1), 0), "open", 0, long_ago, NOW)


# --- the message ---

def test_the_message_carries_the_link_and_no_health_information():
    url = "https://rapport.example.org/f/token"
    message = domain.link_message("feedback", url, NOW + timedelta(hours=72), reminder=False)
    assert url in message.body and url in message.text
    assert "Your counselor asks how the session went." in message.body
    assert "2026-03-05 12:00 UTC" in message.body
    assert "session" not in message.subject.lower()
    for word in ("anxiety", "depression", "therapy", "score", "alliance"):
        assert word not in (message.subject + message.body + message.text).lower()
    reminder = domain.link_message("feedback", url, NOW, reminder=True)
    assert reminder.subject.startswith("Reminder") and reminder.text.startswith("A reminder: your counselor asks")
