"""PHI canary scan: unique fake personal data travels through the real UI and API, then nothing the platform
writes outside its databases — log files of every process, every event on every topic, dead letters (value
and headers), error answers — may contain it.

The canaries (a name, an e-mail, a phone number, free-text comments) go in where a person would type them:
the front desk's sign-in and new-client form and the JSON API, the client's feedback and exit-interview
pages (comment), a supervisor's decline note on the referral page; then errors are forced with bad input
naming them (an invalid e-mail, phone, date, an unknown comment field, malformed JSON, a failed sign-in).

Dead letters: producers never put names in events (the contract carries ids, codes and scores), so no real
flow can dead-letter a canary. Two hand-crafted poison messages carrying the canary name (not JSON; a
schema-invalid envelope) show what a consumer does with one: a DLQ value is by design the original bytes, so
those two values (on their topic and in the DLQ) are the only thing exempt from the scan; their DLQ headers
(error class and message) and the consumers' logs about them are scanned like everything else. HTML forms
that show a person's own input back to them for correction (sign-in, new client) are not error answers to
scan; every JSON error is.
"""
from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import requests
from kafka import KafkaConsumer

from deploy.local.topic_reader import read_topic
from services.common.events import Topic
from tests.security.summary import report
from tests.security.tenants import PASSWORD, World, call
from tests.support.identity import form_token
from tests.support.kafka_reader import send_raw, wait_for

TIMEOUT_S = 90


