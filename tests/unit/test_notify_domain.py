"""Notify's rules on plain data: routing per event type, quiet hours, digests, backoff, signatures."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta, timezone

import pytest

from services.common.events import (AllianceDropped, ClientAssigned, IntakeSubmitted, ReferralRecommended,
                                    SubscaleScores)
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


def test_a_new_client_goes_to_the_assigned_counselor_and_without_one_to_nobody():
    intake = IntakeSubmitted(intake_id="i-1", client_id="cl-1", concerns=["grief"], assigned_counselor_id="co-1")
    [draft] = domain.route_intake_submitted(intake)
    assert (draft.recipient_id, draft.kind) == ("co-1", "new_client")
    assert domain.route_intake_submitted(replace(intake, assigned_counselor_id=None)) == []


def test_an_assignment_by_the_front_desk_tells_the_new_counselor_only():
    [draft] = domain.route_client_assigned(ClientAssigned(
        client_id="cl-1", counselor_id="co-3", previous_counselor_id="co-1", assigned_by="fd-1"), CLINIC, STAFF)
    assert (draft.recipient_id, draft.kind, draft.rule, draft.referral_id) == ("co-3", "new_client", None, None)


def test_a_move_by_an_accepted_referral_tells_the_new_and_old_counselor_and_the_clinics_front_desk():
    moved = ClientAssigned(client_id="cl-1", counselor_id="co-9", previous_counselor_id="co-1",
                           assigned_by="sup-1", referral_id="r-1")
    drafts = domain.route_client_assigned(moved, CLINIC, STAFF)
    # co-9 works at another clinic (telehealth) and is unknown to the clinic's staff: addressed by id all the same.
    assert [(d.recipient_id, d.kind) for d in drafts] == [
        ("co-9", "new_client"), ("co-1", "referral_accepted"), ("fd-1", "referral_accepted")]
    assert drafts[0].rule == "referral_accepted", "the new counselor is told why the client came to them"
    assert {(d.referral_id, d.counselor_id, d.client_id) for d in drafts} == {("r-1", "co-9", "cl-1")}


def test_a_referral_move_of_a_client_without_a_counselor_tells_the_new_counselor_and_the_front_desk():
    placed = ClientAssigned(client_id="cl-1", counselor_id="co-9", assigned_by="sup-1", referral_id="r-1")
    assert [d.recipient_id for d in domain.route_client_assigned(placed, CLINIC, STAFF)] == ["co-9", "fd-1"]
    # The front desk of the client's clinic only: fd-2 works at clinic-b.
    assert [d.recipient_id for d in domain.route_client_assigned(placed, "clinic-c", STAFF)] == ["co-9"]


def test_a_referral_notification_leads_to_the_referral_and_a_new_client_to_the_record():
    moved = ClientAssigned(client_id="cl-1", counselor_id="co-9", previous_counselor_id="co-1",
                           assigned_by="sup-1", referral_id="r-1")
    new_client, old_counselor, _ = domain.route_client_assigned(moved, CLINIC, STAFF)
    links = {d.recipient_id: domain.notification_link(d, "https://x.test", "https://x.test/referral/")
             for d in (new_client, old_counselor)}
    assert links == {"co-9": "https://x.test/clients/cl-1", "co-1": "https://x.test/referral/referrals/r-1"}


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


# --- the inbox: what an alert says of the scores, and one group per client ---------------------------------

def test_an_alert_keeps_the_sessions_scores_against_the_clients_usual_level():
    [draft] = domain.route_alliance_dropped(AllianceDropped(
        counselor_id="co-1", client_id="cl-1", severity="medium", alert_id="a-1", kind="change", rules=["rupture"],
        dimension="goal", session_number=5, source_event_id="e-1", instrument_id="rapport-short", total=5.5,
        threshold=6.2, baseline_mean=7.8, baseline_sessions=4, subscales=SubscaleScores(goal=1.5, task=2.0, bond=2.0)))
    assert draft.scores == domain.AlertScores(5.5, 7.8, {"goal": 1.5, "task": 2.0, "bond": 2.0})
    assert draft.scores.summary() == "total 5.5, usual 7.8"
    assert round(draft.scores.fall, 1) == 2.3
    assert domain.escalation_draft(draft, "sup-1").scores == draft.scores  # the supervisor sees the same fall


def test_without_a_usual_level_yet_only_the_total_is_said():
    scores = domain.AlertScores(24.0)
    assert (scores.summary(), scores.fall) == ("total 24", None)
    assert domain.AlertScores(29.96, 31.04).summary() == "total 30, usual 31"


@dataclass
class Listed:
    id: str
    client_id: str
    created_at: datetime
    acknowledged_at: datetime | None = None


def test_the_inbox_is_one_group_per_client_open_ones_first_then_the_newest():
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    newest_first = [Listed("n5", "cl-3", at + timedelta(hours=5), acknowledged_at=at + timedelta(hours=6)),
                    Listed("n4", "cl-1", at + timedelta(hours=4)),
                    Listed("n3", "cl-2", at + timedelta(hours=3)),
                    Listed("n2", "cl-1", at + timedelta(hours=2), acknowledged_at=at + timedelta(hours=3)),
                    Listed("n1", "cl-1", at + timedelta(hours=1))]
    groups = domain.group_by_client(newest_first)
    assert [(g.client_id, [n.id for n in g.items], g.open) for g in groups] == [
        ("cl-1", ["n4", "n2", "n1"], 2),  # three alerts of one client: one group, in the order given
        ("cl-2", ["n3"], 1),
        ("cl-3", ["n5"], 0)]  # the newest, but all done: after every client with something open
    assert domain.group_by_client([]) == []


# --- the usual level of each dimension -----------------------------------------------------------------------

def test_an_alert_keeps_each_dimensions_usual_level_and_says_how_far_the_named_one_fell():
    [draft] = domain.route_alliance_dropped(AllianceDropped(
        counselor_id="co-1", client_id="cl-1", severity="medium", alert_id="a-1", kind="change", rules=["rupture"],
        dimension="goal", session_number=5, source_event_id="e-1", instrument_id="rapport-short", total=17.0,
        threshold=22.0, baseline_mean=27.0, baseline_sessions=3, subscales=SubscaleScores(goal=4, task=6, bond=7),
        usual_subscales=SubscaleScores(goal=8, task=6.5, bond=None)))
    scores = draft.scores
    assert scores.usual_subscales == {"goal": 8, "task": 6.5}  # a level not known is left out, not made up
    goal = scores.dimension("goal")
    assert (goal.subscale, goal.score, goal.usual, goal.fall) == ("goal", 4, 8, 4)
    assert [(d.subscale, d.usual, d.fall) for d in scores.dimensions()] == [
        ("goal", 8, 4), ("task", 6.5, 0.5), ("bond", None, None)]
    assert scores.dimension(None) is None and domain.AlertScores(17.0).dimension("goal") is None
    assert domain.escalation_draft(draft, "sup-1").scores == scores  # the supervisor sees the same


def test_an_alert_event_without_usual_levels_gives_none():
    [draft] = domain.route_alliance_dropped(AllianceDropped(
        counselor_id="co-1", client_id="cl-1", severity="high", alert_id="a-1", kind="exit_interview",
        rules=["exit_interview_low_fit"], dimension="bond", session_number=5, source_event_id="e-1",
        instrument_id="exit-interview", total=2.0, threshold=3.0))
    assert draft.scores.usual_subscales == {}
    assert draft.scores.dimension("bond") is None  # an exit interview has no subscale scores either
