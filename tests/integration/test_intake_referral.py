"""An accepted referral reassigns the client, once, even when the decision is delivered twice."""
from __future__ import annotations

from deploy.local.topic_reader import read_topic
from services.common.events import Topic, encode_event, make_event
from services.common.kafka import EventProducer
from services.intake.handlers import EVENT_HANDLERS
from services.intake.adapters.models import Client
from tests.integration.test_intake_api import PASSWORD, org, register  # noqa: F401  (the `org` fixture)
from tests.support.kafka_reader import events_on


def decision(org, client_id, new_counselor_id, clinic_id=None, decision="accepted"):
    return make_event(Topic.REFERRAL_DECIDED, {
        "referral_id": f"ref-{client_id[:8]}", "client_id": client_id, "decision": decision,
        "decided_by": "supervisor-1", "previous_counselor_id": org.counselor_north,
        "new_counselor_id": new_counselor_id if decision == "accepted" else None,
        "decline_reason": None if decision == "accepted" else "clinical_judgement",
    }, org_id=org.id, clinic_id=clinic_id or org.north, producer="referral")


def test_an_accepted_referral_reassigns_the_client_once_under_duplicate_delivery(
        org, components, settings_for, run_loop, unique):
    second = org.http.post("/api/staff", headers=org.admin, json={
        "email": f"second@{unique}.test", "display_name": "Second", "password": PASSWORD, "role": "counselor",
        "clinic_ids": [org.north]}).json["id"]
    moved = register(org, counselor_id=org.counselor_north).json["id"]
    declined = register(org, counselor_id=org.counselor_north).json["id"]
    wrong_clinic = register(org, counselor_id=org.counselor_north).json["id"]
    accepted = decision(org, moved, second)
    producer = EventProducer(settings_for("tests"))
    try:
        for event in (accepted, accepted, decision(org, declined, None, decision="declined"),
                      decision(org, wrong_clinic, second, clinic_id=org.south)):
            producer.send(Topic.REFERRAL_DECIDED, event.payload.client_id, encode_event(event))
        # The same decision again under a new event id would be a second decision; a redelivery has the same id.
        producer.send(Topic.REFERRAL_DECIDED, moved, encode_event(accepted))
    finally:
        producer.close()

    # Other tests' decisions on the shared topic name clients this database does not know: they are refused
    # as crossing tenants, which dead-letters them without halting the consumer.
    run_loop("intake", f"intake-{unique}", EVENT_HANDLERS)

    client = Client.objects.get(id=moved)
    assert client.counselor_id == second
    assert [(a.counselor_id, a.referral_id) for a in client.assignments] == [
        (org.counselor_north, None), (second, accepted.payload.referral_id)]
    assert client.assignments[1].assigned_by == "supervisor-1" and client.pending_events == []
    assigned = events_on(components.kafka_bootstrap, Topic.CLIENT_ASSIGNED,
                         lambda e: e["payload"]["client_id"] == moved and e["payload"]["referral_id"])
    assert len(assigned) == 1
    assert assigned[0]["payload"]["previous_counselor_id"] == org.counselor_north
    assert assigned[0]["correlation_id"] == accepted.correlation_id
    # Even past the consumer's processed-event record, the handler itself adds nothing the second time.
    EVENT_HANDLERS[Topic.REFERRAL_DECIDED](accepted, lambda *_: None)
    assert len(Client.objects.get(id=moved).assignments) == 2
    assert Client.objects.get(id=declined).counselor_id == org.counselor_north
    assert Client.objects.get(id=wrong_clinic).counselor_id == org.counselor_north
    dead = [r for r in read_topic(components.kafka_bootstrap, "referral.decided.dlq")
            if r.key == wrong_clinic.encode() and dict(r.headers)["consumer-group"] == f"intake-{unique}".encode()]
    assert len(dead) == 1 and dict(dead[0].headers)["error-class"] == b"CrossTenantEvent"
    # The new counselor's caseload went up, the previous one's down: both announced in counselor.updated.
    latest = {}
    for e in events_on(components.kafka_bootstrap, Topic.COUNSELOR_UPDATED, lambda e: e["org_id"] == org.id):
        latest[e["payload"]["counselor_id"]] = e["payload"]["caseload"]
    assert latest[second] == 1 and latest[org.counselor_north] == 2
