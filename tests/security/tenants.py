"""Two organisations with two clinics each, seeded through the platform's own APIs and pages, so that every
kind of object (client, intake, referral, score, alert, notification, feedback, ...) exists in every clinic
and tests can point one tenant's callers at another tenant's ids."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import requests

from services.common.auth import Identity
from tests.support.identity import bearer
from tests.support.kafka_reader import wait_for

ROLES = ("admin", "supervisor", "counselor", "front_desk")
PASSWORD = "security-suite-password-1"
LOW_ANSWERS = {"goal-1": 1, "task-1": 1, "bond-1": 1}    # below the cutoff: an alert where pushed
HIGH_ANSWERS = {"goal-1": 9, "task-1": 9, "bond-1": 9}
# Clients registered per clinic beyond the first two, each bringing an open referral that a test may decide.
SPARE_REFERRALS = {0: 20, 1: 6}  # by clinic position: the matrix decides many in its own clinic
SEED_TIMEOUT_S = 90

# Object kinds bound to a client: a caller of another clinic must never see them, nor a counselor another's.
CLIENT_BOUND = ("client", "intake", "referral", "score", "alert", "notification", "feedback", "session", "link")


def call(method: str, url: str, expect: int, **kwargs) -> dict | list:
    response = requests.request(method, url, timeout=15, **kwargs)
    assert response.status_code == expect, f"{method} {url}: {response.status_code} {response.text}"
    return response.json()


@dataclass
class Clinic:
    org_id: str
    id: str
    position: int
    staff: dict[str, str] = field(default_factory=dict)          # role -> staff id (admin: the org's)
    colleague: str = ""                                           # a second counselor of the clinic
    objects: dict[str, str] = field(default_factory=dict)        # kind -> id of one object of that kind
    notifications: dict[str, str] = field(default_factory=dict)  # role -> a notification addressed to it
    colleague_client: str = ""                                    # a client of the colleague, not of `counselor`
    spare_referrals: list[dict] = field(default_factory=list)     # open referrals, each used at most once

    def identity(self, role: str) -> Identity:
        clinics = () if role == "admin" else (self.id,)
        return Identity(self.staff[role], self.org_id, clinics, role)

    def headers(self, role: str) -> dict[str, str]:
        return bearer(self.identity(role))

    def take_referral(self) -> dict:
        assert self.spare_referrals, f"no open referral left in clinic {self.id}: seed more"
        return self.spare_referrals.pop()

    def ids(self, kinds=None) -> set[str]:
        """Ids of this clinic's objects (all kinds, or those given), for scanning answers for leaks."""
        found = {v for k, v in self.objects.items() if kinds is None or k in kinds}
        found |= set(self.notifications.values()) if kinds is None or "notification" in kinds else set()
        if kinds is None or "client" in kinds:
            found |= {self.colleague_client} | {r["client_id"] for r in self.spare_referrals}
        if kinds is None:
            found |= {self.colleague, *(v for k, v in self.staff.items() if k != "admin")}
        return found


@dataclass
class World:
    urls: dict[str, str]
    clinics: list[Clinic]   # org A clinic 1 (the callers' own), org A clinic 2, org B clinic 1, org B clinic 2

    @property
    def own(self) -> Clinic:
        return self.clinics[0]

    @property
    def other_clinic(self) -> Clinic:
        return self.clinics[1]

    @property
    def other_org(self) -> Clinic:
        return self.clinics[2]

    def foreign_ids(self, identity: Identity) -> set[str]:
        """Ids no answer to this identity may contain: everything of other organisations and, below admin,
        what is bound to clients of the organisation's other clinics."""
        foreign = set()
        for clinic in self.clinics:
            if clinic.org_id != identity.org_id:
                foreign |= clinic.ids() | {clinic.id}
            elif identity.role != "admin" and clinic.id not in identity.clinic_ids:
                foreign |= clinic.ids(CLIENT_BOUND)
        return foreign


def seed_world(urls: dict[str, str]) -> World:
    clinics = []
    for org_tag in ("a", "b"):
        org_id = f"org{org_tag}{uuid.uuid4().hex[:10]}"
        clinics += _seed_organisation(urls, org_id)
    for clinic in clinics:
        _seed_clients(urls, clinic)
    for clinic in clinics:
        _await_derived_objects(urls, clinic)
    return World(urls, clinics)


def _seed_organisation(urls: dict[str, str], org_id: str) -> list[Clinic]:
    admin_id = f"admin-{org_id}"
    admin = bearer(Identity(admin_id, org_id, (), "admin"))
    intake = urls["intake"]
    clinics = []
    for position in (0, 1):
        clinic_id = call("POST", f"{intake}/api/clinics", 201, headers=admin, json={"name": f"Clinic {position}"})["id"]
        clinic = Clinic(org_id, clinic_id, position, staff={"admin": admin_id})
        for role in ("supervisor", "counselor", "front_desk", "colleague"):
            body = {"email": f"{role}.{clinic_id}@example.test", "display_name": f"{role} {position}",
                    "password": PASSWORD, "role": "counselor" if role == "colleague" else role,
                    "clinic_ids": [clinic_id]}
            if body["role"] == "counselor":
                body |= {"supervisor_id": clinic.staff["supervisor"], "counselor": {
                    "specialties": ["anxiety"], "languages": ["en"], "weekly_capacity": 60}}
            staff_id = call("POST", f"{intake}/api/staff", 201, headers=admin, json=body)["id"]
            if role == "colleague":
                clinic.colleague = staff_id
            else:
                clinic.staff[role] = staff_id
        clinic.objects |= {"clinic": clinic_id, "staff": clinic.staff["counselor"],
                           "counselor": clinic.staff["counselor"]}
        clinics.append(clinic)
    # Referral recommends only counselors it has heard of: wait for the directory before any intake.
    counselors = {c.staff["counselor"] for c in clinics} | {c.colleague for c in clinics}
    wait_for(lambda: counselors <= {c["id"] for c in requests.get(
        f"{urls['referral']}/api/counselors", headers=admin, timeout=10).json()}, SEED_TIMEOUT_S)
    return clinics