def test_no_canary_in_logs_events_dead_letters_or_error_answers(world: World, security_platform, components):
    tag = uuid.uuid4().hex[:10]
    canaries = {"first name": f"Zephyrine{tag}", "last name": f"Quillbottom{tag}",
                "e-mail": f"zq.{tag}@canary.example", "phone": f"+44 7700 9{random.randint(10000, 99999)}",
                "comment": f"canary comment {tag}: my counselor"}
    urls, clinic = world.urls, world.own
    intake = urls["intake"]
    desk = _signed_in(intake, f"front_desk.{clinic.id}@example.test")
    supervisor = _signed_in(intake, f"supervisor.{clinic.id}@example.test")

    # The front desk registers a client on the page and another over the API.
    form = {"clinic_id": clinic.id, "first_name": canaries["first name"], "last_name": canaries["last name"],
            "email": canaries["e-mail"], "phone": canaries["phone"], "notes": canaries["comment"],
            "concerns": "anxiety", "counselor_id": clinic.staff["counselor"], "language": "en"}
    registered = desk.post(f"{intake}/clients/new", data=form, allow_redirects=False, timeout=15)
    assert registered.status_code == 303, registered.text[:300]
    client_id = registered.headers["Location"].split("/clients/")[1].split("?")[0]
    call("POST", f"{intake}/api/clients", 201, headers=clinic.headers("front_desk"), json={
        "clinic_id": clinic.id, "first_name": canaries["first name"], "last_name": canaries["last name"],
        "email": canaries["e-mail"], "phone": canaries["phone"], "notes": canaries["comment"],
        "concerns": ["depression"], "counselor_id": clinic.staff["counselor"]})

    # A session, then the client answers a feedback link and an exit interview on the phone pages.
    assert desk.post(f"{intake}/clients/{client_id}/sessions", data={"held_on": "2026-04-01"},
                     allow_redirects=False, timeout=15).status_code == 303
    session_id = call("GET", f"{intake}/api/clients/{client_id}/sessions", 200,
                      headers=clinic.headers("front_desk"))[0]["id"]
    for kind in ("feedback", "exit_interview"):
        assert desk.post(f"{intake}/clients/{client_id}/links", data={"session_id": session_id, "kind": kind},
                         allow_redirects=False, timeout=15).status_code == 303
    links = {r["kind"]: r["url"] for r in call("GET", f"{intake}/api/clients/{client_id}/feedback-requests", 200,
                                               headers=clinic.headers("front_desk"))}
    answered = requests.post(links["feedback"], data={"goal-1": "2", "task-1": "1", "bond-1": "2"}, timeout=15)
    assert answered.status_code == 200, answered.text[:300]
    answered = requests.post(links["exit_interview"], timeout=15, data={
        "comfortable": "1", "style_fit": "1", "confident_progress": "2", "outside_expertise": "yes",
        "wants_someone_else": "yes", "comment": canaries["comment"]})
    assert answered.status_code == 200, answered.text[:300]

    # A supervisor declines the client's referral on the page, with a note in their own words.
    referral = wait_for(lambda: call("GET", f"{urls['referral']}/api/referrals", 200, params={"client_id": client_id},
                                     headers=clinic.headers("supervisor")), TIMEOUT_S)[0]
    declined = supervisor.post(f"{urls['referral']}/referrals/{referral['id']}/decline", allow_redirects=False,
                               data={"reason": "other", "note": canaries["comment"]}, timeout=15)
    assert declined.status_code == 303, declined.text[:300]

    error_bodies = _forced_errors(world, canaries)
    poison_keys = _poison(security_platform.kafka_bootstrap, canaries["first name"], tag)

    # Everything downstream has happened: scored, alerted, the decision announced, the poison dead-lettered.
    wait_for(lambda: call("GET", f"{urls['scoring']}/api/alerts", 200, params={"client_id": client_id},
                          headers=clinic.headers("admin")), TIMEOUT_S)
    wait_for(lambda: all(_dead_letters_keyed(security_platform.kafka_bootstrap, key) for key in poison_keys),
             TIMEOUT_S)

    needles = set(canaries.values()) | {canaries["phone"].replace(" ", ""), canaries["e-mail"].split("@")[0]}
    hits, scanned = [], {"log files": 0, "log bytes": 0, "topics": 0, "events": 0, "dead letters": 0,
                         "error bodies": len(error_bodies)}
    for log in [*Path(security_platform.folder).glob("*.log"), *Path(components.folder).glob("*.log")]:
        text = log.read_text(errors="replace")
        scanned["log files"] += 1
        scanned["log bytes"] += len(text)
        hits += [f"{log.name}: {n}" for n in needles if n in text]
    for topic in _topics(security_platform.kafka_bootstrap):
        scanned["topics"] += 1
        for record in read_topic(security_platform.kafka_bootstrap, topic, timeout_s=30):
            is_dead_letter = topic.endswith(".dlq")
            scanned["dead letters" if is_dead_letter else "events"] += 1
            own_poison = record.key is not None and record.key.decode() in poison_keys
            parts = [record.key or b"", *(v for _, v in record.headers or [])]
            parts += [] if own_poison else [record.value or b""]
            text = b" ".join(parts).decode(errors="replace")
            hits += [f"{topic}@{record.partition}:{record.offset}: {n}" for n in needles if n in text]
    for where, body in error_bodies:
        hits += [f"{where}: {n}" for n in needles if n in body]

    counts = "PHI canary scan: " + ", ".join(f"{k} {v}" for k, v in scanned.items()) + f"; hits {len(hits)}"
    report(counts)
    assert scanned["dead letters"] >= len(poison_keys) and scanned["events"] > 0 and scanned["log files"] >= 8, counts
    assert not hits, counts + "\n" + "\n".join(hits[:30])


class _Browser(requests.Session):
    """A browser session: the sign-in form's post sets the HttpOnly session cookie, and every form it posts
    afterwards carries the session's form token, as the pages' forms do."""

    form_token: dict[str, str] = {}

    def post(self, url, data=None, **kwargs):
        return super().post(url, data={**(data or {}), **self.form_token}, **kwargs)


