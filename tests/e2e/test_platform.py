"""End to end over real HTTP, the real broker and database, with every service in its own processes.

Each test sets up its own organisation through intake's API (an admin creates a clinic and a counselor),
registers a client as the front desk, and has the client answer feedback links as a phone would.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import requests

from deploy.local.topic_reader import read_topic
from services.common.auth import Identity
from services.common.events import Topic
from tests.support.identity import bearer
from tests.support.kafka_reader import events_on, send_raw, wait_for

TIMEOUT_S = 30


@dataclass
class Practice:
    """One organisation with one clinic, one counselor and a front desk, set up through intake's API."""
    platform: object
    org: str
    clinic: str
    counselor: str
    desk: dict
    counselor_auth: dict

    @classmethod
    def create(cls, platform) -> "Practice":
        org = uuid.uuid4().hex
        admin = bearer(Identity(f"admin-{org[:8]}", org, (), "admin"))
        intake = platform.urls["intake"]
        clinic = requests.post(f"{intake}/api/clinics", json={"name": "North"}, headers=admin, timeout=10)
        assert clinic.status_code == 201, clinic.text
        clinic_id = clinic.json()["id"]
        counselor = requests.post(f"{intake}/api/staff", headers=admin, timeout=10, json={
            "email": f"counselor@{org}.test", "display_name": "Casey Counselor", "password": "e2e-password-1",
            "role": "counselor", "clinic_ids": [clinic_id],
            "counselor": {"specialties": ["anxiety"], "languages": ["en"], "weekly_capacity": 10}})
        assert counselor.status_code == 201, counselor.text
        counselor_id = counselor.json()["id"]
        return cls(platform, org, clinic_id, counselor_id,
                   desk=bearer(Identity(f"desk-{org[:8]}", org, (clinic_id,), "front_desk")),
                   counselor_auth=bearer(Identity(counselor_id, org, (clinic_id,), "counselor")))

    def url(self, service: str, path: str) -> str:
        return f"{self.platform.urls[service]}{path}"

    def new_client(self) -> dict:
        response = requests.post(self.url("intake", "/api/clients"), headers=self.desk, timeout=10, json={
            "clinic_id": self.clinic, "first_name": "Robin", "last_name": "E2e", "concerns": ["anxiety"],
            "preferences": {"language": "en"}, "counselor_id": self.counselor})
        assert response.status_code == 201, response.text
        return response.json()

    def answer_feedback_link(self, client_id: str, goal: int, task: int, bond: int) -> None:
        """Record a session, create its feedback link, and answer it as the client's phone does (a form post)."""
        session = requests.post(self.url("intake", f"/api/clients/{client_id}/sessions"), headers=self.desk,
                                json={"held_on": "2026-03-02"}, timeout=10)
        assert session.status_code == 201, session.text
        link = requests.post(self.url("intake", f"/api/clients/{client_id}/feedback-requests"), headers=self.desk,
                             json={"session_id": session.json()["id"]}, timeout=10)
        assert link.status_code == 201, link.text
        path = "/" + link.json()["url"].split("/", 3)[3]
        answered = requests.post(self.url("intake", path), timeout=10,
                                 data={"goal-1": str(goal), "task-1": str(task), "bond-1": str(bond)})
        assert answered.status_code == 200 and "Thank you" in answered.text, answered.text

    def inbox(self) -> list[dict]:
        response = requests.get(self.url("notify", "/api/inbox"), headers=self.counselor_auth, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def scores(self, client_id: str) -> list[dict]:
        response = requests.get(self.url("scoring", "/api/scores"), params={"client_id": client_id},
                                headers=self.counselor_auth, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def dropped(self, client_id: str) -> list[dict]:
        return events_on(self.platform.kafka_bootstrap, Topic.ALLIANCE_DROPPED,
                         lambda e: e["payload"]["client_id"] == client_id)

    def inbox_matches_alerts(self, client_id: str):
        """The counselor's inbox holds exactly one notification per alert raised for the client."""
        alerts = sorted(e["event_id"] for e in self.dropped(client_id))
        items = [i for i in self.inbox() if i["client_id"] == client_id and i["kind"] == "alliance_dropped"]
        return alerts and sorted(i["source_event_id"] for i in items) == alerts and items


def test_every_api_is_ready_and_documents_itself(platform):
    for service, url in platform.urls.items():
        assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        ready = requests.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "kafka": "ok"}
        spec = requests.get(f"{url}/openapi.json", timeout=5).json()
        assert spec["info"]["title"] == f"Rapport {service}" and spec["paths"]


def test_client_data_needs_a_signed_in_caller(platform):
    assert requests.get(f"{platform.urls['intake']}/api/clients", timeout=5).status_code == 401
    page = requests.get(f"{platform.urls['intake']}/", allow_redirects=False, timeout=5)
    assert page.status_code == 302 and "/signin" in page.headers["Location"]


def test_intake_reaches_referral(platform):
    practice = Practice.create(platform)
    client = practice.new_client()

    def seen():
        response = requests.get(practice.url("referral", f"/api/intakes/{client['intake_id']}"),
                                headers=practice.desk, timeout=10)
        return response.status_code == 200 and response.json()

    view = wait_for(seen, TIMEOUT_S)
    assert view["client_id"] == client["id"] and view["concerns"] == ["anxiety"]
    assert "client" not in view and "Robin" not in str(view)


def test_a_falling_alliance_ends_in_the_counselors_inbox_once(platform):
    practice = Practice.create(platform)
    client_id = practice.new_client()["id"]

    for answers in ((10, 10, 9), (10, 9, 10), (9, 10, 10)):  # 29 each: the client's usual
        practice.answer_feedback_link(client_id, *answers)
    practice.answer_feedback_link(client_id, 9, 6, 9)    # 24: well under the usual, task fell most

    [item] = wait_for(lambda: practice.inbox_matches_alerts(client_id), TIMEOUT_S)
    assert (item["session_number"], item["rules"], item["alert_kind"]) == (4, ["rupture"], "change")
    assert item["dimension"] == "task" and "start small" in item["suggestion"]
    assert "Robin" not in str(item)
    session_scores = wait_for(lambda: len(practice.scores(client_id)) == 4 and practice.scores(client_id),
                              TIMEOUT_S)
    assert [s["total"] for s in session_scores] == [29, 29, 29, 24]


def test_a_redelivered_feedback_event_is_scored_and_notified_once(platform):
    practice = Practice.create(platform)
    client_id = practice.new_client()["id"]
    for _ in range(3):  # below the cutoff from the first session: one persistently-low notice, at the third
        practice.answer_feedback_link(client_id, 5, 5, 5)
    wait_for(lambda: practice.inbox_matches_alerts(client_id), TIMEOUT_S)

    original = [r for r in read_topic(platform.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED)
                if r.key == client_id.encode()][0]
    send_raw(platform.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, client_id, original.value)
    practice.answer_feedback_link(client_id, 4, 4, 4)  # a marker that comes after the duplicate
    wait_for(lambda: len(practice.scores(client_id)) == 4, TIMEOUT_S)

    assert [s["session_number"] for s in practice.scores(client_id)] == [1, 2, 3, 4]
    scored = events_on(platform.kafka_bootstrap, Topic.ALLIANCE_SCORED,
                       lambda e: e["payload"]["client_id"] == client_id)
    assert sorted(e["payload"]["session_number"] for e in scored) == [1, 2, 3, 4]
    items = practice.inbox_matches_alerts(client_id)
    assert [(i["session_number"], i["rules"]) for i in items] == [(3, ["persistently_low"])]


def test_a_poison_message_goes_to_the_dlq_and_the_next_feedback_is_still_scored(platform):
    practice = Practice.create(platform)
    client_id = practice.new_client()["id"]
    send_raw(platform.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, client_id, b"\x00not json at all")

    practice.answer_feedback_link(client_id, 3, 3, 3)

    wait_for(lambda: len(practice.scores(client_id)) == 1, TIMEOUT_S)
    [dead] = wait_for(lambda: [r for r in read_topic(platform.kafka_bootstrap, "feedback.submitted.dlq")
                               if r.key == client_id.encode()], TIMEOUT_S)
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["origin-topic"] == "feedback.submitted"
    assert headers["consumer-group"] == platform.envs["scoring-worker"]["RAPPORT_CONSUMER_GROUP"]
    assert headers["error-class"] == "InvalidEvent"