def _register(urls: dict[str, str], clinic: Clinic, counselor_id: str) -> dict:
    return call("POST", f"{urls['intake']}/api/clients", 201, headers=clinic.headers("front_desk"), json={
        "clinic_id": clinic.id, "first_name": "Tenant", "last_name": f"Client{clinic.position}",
        "concerns": ["anxiety"], "preferences": {"language": "en"}, "counselor_id": counselor_id})


def _seed_clients(urls: dict[str, str], clinic: Clinic) -> None:
    intake, desk = urls["intake"], clinic.headers("front_desk")
    client = _register(urls, clinic, clinic.staff["counselor"])
    clinic.objects |= {"client": client["id"], "intake": client["intake_id"]}
    clinic.colleague_client = _register(urls, clinic, clinic.colleague)["id"]
    session = call("POST", f"{intake}/api/clients/{client['id']}/sessions", 201, headers=desk,
                   json={"held_on": "2026-03-02"})
    clinic.objects["session"] = session["id"]
    clinic.objects["link"] = call("POST", f"{intake}/api/clients/{client['id']}/feedback-requests", 201,
                                  headers=desk, json={"session_id": session["id"]})["id"]
    # The clinic sends every session below the cutoff to the inbox, so that one low session makes an alert
    # (by default only a lasting low one does). An admin signed in after the clinic was made carries it.
    admin = bearer(Identity(clinic.staff["admin"], clinic.org_id, (clinic.id,), "admin"))
    call("PUT", f"{urls['scoring']}/api/clinics/{clinic.id}/alert-settings", 200, headers=admin,
         json={"rules": {"below_cutoff": {"push": True}}})
    feedback = call("POST", f"{intake}/api/feedback", 201, headers=desk, json={
        "client_id": client["id"], "session_number": session["number"], "answers": LOW_ANSWERS})
    clinic.objects["feedback"] = feedback["id"]
    clinic.spare_referrals = [{"client_id": _register(urls, clinic, clinic.staff["counselor"])["id"]}
                              for _ in range(SPARE_REFERRALS.get(clinic.position, 0) + 1)]


def _await_derived_objects(urls: dict[str, str], clinic: Clinic) -> None:
    """What the workers derive from the seeded requests: referrals, scores, alerts, notifications."""
    admin = clinic.headers("admin")
    client_id = clinic.objects["client"]

    def referrals():
        found = requests.get(f"{urls['referral']}/api/referrals", headers=admin, timeout=10,
                             params={"page_size": 100}).json()
        by_client = {r["client_id"]: r for r in found if r["status"] == "recommended" and r["candidates"]}
        wanted = [client_id, *(r["client_id"] for r in clinic.spare_referrals)]
        return all(c in by_client for c in wanted) and by_client

    by_client = wait_for(referrals, SEED_TIMEOUT_S)
    clinic.objects["referral"] = by_client[client_id]["id"]
    clinic.spare_referrals = [{"client_id": r["client_id"], "id": by_client[r["client_id"]]["id"],
                               "candidate": by_client[r["client_id"]]["candidates"][0]["counselor_id"]}
                              for r in clinic.spare_referrals]
    # One referral accepted in every clinic: its front desk, too, gets a notification of its own.
    accepted = clinic.spare_referrals.pop(0)
    call("POST", f"{urls['referral']}/api/referrals/{accepted['id']}/accept", 200,
         headers=clinic.headers("supervisor"), json={"counselor_id": accepted["candidate"]})

    scores = wait_for(lambda: requests.get(f"{urls['scoring']}/api/scores", headers=admin, timeout=10,
                                           params={"client_id": client_id}).json(), SEED_TIMEOUT_S)
    clinic.objects["score"] = scores[0]["id"]
    alerts = wait_for(lambda: requests.get(f"{urls['scoring']}/api/alerts", headers=admin, timeout=10,
                                           params={"client_id": client_id}).json(), SEED_TIMEOUT_S)
    clinic.objects["alert"] = alerts[0]["alert_id"]
    kinds = {"counselor": "new_client", "supervisor": "referral_recommended", "front_desk": "referral_accepted"}
    for role, kind in kinds.items():
        items = wait_for(lambda: requests.get(f"{urls['notify']}/api/inbox", headers=clinic.headers(role),
                                              params={"kind": kind}, timeout=10).json(), SEED_TIMEOUT_S)
        clinic.notifications[role] = items[0]["id"]
    clinic.objects["notification"] = clinic.notifications["counselor"]
