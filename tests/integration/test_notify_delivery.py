"""Notify against the real broker, FerretDB, an SMTP server and a webhook receiver: routing from Kafka,
deduplication, e-mail, signed webhooks with retries, quiet hours, digest and escalation on a test clock."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from deploy.local.components import free_port
from services.common import mongo
from services.common.auth import Identity, issue_token
from services.common.events import CrossTenantEvent, Topic, decode_event, encode_event, make_event, new_id
from services.notify import domain
from services.notify.entrypoints.app import create_app
from services.notify.adapters.config import NotifySettings
from services.notify.bootstrap import bootstrap, event_handlers
from services.notify.commands import Dispatch
from services.notify.adapters.models import Notification, RecipientPreferences, StaffMember
from tests.integration.test_notify_harness import publish, smtp_server, webhook_receiver  # noqa: F401 (fixtures)
from tests.support.alerts import alliance_dropped
from tests.support.kafka_reader import send_raw

CLINIC = "clinic-a"
# As the worker wires them (bootstrap.worker): the real clock, the environment's settings.
EVENT_HANDLERS = event_handlers()


class Clock:
    """The dispatcher's time: the real time moved forward by the test instead of sleeping."""

    def __init__(self):
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, **delta) -> None:
        self.offset += timedelta(**delta)


def event(type_, payload, org, clinic=CLINIC):
    return make_event(type_, payload, org_id=org, clinic_id=clinic, producer="tests")


def dropped(org, client, counselor, severity="high", session=2):
    return event(Topic.ALLIANCE_DROPPED, alliance_dropped(client, counselor, severity=severity, session_number=session),
                 org)


def staff(org, staff_id, role, clinics=(CLINIC,), supervisor=None):
    return event(Topic.STAFF_UPDATED, {"staff_id": staff_id, "role": role, "clinic_ids": list(clinics),
                                       "supervisor_id": supervisor}, org)


@pytest.fixture
def notify_settings(settings_for):
    settings = settings_for("notify")
    mongo.connect(settings)
    return settings


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def dispatcher_for(notify_settings, clock):
    """A dispatch pass as the worker runs it, on the test clock: `dispatcher_for(**config)()`."""
    def make(**config):
        # The receiver listens on 127.0.0.1: an internal address the deployment must allow by name.
        bus = bootstrap(publish=None, settings=notify_settings, clock=clock, config=NotifySettings(**{
            "retry_base_s": 60, "smtp_timeout_s": 5, "webhook_allowed": "127.0.0.1", **config}))
        return lambda: bus.handle(Dispatch())
    return make


def set_preferences(org, staff_id, **fields):
    RecipientPreferences(id=RecipientPreferences.key(org, staff_id), org_id=org, staff_id=staff_id,
                         **fields).save()


def handle(e):
    """Hand an event to its handler as the consumer would: decoded from the wire (defaults filled in)."""
    EVENT_HANDLERS[e.type](decode_event(encode_event(e)), lambda *_: None)


