"""Notify's rules on plain data: routing per event type, quiet hours, digests, backoff, signatures."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta, timezone

import pytest

from services.common.events import (AllianceDropped, ClientAssigned, IntakeSubmitted, ReferralDecided,
                                    ReferralRecommended)
from services.notify import domain
from services.notify.adapters.config import NotifySettings

UTC = timezone.utc
CLINIC = "clinic-a"
STAFF = [
    domain.Staff("sup-1", "supervisor", (CLINIC,)),
    domain.Staff("sup-2", "supervisor", ("clinic-b",)),
    domain.Staff("sup-3", "supervisor", (CLINIC,), active=False),
    domain.Staff("fd-1", "front_desk", (CLINIC, "clinic-b")),
    domain.Staff("fd-2", "front_desk", ("clinic-b",)),
    domain.Staff("co-1", "counselor", (CLINIC,), supervisor_id="sup-1"),
]


def test_an_alert_is_one_notification_for_the_clients_counselor_with_its_rules_and_dimension():
    [draft] = domain.route_alliance_dropped(AllianceDropped(
        counselor_id="co-1", client_id="cl-1", severity="high", alert_id="a-1", kind="change",
        rules=["rupture", "persistently_low"], dimension="task", session_number=5, source_event_id="e-1",
        instrument_id="wai-sr", total=30.0, threshold=40.0))
    assert (draft.recipient_id, draft.kind, draft.severity) == ("co-1", "alliance_dropped", "high")
    assert (draft.rules, draft.rule, draft.alert_id, draft.alert_kind) == (
        ("rupture", "persistently_low"), "rupture", "a-1", "change")
    assert (draft.dimension, draft.session_number, draft.client_id) == ("task", 5, "cl-1")
    escalated = domain.escalation_draft(draft, "sup-1")
    assert (escalated.recipient_id, escalated.kind, escalated.severity) == ("sup-1", "escalation", "high")
    assert (escalated.rules, escalated.alert_id, escalated.dimension) == (draft.rules, "a-1", "task")


def test_a_recommendation_goes_to_the_active_supervisors_of_the_clinic_only():
    drafts = domain.route_referral_recommended(ReferralRecommended(
        referral_id="r-1", trigger_event_id="e-1", client_id="cl-1", reason="intake", current_counselor_id=None,
        candidates=[]), CLINIC, STAFF)
    assert [d.recipient_id for d in drafts] == ["sup-1"]
    assert drafts[0].kind == "referral_recommended" and drafts[0].referral_id == "r-1"


def test_an_accepted_referral_tells_both_counselors_and_the_front_desk():
    payload = ReferralDecided(referral_id="r-1", client_id="cl-1", decision="accepted", decided_by="sup-1",
                              previous_counselor_id="co-1", new_counselor_id="co-2")
    drafts = domain.route_referral_decided(payload, CLINIC, STAFF)
    assert [d.recipient_id for d in drafts] == ["co-2", "co-1", "fd-1"]
    assert {d.kind for d in drafts} == {"referral_accepted"}


def test_a_declined_referral_tells_nobody():
    payload = ReferralDecided(referral_id="r-1", client_id="cl-1", decision="declined", decided_by="sup-1")
    assert domain.route_referral_decided(payload, CLINIC, STAFF) == []


def test_a_new_client_goes_to_the_assigned_counselor_and_without_one_to_nobody():
    intake = IntakeSubmitted(intake_id="i-1", client_id="cl-1", concerns=["grief"], assigned_counselor_id="co-1")
    [draft] = domain.route_intake_submitted(intake)
    assert (draft.recipient_id, draft.kind) == ("co-1", "new_client")
    assert domain.route_intake_submitted(replace(intake, assigned_counselor_id=None)) == []


def test_an_assignment_tells_the_counselor_unless_a_referral_already_did():
    assigned = ClientAssigned(client_id="cl-1", counselor_id="co-3", assigned_by="fd-1")
    [draft] = domain.route_client_assigned(assigned)
    assert (draft.recipient_id, draft.kind) == ("co-3", "new_client")
    assert domain.route_client_assigned(replace(assigned, referral_id="r-1")) == []


def test_only_high_alliance_alerts_escalate():
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    assert domain.escalate_at("alliance_dropped", "high", now, timedelta(hours=4)) == now + timedelta(hours=4)
    assert domain.escalate_at("alliance_dropped", "medium", now, timedelta(hours=4)) is None
    assert domain.escalate_at("new_client", "high", now, timedelta(hours=4)) is None


def prefs(**kwargs):
    return domain.Preferences(email="co@example.org", **kwargs)


@pytest.mark.parametrize("now, released", [
    (datetime(2026, 1, 5, 21, 0, tzinfo=UTC), datetime(2026, 1, 6, 6, 0, tzinfo=UTC)),  # 22:00 Berlin: starts
    (datetime(2026, 1, 5, 23, 0, tzinfo=UTC), datetime(2026, 1, 6, 6, 0, tzinfo=UTC)),  # midnight Berlin
    (datetime(2026, 1, 6, 5, 30, tzinfo=UTC), datetime(2026, 1, 6, 6, 0, tzinfo=UTC)),  # 06:30 Berlin
    (datetime(2026, 1, 6, 6, 0, tzinfo=UTC), None),                                     # 07:00 Berlin: over
    (datetime(2026, 1, 5, 12, 0, tzinfo=UTC), None),
])
def test_quiet_hours_span_midnight_in_the_recipients_timezone(now, released):
    p = prefs(quiet_start=time(22), quiet_end=time(7), timezone="Europe/Berlin")
    assert domain.quiet_until(now, p) == released


def test_quiet_hours_hold_external_deliveries_except_high_severity():
    p = prefs(webhook_url="https://hooks.example.org/x", quiet_start=time(22), quiet_end=time(7))
    now = datetime(2026, 1, 5, 23, tzinfo=UTC)
    held = domain.plan_deliveries("new_client", "low", now, p, 8)
    assert {(d.channel, d.due_at) for d in held} == {("email", datetime(2026, 1, 6, 7, tzinfo=UTC)),
                                                      ("webhook", datetime(2026, 1, 6, 7, tzinfo=UTC))}
    urgent = domain.plan_deliveries("alliance_dropped", "high", now, p, 8)
    assert {d.due_at for d in urgent} == {now}


def test_channels_per_kind_and_only_those_set_up():
    p = prefs(webhook_url="https://hooks.example.org/x", channels={"new_client": ("webhook",)})
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    assert [d.channel for d in domain.plan_deliveries("new_client", "low", now, p, 8)] == ["webhook"]
    assert [d.channel for d in domain.plan_deliveries("alliance_dropped", "low", now, p, 8)] == ["email", "webhook"]
    assert domain.plan_deliveries("alliance_dropped", "high", now, domain.Preferences(), 8) == []


def test_the_daily_digest_gathers_email_at_the_digest_hour_but_not_high_alerts():
    p = prefs(daily_digest=True, timezone="America/New_York")
    now = datetime(2026, 1, 5, 15, tzinfo=UTC)  # 10:00 in New York, after the 08:00 digest
    [planned] = domain.plan_deliveries("new_client", "low", now, p, 8)
    assert planned.digest and planned.due_at == datetime(2026, 1, 6, 13, tzinfo=UTC)
    [urgent] = domain.plan_deliveries("alliance_dropped", "high", now, p, 8)
    assert not urgent.digest and urgent.due_at == now


def test_backoff_doubles_up_to_the_cap():
    assert [domain.retry_delay(n, 30, 100).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


def test_a_webhook_signature_binds_body_and_timestamp():
    header = domain.sign_webhook("s3cret", 1700000000, b'{"a":1}')
    assert header.startswith("t=1700000000,v1=")
    assert domain.verify_webhook("s3cret", header, b'{"a":1}')
    assert not domain.verify_webhook("s3cret", header, b'{"a":2}')
    assert not domain.verify_webhook("other", header, b'{"a":1}')
    assert not domain.verify_webhook("s3cret", header.replace("t=1700000000", "t=1700000001"), b'{"a":1}')


def test_subjects_and_message_ids_carry_no_client_data():
    assert domain.subject("alliance_dropped", "high", "task") == "[Rapport] Alliance alert (task) - high"
    assert domain.message_id(["b", "a"]) == domain.message_id(["a", "b"]) != domain.message_id(["a"])
    assert domain.client_link("http://intake:8001/", "cl-1") == "http://intake:8001/clients/cl-1"


def test_notify_settings_come_from_rapport_notify_variables():
    loaded = NotifySettings.load(environ={"RAPPORT_NOTIFY_SMTP_HOST": "mail", "RAPPORT_NOTIFY_SMTP_PORT": "587",
                                          "RAPPORT_NOTIFY_SMTP_STARTTLS": "true"})
    assert (loaded.smtp_host, loaded.smtp_port, loaded.smtp_starttls) == ("mail", 587, True)
    with pytest.raises(ValueError, match="RAPPORT_NOTIFY_SMTP_PORT"):
        NotifySettings.load(environ={"RAPPORT_NOTIFY_SMTP_PORT": "twenty-five"})
