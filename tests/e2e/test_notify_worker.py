"""The notify worker as its own process on the real broker and database, e-mailing a real SMTP server:
one e-mail per notification across a kill -9 and restart, and an unacknowledged alert escalating."""
from __future__ import annotations

import os
import sys
from collections import Counter

import pytest

from deploy.local.components import start_process
from services.common import mongo
from services.common.auth import Identity
from services.common.events import Topic, make_event
from services.notify import domain
from services.notify.entrypoints.app import create_app
from services.notify.adapters.models import Notification, StaffMember
from tests.integration.test_notify_harness import SmtpServer, publish
from tests.support.alerts import alliance_dropped
from tests.support.kafka_reader import wait_for
from tests.support.identity import bearer as bearer_for

CLINIC = "clinic-a"
EMAIL = "co-1@clinic.example"


@pytest.fixture
def worker_env(components, unique):
    """Environment of a notify worker with a database and consumer group of this test's own."""
    def make(smtp_port: int, **extra: str) -> dict:
        return {**os.environ, "RAPPORT_KAFKA_BOOTSTRAP": components.kafka_bootstrap,
                "RAPPORT_MONGO_URI": components.mongo_uri, "RAPPORT_DB_PREFIX": f"w{unique}",
                "RAPPORT_CONSUMER_GROUP": f"notify-{unique}", "RAPPORT_NOTIFY_SMTP_HOST": "127.0.0.1",
                "RAPPORT_NOTIFY_SMTP_PORT": str(smtp_port), "RAPPORT_NOTIFY_DISPATCH_POLL_S": "0.1",
                # Short send timeouts make the lease after which an interrupted send is settled short.
                "RAPPORT_NOTIFY_SMTP_TIMEOUT_S": "1", "RAPPORT_NOTIFY_WEBHOOK_TIMEOUT_S": "1",
                "PYTHONUNBUFFERED": "1", **extra}
    return make


@pytest.fixture
def notify(settings_for, unique):
    settings = settings_for("notify", db_prefix=f"w{unique}")
    app = create_app({"kafka_bootstrap": settings.kafka_bootstrap, "mongo_uri": settings.mongo_uri,
                      "db_prefix": settings.db_prefix})
    mongo.connect(settings)
    yield app
    app.extensions["rapport.kafka"].close()


def bearer(app, org, staff_id, role):
    return bearer_for(Identity(staff_id, org, (CLINIC,), role), app.extensions["rapport.settings"])


def dropped(org, client, counselor="co-1"):
    return make_event(Topic.ALLIANCE_DROPPED, alliance_dropped(client, counselor, dimension="goal"), org_id=org,
                      clinic_id=CLINIC, producer="tests")


def worker(tmp_path, env, name="notify-worker"):
    return start_process(name, [sys.executable, "-m", "services.notify.entrypoints.worker"], tmp_path, env)


def test_a_killed_worker_never_sends_an_email_twice(tmp_path, notify, worker_env, settings_for, unique):
    org, count = f"o{unique}", 30
    client = notify.test_client()
    assert client.put("/api/preferences", json={"email": EMAIL},
                      headers=bearer(notify, org, "co-1", "counselor")).status_code == 200
    publish(settings_for("tests"), [dropped(org, f"cl-{i}") for i in range(count)])

    with SmtpServer(delay_s=0.1) as smtp:
        env = worker_env(smtp.port)
        first = worker(tmp_path, env)
        try:
            wait_for(lambda: len(smtp.inbox.to(EMAIL)) >= 5, timeout_s=60)
        finally:
            first.kill()  # SIGKILL: no commit, no clean-up, possibly in the middle of an SMTP exchange
        second = worker(tmp_path, env, "notify-worker-restarted")
        try:
            def settled():
                emails = [n.deliveries.get("email", {}).get("status") for n in Notification.objects(org_id=org)]
                return len(emails) == count and set(emails) <= {"sent", "uncertain"} and emails
            statuses = Counter(wait_for(settled, timeout_s=90))
        finally:
            second.stop(timeout=120)
        assert second.popen.returncode == 0, second.log.read_text()[-2000:]  # SIGTERM: a clean stop
        received = Counter(m["Message-ID"] for m in smtp.inbox.to(EMAIL))

    assert Notification.objects(org_id=org).count() == count
    assert max(received.values()) == 1, "an e-mail was sent twice"
    sent_ids = {domain.message_id([n.id]) for n in Notification.objects(org_id=org)
                if n.deliveries["email"]["status"] == "sent"}
    assert sent_ids <= set(received)
    # "uncertain": the kill hit during that SMTP exchange; it was delivered at most once, never resent.
    assert statuses["sent"] <= len(received) <= statuses["sent"] + statuses["uncertain"]
    assert statuses["uncertain"] <= 1


def test_an_alert_reaches_inbox_and_email_then_escalates_when_nobody_acknowledges(
        tmp_path, notify, worker_env, settings_for, unique):
    org = f"o{unique}"
    client = notify.test_client()
    counselor, supervisor = bearer(notify, org, "co-1", "counselor"), bearer(notify, org, "sup-1", "supervisor")
    client.put("/api/preferences", json={"email": EMAIL}, headers=counselor)
    client.put("/api/preferences", json={"email": "sup-1@clinic.example"}, headers=supervisor)
    publish(settings_for("tests"), [
        make_event(Topic.STAFF_UPDATED, {"staff_id": "co-1", "role": "counselor", "clinic_ids": [CLINIC],
                                         "supervisor_id": "sup-1"}, org_id=org, clinic_id=CLINIC, producer="tests")])

    with SmtpServer() as smtp:
        process = worker(tmp_path, worker_env(smtp.port, RAPPORT_NOTIFY_ESCALATE_AFTER_S="3"))
        try:
            wait_for(lambda: Notification.objects(org_id=org, recipient_id="co-1").count() == 0
                     and _staff_known(org), timeout_s=60)
            publish(settings_for("tests"), [dropped(org, "cl-1")])
            [item] = wait_for(lambda: client.get("/api/inbox", headers=counselor).get_json(), timeout_s=30)
            [email] = wait_for(lambda: smtp.inbox.to(EMAIL), timeout_s=30)
            [escalation] = wait_for(lambda: client.get("/api/inbox", headers=supervisor).get_json(), timeout_s=30)
            [escalated] = wait_for(lambda: smtp.inbox.to("sup-1@clinic.example"), timeout_s=30)
        finally:
            process.stop()
        assert process.popen.returncode == 0

    assert item["kind"] == "alliance_dropped" and item["dimension"] == "goal" and item["client_id"] == "cl-1"
    assert email["Subject"] == "[Rapport] Alliance alert (goal) - high" and "cl-1" not in email["Subject"]
    assert escalation["kind"] == "escalation" and escalation["escalation_of"] == item["id"]
    assert escalated["Subject"] == "[Rapport] Escalation: unacknowledged alliance alert (goal) - high"


def _staff_known(org) -> bool:
    return StaffMember.objects(id=StaffMember.key(org, "co-1")).first() is not None