def test_each_event_type_is_routed_through_kafka_once_per_recipient(components, run_loop, settings_for, unique):
    org = f"o{unique}"
    # Staff ids of this test's own: the loop reads the shared topics from the start, and an id that other
    # tests' events put in another organisation first would rightly be refused here.
    co1, co2, co3, co4, sup1, fd1 = (f"{name}-{unique}" for name in ("co-1", "co-2", "co-3", "co-4", "sup-1", "fd-1"))
    directory = [
        staff(org, sup1, "supervisor"), staff(org, f"sup-other-{unique}", "supervisor", clinics=("clinic-b",)),
        staff(org, fd1, "front_desk"),
        event(Topic.COUNSELOR_UPDATED, {"counselor_id": co1, "clinic_ids": [CLINIC], "supervisor_id": sup1}, org),
    ]
    alert = dropped(org, "cl-1", co1)
    routed = [
        alert,
        event(Topic.REFERRAL_RECOMMENDED, {"referral_id": "r-1", "trigger_event_id": new_id(), "client_id": "cl-1",
                                           "current_counselor_id": co1, "reason": "alliance_decline",
                                           "candidates": [{"counselor_id": co2, "score": 0.8}]}, org),
        event(Topic.REFERRAL_DECIDED, {"referral_id": "r-1", "client_id": "cl-1", "decision": "accepted",
                                       "decided_by": sup1, "previous_counselor_id": co1,
                                       "new_counselor_id": co2}, org),
        # The move itself, as intake carries the decision out: who is told is routed from it.
        event(Topic.CLIENT_ASSIGNED, {"client_id": "cl-1", "counselor_id": co2, "previous_counselor_id": co1,
                                      "assigned_by": sup1, "referral_id": "r-1"}, org),
        event(Topic.INTAKE_SUBMITTED, {"intake_id": "i-1", "client_id": "cl-2", "concerns": ["grief"],
                                       "assigned_counselor_id": co3}, org),
        event(Topic.CLIENT_ASSIGNED, {"client_id": "cl-3", "counselor_id": co4, "assigned_by": fd1}, org),
    ]
    # The staff directory first: topics are consumed in no particular order relative to each other.
    publish(settings_for("tests"), directory)
    run_loop("notify", f"notify-{unique}", EVENT_HANDLERS)
    publish(settings_for("tests"), routed)
    send_raw(components.kafka_bootstrap, Topic.ALLIANCE_DROPPED, "cl-1", encode_event(alert))  # a redelivery

    run_loop("notify", f"notify-{unique}", EVENT_HANDLERS)

    # Only what these events caused: a referral worker running in the same session may answer the alert
    # with a recommendation of its own, which is routed too.
    mine = Notification.objects(org_id=org, source_event_id__in=[e.event_id for e in routed])
    got = sorted((n.recipient_id, n.kind) for n in mine)
    assert got == sorted([(co1, "alliance_dropped"), (sup1, "referral_recommended"),
                          (co2, "new_client"), (co1, "referral_accepted"), (fd1, "referral_accepted"),
                          (co3, "new_client"), (co4, "new_client")])
    alert = Notification.objects.get(org_id=org, kind="alliance_dropped")
    assert alert.link.endswith("/clients/cl-1") and (alert.rules, alert.dimension) == (["persistently_low"], "task")


def test_a_redelivered_event_finds_its_notification_instead_of_making_another(notify_settings, unique):
    org = f"o{unique}"
    alert = dropped(org, "cl-1", "co-1")
    handle(alert)
    handle(alert)  # as after a crash before the processed-event record: the handler runs again
    assert Notification.objects(org_id=org).count() == 1


def test_a_poll_of_alerts_is_stored_together_once_and_refused_whole_for_another_organisations_staff(
        notify_settings, unique):
    org, elsewhere = f"o{unique}", f"x{unique}"
    handle(staff(elsewhere, f"co-x-{unique}", "counselor"))
    first, second = dropped(org, "cl-1", "co-1"), dropped(org, "cl-2", "co-1", severity="low")
    received = [decode_event(encode_event(e)) for e in (first, second, first)]  # one delivered twice

    EVENT_HANDLERS[Topic.ALLIANCE_DROPPED].handle(received, lambda messages: None)
    EVENT_HANDLERS[Topic.ALLIANCE_DROPPED].handle(received[:1], lambda messages: None)  # and again on its own

    stored = Notification.objects(org_id=org)
    assert sorted((n.client_id, n.severity) for n in stored) == [("cl-1", "high"), ("cl-2", "low")]
    assert {n.id for n in stored} == {domain.notification_id(e.event_id, "co-1") for e in (first, second)}
    # The loop hands a batch that fails back one event at a time; the batch itself stores nothing.
    foreign = dropped(org, "cl-3", f"co-x-{unique}")
    with pytest.raises(CrossTenantEvent):
        EVENT_HANDLERS[Topic.ALLIANCE_DROPPED].handle([decode_event(encode_event(dropped(org, "cl-4", "co-1"))),
                                                decode_event(encode_event(foreign))], lambda messages: None)
    assert Notification.objects(org_id=org).count() == 2


