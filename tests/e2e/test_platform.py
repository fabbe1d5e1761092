"""End to end over real HTTP, the real broker and database, with every service in its own processes."""
from __future__ import annotations

import uuid

import requests

from services.common.events import Topic
from tests.support.kafka_reader import events_on, read_topic, send_raw, wait_for

TIMEOUT_S = 30


def post(platform, service, path, body):
    response = requests.post(f"{platform.urls[service]}{path}", json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def get(platform, service, path, **params):
    response = requests.get(f"{platform.urls[service]}{path}", params=params, timeout=10)
    return response


def new_client(platform, org, counselor):
    return post(platform, "intake", "/api/intakes", {
        "org_id": org, "clinic_id": "clinic-a", "client": {"first_name": "Robin", "last_name": "E2e"},
        "concerns": ["anxiety"], "preferences": {"language": "en"}, "assigned_counselor_id": counselor})


def feedback(platform, org, client_id, counselor, session, goal, task, bond):
    return post(platform, "intake", "/api/feedback", {
        "org_id": org, "clinic_id": "clinic-a", "client_id": client_id, "counselor_id": counselor,
        "session_number": session, "answers": {"goal-1": goal, "task-1": task, "bond-1": bond}})


def inbox(platform, counselor):
    return get(platform, "notify", "/api/inbox", counselor_id=counselor).json()


def scores(platform, client_id):
    return get(platform, "scoring", "/api/scores", client_id=client_id).json()


def test_every_api_is_ready_and_documents_itself(platform):
    for service, url in platform.urls.items():
        assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        ready = requests.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "kafka": "ok"}
        spec = requests.get(f"{url}/openapi.json", timeout=5).json()
        assert spec["info"]["title"] == f"Rapport {service}" and spec["paths"]


def test_intake_reaches_referral(platform):
    org, counselor = uuid.uuid4().hex, f"co-{uuid.uuid4().hex[:8]}"
    intake = new_client(platform, org, counselor)

    seen = wait_for(lambda: get(platform, "referral", f"/api/intakes/{intake['id']}").status_code == 200 and
                    get(platform, "referral", f"/api/intakes/{intake['id']}").json(), TIMEOUT_S)

    assert seen["client_id"] == intake["client_id"] and seen["concerns"] == ["anxiety"]
    assert "client" not in seen and "Robin" not in str(seen)


def test_a_falling_alliance_ends_in_the_counselors_inbox_once(platform):
    org, counselor = uuid.uuid4().hex, f"co-{uuid.uuid4().hex[:8]}"
    client_id = new_client(platform, org, counselor)["client_id"]

    feedback(platform, org, client_id, counselor, 1, 10, 10, 9)  # 29: above the cutoff of 27
    feedback(platform, org, client_id, counselor, 2, 9, 6, 9)    # 24: below, task lowest

    [item] = wait_for(lambda: inbox(platform, counselor), TIMEOUT_S)
    assert item["kind"] == "alliance_dropped" and item["rule"] == "below_cutoff"
    assert item["dimension"] == "task" and item["session_number"] == 2
    assert item["client_id"] == client_id and "Robin" not in str(item)
    session_scores = wait_for(lambda: len(scores(platform, client_id)) == 2 and scores(platform, client_id),
                              TIMEOUT_S)
    assert [s["total"] for s in session_scores] == [29, 24]
    assert [len(s["alerts"]) for s in session_scores] == [0, 1]


def test_a_redelivered_feedback_event_is_scored_and_notified_once(platform):
    org, counselor = uuid.uuid4().hex, f"co-{uuid.uuid4().hex[:8]}"
    client_id = new_client(platform, org, counselor)["client_id"]
    feedback(platform, org, client_id, counselor, 1, 5, 5, 5)
    wait_for(lambda: inbox(platform, counselor), TIMEOUT_S)

    [original] = [r for r in read_topic(platform.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED)
                  if r.key == client_id.encode()]
    send_raw(platform.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, client_id, original.value)
    feedback(platform, org, client_id, counselor, 2, 4, 4, 4)  # a marker that comes after the duplicate
    wait_for(lambda: len(inbox(platform, counselor)) == 2, TIMEOUT_S)

    assert [s["session_number"] for s in scores(platform, client_id)] == [1, 2]
    scored = events_on(platform.kafka_bootstrap, Topic.ALLIANCE_SCORED,
                       lambda e: e["payload"]["client_id"] == client_id)
    assert sorted(e["payload"]["session_number"] for e in scored) == [1, 2]
    assert len(inbox(platform, counselor)) == 2


def test_a_poison_message_goes_to_the_dlq_and_the_next_feedback_is_still_scored(platform):
    org, counselor = uuid.uuid4().hex, f"co-{uuid.uuid4().hex[:8]}"
    client_id = new_client(platform, org, counselor)["client_id"]
    send_raw(platform.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, client_id, b"\x00not json at all")

    feedback(platform, org, client_id, counselor, 1, 3, 3, 3)

    wait_for(lambda: inbox(platform, counselor), TIMEOUT_S)
    [dead] = wait_for(lambda: [r for r in read_topic(platform.kafka_bootstrap, "feedback.submitted.dlq")
                               if r.key == client_id.encode()], TIMEOUT_S)
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["origin-topic"] == "feedback.submitted" and headers["consumer-group"] == "scoring"
    assert headers["error-class"] == "InvalidEvent"
