"""Seed demo data through the public APIs, once per data directory (`make up` calls it).

Three intakes in a demo organisation, and three sessions of feedback for one client whose alliance dips in
the third session, so that a score, an alert and an inbox item exist to look at.
"""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = Path(os.environ.get("RAPPORT_STATE_DIR", ROOT / ".rapport")) / "data" / "demo-seeded"
INTAKE = f"http://127.0.0.1:{os.environ.get('RAPPORT_INTAKE_PORT', '8001')}"
NOTIFY = f"http://127.0.0.1:{os.environ.get('RAPPORT_NOTIFY_PORT', '8004')}"
ORG, CLINIC, COUNSELOR = "demo-org", "demo-north", "demo-counselor-ana"


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def main() -> int:
    if MARKER.exists():
        print("Demo data already seeded.")
        return 0
    clients = []
    for first, last, concerns, language in [("Avery", "Demo", ["anxiety", "work"], "en"),
                                            ("Blake", "Demo", ["grief"], "es"),
                                            ("Casey", "Demo", ["relationships", "stress"], "en")]:
        intake = post(f"{INTAKE}/api/intakes", {
            "org_id": ORG, "clinic_id": CLINIC, "client": {"first_name": first, "last_name": last},
            "concerns": concerns, "preferences": {"language": language, "modality": "either"},
            "assigned_counselor_id": COUNSELOR})
        clients.append(intake["client_id"])
    for session, (goal, task, bond) in enumerate([(10, 10, 9), (9, 9, 9), (8, 6, 9)], start=1):
        post(f"{INTAKE}/api/feedback", {
            "org_id": ORG, "clinic_id": CLINIC, "client_id": clients[0], "counselor_id": COUNSELOR,
            "session_number": session, "instrument_id": "rapport-short",
            "answers": {"goal-1": goal, "task-1": task, "bond-1": bond}})
    MARKER.parent.mkdir(parents=True, exist_ok=True)
    MARKER.write_text(json.dumps({"clients": clients}))
    inbox = f"{NOTIFY}/api/inbox?counselor_id={COUNSELOR}"
    for _ in range(40):  # the alert travels intake -> Kafka -> scoring -> Kafka -> notify
        with urllib.request.urlopen(inbox, timeout=5) as response:
            if json.load(response):
                break
        time.sleep(0.5)
    print(f"Demo data seeded: 3 intakes, 3 sessions of feedback; the dip in session 3 is in {inbox}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