def test_a_registration_announced_by_two_events_is_one_new_client_notice(notify_settings, unique):
    org = f"o{unique}"
    submitted = event(Topic.INTAKE_SUBMITTED, {"intake_id": "i-1", "client_id": "cl-1", "concerns": ["grief"],
                                               "assigned_counselor_id": "co-1"}, org)
    assigned = make_event(Topic.CLIENT_ASSIGNED, {"client_id": "cl-1", "counselor_id": "co-1", "assigned_by": "fd"},
                          org_id=org, clinic_id=CLINIC, producer="tests", correlation_id=submitted.correlation_id)
    later = event(Topic.CLIENT_ASSIGNED, {"client_id": "cl-2", "counselor_id": "co-1", "assigned_by": "fd"}, org)
    for e in (assigned, submitted, later, assigned):
        handle(e)
    assert sorted(n.client_id for n in Notification.objects(org_id=org, kind="new_client")) == ["cl-1", "cl-2"]


def test_an_alert_reaches_the_counselor_by_real_smtp_without_client_data(notify_settings, unique, smtp_server,
                                                                         dispatcher_for):
    org = f"o{unique}"
    set_preferences(org, "co-1", email="co-1@clinic.example")
    alert = dropped(org, "cl-77", "co-1")
    handle(alert)

    dispatch = dispatcher_for(smtp_port=smtp_server.port)
    dispatch()
    dispatch()  # a second pass sends nothing more

    [message] = smtp_server.inbox.to("co-1@clinic.example")
    assert message["Subject"] == "[Rapport] Alliance alert (task) - high"
    assert "cl-77" not in message["Subject"]
    stored = Notification.objects.get(id=domain.notification_id(alert.event_id, "co-1"))
    assert message["Message-ID"] == stored.deliveries["email"]["message_id"] == domain.message_id([stored.id])
    assert stored.deliveries["email"]["status"] == "sent" and stored.next_delivery_at is None
    assert "/clients/cl-77" in message.get_content()
    assert len(smtp_server.inbox.messages) == 1


def test_a_signed_webhook_is_retried_with_backoff_and_the_last_error_is_kept(notify_settings, unique, clock,
                                                                              webhook_receiver, dispatcher_for):
    org = f"o{unique}"
    webhook_receiver.secret = "s" * 64
    set_preferences(org, "co-1", webhook_url=webhook_receiver.url, webhook_secret=webhook_receiver.secret)
    webhook_receiver.fail_next = 1
    alert = dropped(org, "cl-1", "co-1")
    handle(alert)
    dispatch = dispatcher_for()
    key = domain.notification_id(alert.event_id, "co-1")

    dispatch()
    failed_once = Notification.objects.get(id=key).deliveries["webhook"]
    assert (failed_once["status"], failed_once["attempts"], failed_once["last_error"]) == ("pending", 1, "HTTP 500")
    dispatch()  # not due yet: backoff
    assert len(webhook_receiver.received) == 1
    clock.advance(seconds=61)
    dispatch()

    [accepted] = webhook_receiver.accepted()
    assert accepted["verified"] and accepted["delivery_id"] == key
    assert accepted["body"]["notification_id"] == key and accepted["body"]["client_id"] == "cl-1"
    assert set(accepted["body"]) == {"notification_id", "kind", "severity", "org_id", "clinic_id", "recipient_id",
                                     "client_id", "counselor_id", "rule", "rules", "alert_id", "alert_kind",
                                     "dimension", "suggestion", "session_number", "referral_id", "link",
                                     "created_at"}
    assert Notification.objects.get(id=key).deliveries["webhook"]["status"] == "sent"


