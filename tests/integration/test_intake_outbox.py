"""Intake's write-then-publish over the real database and broker, including a broker outage."""
from __future__ import annotations

import threading
from datetime import timedelta

from deploy.local.components import free_port
from services.common import mongo
from services.common.auth import Identity, issue_token
from services.common.config import Settings
from services.common.events import Topic
from services.common.kafka import ConsumerLoop, EventProducer
from services.common.outbox import relay_pending
from services.intake.adapters.models import Client, Clinic
from tests.support.kafka_reader import events_on, wait_for

INTAKE_BODY = {"first_name": "Canary", "last_name": "Phi-Check", "email": "canary@example.org",
               "concerns": ["grief", "sleep"], "preferences": {"language": "es", "modality": "telehealth"},
               "urgency": "soon", "notes": "private note"}


def post_intake(app, org):
    """Register a client as front desk of the organisation `org` (its clinic is created on first use)."""
    clinic = f"{org}-a"
    if Clinic.objects(id=clinic).first() is None:
        Clinic(id=clinic, org_id=org, name="A").save()
    token = issue_token(Settings.load("intake"), Identity(f"desk-{org}", org, (clinic,), "front_desk"))
    return app.test_client().post("/api/clients", json={"clinic_id": clinic, **INTAKE_BODY},
                                  headers={"Authorization": f"Bearer {token}"})


def test_accepted_intake_is_published_once_with_ids_and_codes_only(components, intake_app, unique):
    app = intake_app()

    response = post_intake(app, unique)

    assert response.status_code == 201
    client = Client.objects.get(id=response.json["id"])
    assert client.pending_events == []  # published and pulled in the request
    [event] = events_on(components.kafka_bootstrap, Topic.INTAKE_SUBMITTED, lambda e: e["org_id"] == unique)
    assert event["payload"]["intake_id"] == client.intake_id
    assert event["payload"]["client_id"] == client.id
    assert event["payload"]["concerns"] == ["grief", "sleep"]
    raw = str(event)
    for private in ("Canary", "Phi-Check", "canary@example.org", "private note"):
        assert private not in raw


def test_intake_accepted_while_the_broker_is_down_is_published_by_the_relay(
        components, settings_for, intake_app, unique):
    settings = settings_for("intake")
    app = intake_app(kafka_bootstrap=f"127.0.0.1:{free_port()}")

    response = post_intake(app, unique)

    assert response.status_code == 201  # accepted: it is in the database with its event
    client = Client.objects.get(id=response.json["id"])
    assert len(client.pending_events) == 1
    assert events_on(components.kafka_bootstrap, Topic.INTAKE_SUBMITTED, lambda e: e["org_id"] == unique) == []

    producer = EventProducer(settings)
    try:
        assert relay_pending([Client], producer.send, older_than=timedelta(0)) == 1
        assert relay_pending([Client], producer.send, older_than=timedelta(0)) == 0
    finally:
        producer.close()
    assert Client.objects.get(id=client.id).pending_events == []
    published = events_on(components.kafka_bootstrap, Topic.INTAKE_SUBMITTED, lambda e: e["org_id"] == unique)
    assert [e["payload"]["intake_id"] for e in published] == [client.intake_id]


def test_relay_leaves_events_younger_than_the_grace_period(settings_for, intake_app, unique):
    settings = settings_for("intake")
    app = intake_app(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    assert post_intake(app, unique).status_code == 201
    producer = EventProducer(settings)
    try:
        assert relay_pending([Client], producer.send, older_than=timedelta(minutes=5)) == 0
    finally:
        producer.close()


def test_readiness_reflects_the_broker(intake_app):
    ready = intake_app()
    response = ready.test_client().get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json["checks"] == {"database": "ok", "kafka": "ok"}

    unready = intake_app(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    response = unready.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"] == "ok"
    assert response.json["checks"]["kafka"].startswith("failed")


def test_stopping_mid_batch_commits_what_was_handled_and_nothing_more(settings_for, intake_app, unique):
    settings = settings_for("tests")
    producer = EventProducer(settings)
    app = intake_app()
    for _ in range(5):
        assert post_intake(app, unique).status_code == 201
    mongo.connect(settings)
    handled = []
    group = f"g-{unique}"

    def handle(event, publish):
        if event.org_id == unique:
            handled.append(event.event_id)
            if len(handled) == 2:
                loop.stop()

    loop = ConsumerLoop(settings, group=group, handlers={Topic.INTAKE_SUBMITTED.value: handle},
                        producer=producer, poll_timeout_ms=200)
    thread = threading.Thread(target=loop.run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    assert len(handled) == 2

    # The next run of the same group starts right after the two handled events: none skipped, none repeated.
    rest = []
    loop = ConsumerLoop(settings, group=group, producer=producer, poll_timeout_ms=200, handlers={
        Topic.INTAKE_SUBMITTED.value: lambda e, p: rest.append(e.event_id) if e.org_id == unique else None})
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        wait_for(lambda: len(rest) >= 3, timeout_s=60)
    finally:
        loop.stop()
        thread.join(60)
        producer.close()
    assert len(rest) == 3
    assert set(rest).isdisjoint(handled)
