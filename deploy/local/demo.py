"""Seed a demo organisation through intake, then print the demo logins (`make up` runs it once every API is
ready). Idempotent: it looks at what intake already holds and only adds what is missing.

North and South clinics, eight counselors with varied specialties and languages, a supervisor and a front desk
per clinic, an admin, and demo clients; one client answers four feedback links and the fourth falls well
below the first three (so scoring raises an alert and notify shows it in the counselor's inbox), one stays
below the questionnaire's cutoff for three sessions (flagged each time, one persistently-low notice), and
another answers an exit interview that asks for someone else (so referral recommends a better-suited
counselor).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INTAKE = f"http://127.0.0.1:{os.environ.get('RAPPORT_INTAKE_PORT', '8001')}"
NOTIFY = f"http://127.0.0.1:{os.environ.get('RAPPORT_NOTIFY_PORT', '8004')}"
# People sign in on the one origin (`make up` sets RAPPORT_INTAKE_URL to the gateway's); the seeding above
# talks to the APIs' own ports.
SIGN_IN = f"{os.environ.get('RAPPORT_INTAKE_URL', INTAKE)}/signin"
# Every demo login shares one password; local demo data only.
PASSWORD = os.environ.get("RAPPORT_DEMO_PASSWORD", "rapport-demo-2026")
ORG, DOMAIN = "demo-org", "demo.rapport"
CLINICS = {"demo-north": "North clinic", "demo-south": "South clinic"}
NORTH, SOUTH = CLINICS

SUPPORT_STAFF = [  # (login, name, role, clinics)
    ("supervisor.north", "Sam Supervisor", "supervisor", [NORTH]),
    ("supervisor.south", "Sol Supervisor", "supervisor", [SOUTH]),
    ("frontdesk", "Dana Desk", "front_desk", [NORTH]),
    ("frontdesk.south", "Drew Desk", "front_desk", [SOUTH]),
]
COUNSELORS = [  # (login, name, clinics, supervisor, profile)
    ("ana", "Ana Alvarez", [NORTH], "supervisor.north", {
        "specialties": ["anxiety", "work", "stress"], "languages": ["en", "es"], "modalities": ["in_person", "telehealth"],
        "gender": "female", "weekly_capacity": 20, "style_notes": "Structured, CBT-informed, practical homework."}),
    ("ben", "Ben Brooks", [NORTH], "supervisor.north", {
        "specialties": ["trauma", "grief", "anger"], "languages": ["en"], "modalities": ["in_person"],
        "gender": "male", "weekly_capacity": 15, "style_notes": "Trauma-focused; paced, body-aware."}),
    ("chloe", "Chloe Chen", [NORTH, SOUTH], "supervisor.north", {
        "specialties": ["relationships", "family", "parenting"], "languages": ["en", "zh"],
        "modalities": ["telehealth"], "gender": "female", "weekly_capacity": 18,
        "style_notes": "Systemic; often sees couples and families."}),
    ("dev", "Dev Desai", [NORTH], "supervisor.north", {
        "specialties": ["depression", "self_esteem", "loneliness"], "languages": ["en", "hi"],
        "modalities": ["in_person", "telehealth"], "gender": "male", "weekly_capacity": 22,
        "style_notes": "Warm, person-centred."}),
    ("elena", "Elena Esposito", [SOUTH], "supervisor.south", {
        "specialties": ["anxiety", "ocd", "sleep"], "languages": ["en", "it"], "modalities": ["in_person"],
        "gender": "female", "weekly_capacity": 16, "style_notes": "Exposure-based work for OCD and anxiety."}),
    ("femi", "Femi Fashola", [SOUTH], "supervisor.south", {
        "specialties": ["substance_use", "life_transitions", "work"], "languages": ["en", "yo"],
        "modalities": ["in_person", "telehealth"], "gender": "male", "weekly_capacity": 20,
        "style_notes": "Motivational interviewing; direct and friendly."}),
    ("gabi", "Gabi García", [SOUTH], "supervisor.south", {
        "specialties": ["trauma", "identity", "depression"], "languages": ["es", "en"],
        "modalities": ["telehealth"], "gender": "nonbinary", "weekly_capacity": 12,
        "style_notes": "Affirming, narrative approach."}),
    ("hana", "Hana Haddad", [SOUTH], "supervisor.south", {
        "specialties": ["eating", "chronic_illness", "mood_bipolar"], "languages": ["en", "ar", "fr"],
        "modalities": ["in_person"], "gender": "female", "weekly_capacity": 10,
        "style_notes": "Integrative; works with medical teams.", "accepting_new_clients": False}),
]
CLIENTS = [  # (first, last, clinic, counselor login, concerns, language, feedback sessions (goal, task, bond))
    ("Avery", "Demo", NORTH, "ana", ["anxiety", "work"], "en", [(10, 10, 9), (9, 10, 10), (10, 9, 10), (8, 5, 9)]),
    ("Blake", "Demo", NORTH, "ben", ["grief"], "en", [(9, 9, 10), (10, 9, 10)]),
    ("Casey", "Demo", NORTH, "dev", ["depression", "loneliness"], "en", [(8, 9, 9), (8, 8, 9), (8, 9, 8)]),
    ("Dario", "Demo", SOUTH, "gabi", ["trauma"], "es", [(7, 7, 8)]),
    ("Eli", "Demo", SOUTH, "elena", ["ocd", "anxiety"], "en", []),
    ("Farah", "Demo", SOUTH, None, ["eating", "stress"], "ar", []),
]
FALLING = "Avery"  # whose fourth session falls well below the first three: an alert in Ana's inbox
EXIT_INTERVIEW = {"client": "Dario", "answers": {"comfortable": "2", "style_fit": "2", "confident_progress": "2",
                                                 "outside_expertise": "yes", "wants_someone_else": "yes"}}


def call(method: str, path: str, body: dict | None = None, token: str | None = None, form: dict | None = None,
         base: str = INTAKE):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(f"{base}{path}", data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=15) as response:
        raw = response.read()
    return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw.decode()


def sign_in(login: str) -> str:
    return call("POST", "/api/auth/token", {"email": f"{login}@{DOMAIN}", "password": PASSWORD})["token"]


def all_pages(path: str, token: str) -> list[dict]:
    items, page = [], 1
    while True:
        batch = call("GET", f"{path}{'&' if '?' in path else '?'}page={page}&page_size=100", token=token)
        items.extend(batch)
        if len(batch) < 100:
            return items
        page += 1


def seed_organisation() -> None:
    subprocess.run([sys.executable, "-m", "services.intake.entrypoints.seed", "--org", ORG, "--org-name", "Demo practice",
                    *[f"--clinic={cid}={name}" for cid, name in CLINICS.items()],
                    "--admin-email", f"admin@{DOMAIN}", "--admin-name", "Ada Admin", "--admin-password", PASSWORD],
                   cwd=ROOT, check=True)


def seed_staff(admin: str) -> dict[str, str]:
    """Staff ids by login; creates whoever is missing."""
    existing = {s["email"].split("@")[0]: s["id"] for s in all_pages("/api/staff", admin)}
    for login, name, role, clinics in SUPPORT_STAFF:
        if login not in existing:
            existing[login] = call("POST", "/api/staff", {"email": f"{login}@{DOMAIN}", "display_name": name,
                                                          "password": PASSWORD, "role": role,
                                                          "clinic_ids": clinics}, admin)["id"]
    for login, name, clinics, supervisor, profile in COUNSELORS:
        if login not in existing:
            existing[login] = call("POST", "/api/staff", {
                "email": f"{login}@{DOMAIN}", "display_name": name, "password": PASSWORD, "role": "counselor",
                "clinic_ids": clinics, "supervisor_id": existing[supervisor], "counselor": profile}, admin)["id"]
    return existing


def answer(link: dict, form: dict) -> None:
    """Post the answers as the client's phone would: to the link's page."""
    path = "/" + link["url"].split("/", 3)[3]
    call("POST", path, form=form)


def seed_clients(admin: str, desk: dict[str, str], staff: dict[str, str]) -> str | None:
    """The demo clients, their sessions and answered links; returns the counselor of the client whose alliance
    falls."""
    if all_pages("/api/clients", admin):
        return None
    dipping = None
    for first, last, clinic, counselor, concerns, language, sessions in CLIENTS:
        token = desk[clinic]
        client = call("POST", "/api/clients", {
            "clinic_id": clinic, "first_name": first, "last_name": last, "concerns": concerns,
            "preferences": {"language": language, "modality": "either"}, "urgency": "routine",
            "counselor_id": staff[counselor] if counselor else None}, token)
        for number, (goal, task, bond) in enumerate(sessions, start=1):
            session = call("POST", f"/api/clients/{client['id']}/sessions", {"held_on": f"2026-01-{7 * number:02d}"},
                           token)
            link = call("POST", f"/api/clients/{client['id']}/feedback-requests", {"session_id": session["id"]}, token)
            answer(link, {"goal-1": goal, "task-1": task, "bond-1": bond})
            if first == EXIT_INTERVIEW["client"]:
                link = call("POST", f"/api/clients/{client['id']}/feedback-requests",
                            {"session_id": session["id"], "kind": "exit_interview"}, token)
                answer(link, EXIT_INTERVIEW["answers"])
        if first == FALLING:
            dipping = counselor
    return dipping


def wait_for_the_alert(counselor: str) -> bool:
    """The fall travels intake -> Kafka -> scoring -> Kafka -> notify; give it a few seconds."""
    token = sign_in(counselor)
    for _ in range(40):
        try:
            if call("GET", "/api/inbox?kind=alliance_dropped", token=token, base=NOTIFY):
                return True
        except urllib.error.URLError:
            pass
        time.sleep(0.5)
    return False


def main() -> int:
    seed_organisation()
    admin = sign_in("admin")
    staff = seed_staff(admin)
    desk = {NORTH: sign_in("frontdesk"), SOUTH: sign_in("frontdesk.south")}
    dipping = seed_clients(admin, desk, staff)
    if dipping:
        arrived = wait_for_the_alert(dipping)
        print("Demo data seeded: 6 clients, 11 answered feedback links and an exit interview; "
              + ("the fall in Avery's fourth session is in Ana's inbox." if arrived else
                 "the alert for Avery's fall is still on its way."))
    else:
        print("Demo data already seeded.")
    print(f"\nDemo logins (password for all: {PASSWORD}), sign in at {SIGN_IN}")
    for login, role in (("frontdesk", "front desk, North"), ("frontdesk.south", "front desk, South"),
                        ("ana", "counselor, North (has an alert)"), ("supervisor.north", "supervisor, North"),
                        ("admin", "admin, every clinic")):
        print(f"  {login + '@' + DOMAIN:30} {role}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except urllib.error.HTTPError as exc:
        print(f"Demo seeding failed: {exc.code} on {exc.url}: {exc.read()[:500]!r}", file=sys.stderr)
        sys.exit(1)