def test_after_n_failures_a_channel_is_failed_and_the_in_app_copy_stays(notify_settings, unique, clock,
                                                                        dispatcher_for):
    org = f"o{unique}"
    set_preferences(org, "co-1", email="co-1@clinic.example")
    alert = dropped(org, "cl-1", "co-1")
    handle(alert)
    dispatch = dispatcher_for(smtp_port=1, max_attempts=2)  # nothing listens on port 1
    failed_before = failed_emails()
    dispatch()
    clock.advance(hours=1)
    dispatch()

    stored = Notification.objects.get(id=domain.notification_id(alert.event_id, "co-1"))
    assert stored.deliveries["email"]["status"] == "failed" and stored.deliveries["email"]["attempts"] == 2
    assert stored.deliveries["email"]["last_error"] == "ConnectionRefusedError"
    assert stored.status == "failed" and stored.acknowledged_at is None and stored.next_delivery_at is None
    assert failed_emails() == failed_before + 1


def failed_emails() -> float:
    return REGISTRY.get_sample_value("rapport_notify_deliveries_total",
                                     {"channel": "email", "outcome": "failed"}) or 0.0


def test_quiet_hours_hold_an_ordinary_notification_but_not_a_high_alert(notify_settings, unique, clock,
                                                                         smtp_server, dispatcher_for):
    org = f"o{unique}"
    now = datetime.now(timezone.utc)
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1)).strftime("%H:%M")
    set_preferences(org, "co-1", email="co-1@clinic.example", quiet_start=start, quiet_end=end, timezone="UTC")
    handle(event(Topic.INTAKE_SUBMITTED, {"intake_id": "i-1", "client_id": "cl-new", "concerns": ["grief"],
                                          "assigned_counselor_id": "co-1"}, org))
    handle(dropped(org, "cl-1", "co-1", severity="high"))
    dispatch = dispatcher_for(smtp_port=smtp_server.port)

    dispatch()
    assert [m["Subject"] for m in smtp_server.inbox.to("co-1@clinic.example")] == [
        "[Rapport] Alliance alert (task) - high"]
    held = Notification.objects.get(org_id=org, kind="new_client").deliveries["email"]
    assert held["status"] == "pending" and held["due_at"] > now + timedelta(minutes=50)

    clock.advance(hours=1, minutes=5)
    dispatch()
    assert sorted(m["Subject"] for m in smtp_server.inbox.to("co-1@clinic.example")) == [
        "[Rapport] Alliance alert (task) - high", "[Rapport] New client assigned"]


def test_the_daily_digest_sends_one_email_for_the_days_notifications(notify_settings, unique, clock,
                                                                     smtp_server, dispatcher_for):
    org = f"o{unique}"
    set_preferences(org, "co-1", email="co-1@clinic.example", daily_digest=True, timezone="UTC")
    for client in ("cl-1", "cl-2", "cl-3"):
        handle(event(Topic.CLIENT_ASSIGNED, {"client_id": client, "counselor_id": "co-1", "assigned_by": "fd"}, org))
    dispatch = dispatcher_for(smtp_port=smtp_server.port)
    dispatch()
    assert smtp_server.inbox.to("co-1@clinic.example") == []

    clock.advance(days=1)
    dispatch()
    dispatch()
    [digest] = smtp_server.inbox.to("co-1@clinic.example")
    assert digest["Subject"] == "[Rapport] Daily digest: 3 notifications"
    assert all(f"/clients/{c}" in digest.get_content() for c in ("cl-1", "cl-2", "cl-3"))
    assert {n.deliveries["email"]["status"] for n in Notification.objects(org_id=org)} == {"sent"}