def _signed_in(intake: str, email: str) -> requests.Session:
    session = _Browser()
    signed = session.post(f"{intake}/signin", data={"email": email, "password": PASSWORD}, allow_redirects=False,
                          timeout=15)
    assert signed.status_code == 303 and "rapport_token" in session.cookies, signed.text[:300]
    session.form_token = form_token(session.get(f"{intake}/", timeout=15).text)
    return session


def _forced_errors(world: World, canaries: dict[str, str]) -> list[tuple[str, str]]:
    """Bad input naming the canaries; every answer must be a 4xx JSON error (the field named, not the value)."""
    intake, clinic = world.urls["intake"], world.own
    headers = clinic.headers("front_desk")
    valid = {"clinic_id": clinic.id, "first_name": "Valid", "last_name": "Client", "concerns": ["anxiety"]}
    attempts = {
        "invalid e-mail": ("POST", "/api/clients", {"json": {**valid, "email": f"{canaries['first name']} <{canaries['e-mail']}"}}),
        "invalid phone": ("POST", "/api/clients", {"json": {**valid, "phone": f"{canaries['phone']} ext. {canaries['last name']}"}}),
        "name as a birth date": ("POST", "/api/clients", {"json": {**valid, "date_of_birth": canaries["last name"]}}),
        "too long a name": ("POST", "/api/clients", {"json": {**valid, "first_name": canaries["first name"] * 20}}),
        "comment on feedback": ("POST", "/api/feedback", {"json": {
            "client_id": clinic.objects["client"], "session_number": 1, "answers": {"goal-1": 5},
            "comment": canaries["comment"]}}),
        "malformed JSON": ("POST", "/api/clients", {"data": f'{{"first_name": "{canaries["first name"]}",',
                                                    "headers": {"Content-Type": "application/json"}}),
        "name in a query": ("GET", "/api/clients", {"params": {"since": canaries["first name"]}}),
        "unknown client": ("GET", f"/api/clients/{canaries['first name']}", {}),
        "failed sign-in": ("POST", "/api/auth/token", {"json": {"email": canaries["e-mail"], "password": "wrong"}}),
    }
    bodies = []
    for name, (method, path, extra) in attempts.items():
        response = requests.request(method, intake + path, timeout=15,
                                    headers={**headers, **extra.pop("headers", {})}, **extra)
        assert 400 <= response.status_code < 500, f"{name}: {response.status_code} {response.text[:200]}"
        assert response.headers["Content-Type"].startswith("application/json"), f"{name}: {response.text[:200]}"
        bodies.append((name, response.text))
    return bodies


def _poison(bootstrap: str, name: str, tag: str) -> set[str]:
    """Two messages a consumer can never process, each carrying the canary name; returns their keys."""
    not_json, invalid = f"canary-poison-{tag}-a", f"canary-poison-{tag}-b"
    send_raw(bootstrap, Topic.FEEDBACK_SUBMITTED, not_json, f'{{"client": "{name}", '.encode())
    # A well-formed envelope whose payload breaks the contract: an id with spaces, a name field.
    valid_shape = {"event_id": uuid.uuid4().hex, "type": Topic.INTAKE_SUBMITTED.value, "version": 1,
                   "occurred_at": "2026-04-01T10:00:00+00:00", "org_id": "org", "clinic_id": "clinic",
                   "correlation_id": uuid.uuid4().hex, "producer": "test",
                   "payload": {"client_id": name + " Smith", "first_name": name}}
    send_raw(bootstrap, Topic.INTAKE_SUBMITTED, invalid, json.dumps(valid_shape).encode())
    return {not_json, invalid}


def _dead_letters_keyed(bootstrap: str, key: str) -> bool:
    topics = [t for t in _topics(bootstrap) if t.endswith(".dlq")]
    return any(r.key and r.key.decode() == key for t in topics for r in read_topic(bootstrap, t))


def _topics(bootstrap: str) -> list[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return sorted(t for t in consumer.topics() if not t.startswith("__"))
    finally:
        consumer.close()