def test_an_unacknowledged_high_alert_escalates_to_the_supervisor_once(notify_settings, unique, clock,
                                                                       smtp_server, dispatcher_for):
    org = f"o{unique}"
    handle(staff(org, "co-1", "counselor", supervisor="sup-1"))
    handle(staff(org, "sup-1", "supervisor"))
    set_preferences(org, "sup-1", email="sup-1@clinic.example")
    ignored, acknowledged = dropped(org, "cl-1", "co-1"), dropped(org, "cl-2", "co-1")
    handle(ignored)
    handle(acknowledged)
    Notification.objects(id=domain.notification_id(acknowledged.event_id, "co-1")).update_one(
        set__acknowledged_at=clock(), unset__escalate_at=True)
    dispatch = dispatcher_for(smtp_port=smtp_server.port)

    clock.advance(seconds=NotifySettings().escalate_after_s - 60)  # the due time was stored at creation
    dispatch()
    assert Notification.objects(org_id=org, recipient_id="sup-1").count() == 0
    clock.advance(seconds=61)
    dispatch()
    dispatch()

    [escalation] = Notification.objects(org_id=org, recipient_id="sup-1")
    original = Notification.objects.get(id=domain.notification_id(ignored.event_id, "co-1"))
    assert escalation.kind == "escalation" and escalation.escalation_of == original.id
    assert escalation.client_id == "cl-1" and escalation.counselor_id == "co-1"
    assert original.escalated_to == "sup-1" and original.escalated_at is not None
    assert [m["Subject"] for m in smtp_server.inbox.to("sup-1@clinic.example")] == [
        "[Rapport] Escalation: unacknowledged alliance alert (task) - high"]


def test_staff_events_out_of_order_keep_the_newest_record(notify_settings, unique):
    org = f"o{unique}"
    newer = staff(org, "co-1", "counselor", supervisor="sup-2")
    older = make_event(Topic.STAFF_UPDATED, {"staff_id": "co-1", "role": "counselor", "clinic_ids": [CLINIC],
                                             "supervisor_id": "sup-1"}, org_id=org, clinic_id=CLINIC,
                       producer="tests", occurred_at=newer.occurred_at - timedelta(minutes=5))
    handle(newer)
    handle(older)
    handle(event(Topic.COUNSELOR_UPDATED, {"counselor_id": "co-1", "clinic_ids": [CLINIC, "clinic-b"],
                                           "supervisor_id": "sup-2"}, org))
    member = StaffMember.objects.get(id=StaffMember.key(org, "co-1"))
    assert member.supervisor_id == "sup-2" and member.clinic_ids == [CLINIC, "clinic-b"]


def test_an_alert_whose_supervisor_is_not_known_yet_escalates_once_the_directory_names_one(
        notify_settings, unique, clock, dispatcher_for):
    org = f"o{unique}"
    alert = dropped(org, "cl-1", "co-1")
    handle(alert)
    dispatch = dispatcher_for(retry_max_s=600)
    clock.advance(seconds=NotifySettings().escalate_after_s + 1)

    dispatch()
    waiting = Notification.objects.get(id=domain.notification_id(alert.event_id, "co-1"))
    assert waiting.escalated_at is None and waiting.escalate_at > clock() + timedelta(seconds=590)

    handle(staff(org, "co-1", "counselor", supervisor="sup-9"))
    clock.advance(seconds=601)
    dispatch()
    assert [n.kind for n in Notification.objects(org_id=org, recipient_id="sup-9")] == ["escalation"]


def test_a_send_interrupted_by_a_crash_is_not_repeated_for_email_but_is_for_webhooks(
        notify_settings, unique, clock, smtp_server, webhook_receiver, dispatcher_for):
    org = f"o{unique}"
    webhook_receiver.secret = "w" * 64
    set_preferences(org, "co-1", email="co-1@clinic.example", webhook_url=webhook_receiver.url,
                    webhook_secret=webhook_receiver.secret)
    alert = dropped(org, "cl-1", "co-1")
    handle(alert)
    key = domain.notification_id(alert.event_id, "co-1")
    # What a worker killed between "sending" and "sent" leaves behind (the SMTP server may have the mail).
    Notification._get_collection().update_one({"_id": key}, {"$set": {
        "deliveries.email.status": "sending", "deliveries.email.sending_since": clock(),
        "deliveries.webhook.status": "sending", "deliveries.webhook.sending_since": clock()}})
    dispatch = dispatcher_for(smtp_port=smtp_server.port, smtp_timeout_s=1, webhook_timeout_s=1)

    dispatch()  # within the lease: maybe still being sent by a live dispatcher, left alone
    assert Notification.objects.get(id=key).deliveries["email"]["status"] == "sending"
    clock.advance(seconds=8)
    dispatch()

    stored = Notification.objects.get(id=key)
    assert stored.deliveries["email"]["status"] == "uncertain" and stored.status == "uncertain"
    assert smtp_server.inbox.messages == []
    assert stored.deliveries["webhook"]["status"] == "sent"
    assert [r["delivery_id"] for r in webhook_receiver.accepted()] == [key]


# --- webhooks cannot be turned against the network they leave from ---------------------------------------

def webhook_status(org, alert) -> dict:
    return Notification.objects.get(id=domain.notification_id(alert.event_id, "co-1")).deliveries["webhook"]


def test_a_webhook_to_an_internal_address_is_refused_and_says_nothing_of_what_is_there(
        notify_settings, unique, webhook_receiver, dispatcher_for):
    org = f"o{unique}"
    webhook_receiver.secret = "s" * 64
    closed_port = f"http://127.0.0.1:{free_port()}/hooks"
    named = webhook_receiver.url.replace("127.0.0.1", "localhost")
    errors = {}
    for url in (webhook_receiver.url, named, closed_port, "http://169.254.169.254/latest/meta-data",
                "http://[::ffff:127.0.0.1]:9/x", "http://10.0.0.1/x"):
        set_preferences(org, "co-1", webhook_url=url, webhook_secret=webhook_receiver.secret)
        alert = dropped(org, f"cl-{len(errors)}", "co-1")
        handle(alert)
        dispatcher_for(webhook_allowed="")()
        errors[url] = webhook_status(org, alert)["last_error"]
    # An open port, a closed one and the cloud metadata address all read alike: no port scanner here.
    assert set(errors.values()) == {"destination not allowed"}, errors
    assert webhook_receiver.received == []

    set_preferences(org, "co-1", webhook_url=webhook_receiver.url, webhook_secret=webhook_receiver.secret)
    allowed = dropped(org, "cl-allowed", "co-1")
    handle(allowed)
    dispatcher_for(webhook_allowed="127.0.0.0/8")()
    assert webhook_status(org, allowed)["status"] == "sent" and len(webhook_receiver.accepted()) == 1


def test_a_webhook_redirect_is_not_followed(notify_settings, unique, webhook_receiver, dispatcher_for):
    org = f"o{unique}"
    webhook_receiver.secret = "s" * 64
    webhook_receiver.redirect_to = webhook_receiver.url.replace("/hooks/rapport", "/internal/admin")
    set_preferences(org, "co-1", webhook_url=webhook_receiver.url, webhook_secret=webhook_receiver.secret)
    alert = dropped(org, "cl-1", "co-1")
    handle(alert)
    dispatcher_for()()
    assert webhook_status(org, alert)["last_error"] == "HTTP 302: redirects are not followed"
    assert webhook_receiver.fetched == []


def test_outside_development_a_webhook_must_be_https(settings_for, unique):
    settings = settings_for("notify")
    app = create_app({"kafka_bootstrap": settings.kafka_bootstrap, "mongo_uri": settings.mongo_uri,
                      "db_prefix": settings.db_prefix, "environment": "production", "jwt_secret": "p" * 40})
    try:
        token = issue_token(app.extensions["rapport.settings"], Identity("co-1", f"o{unique}", (CLINIC,), "counselor"))
        refused = app.test_client().put("/api/preferences", headers={"Authorization": f"Bearer {token}"},
                                        json={"webhook_url": "http://hooks.example.org/rapport"})
        assert refused.status_code == 422 and "webhook_url" in refused.get_json()["errors"]["json"]
        accepted = app.test_client().put("/api/preferences", headers={"Authorization": f"Bearer {token}"},
                                         json={"webhook_url": "https://hooks.example.org/rapport"})
        assert accepted.status_code == 200 and accepted.get_json()["webhook_secret"]
    finally:
        app.extensions["rapport.kafka"].close()
