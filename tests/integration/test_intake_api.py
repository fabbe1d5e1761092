"""Intake's API over the real database and broker: sign-in, scoping, validation, events without PHI."""
from __future__ import annotations

import pytest

from services.common.auth import Identity, issue_token
from services.common.events import Topic
from services.intake.adapters.models import Client, Staff
from services.intake.bootstrap import bootstrap
from services.intake.commands import SeedOrganisation
from tests.support.concurrency import at_once
from tests.support.kafka_reader import events_on

PASSWORD = "correct horse battery"


@pytest.fixture
def org(intake_app, settings_for, unique):
    """An organisation with clinics north and south, an admin, a counselor in each, and front desk in north."""
    app = intake_app()
    settings = settings_for("intake")
    north, south = f"{unique}-north", f"{unique}-south"
    admin = bootstrap(publish=None).handle(SeedOrganisation(unique, "Test practice", {north: "North", south: "South"},
                                                            f"admin@{unique}.test", "Ada Admin", PASSWORD))
    http = app.test_client()

    def token(identity):
        return {"Authorization": f"Bearer {issue_token(settings, identity)}"}

    admin_headers = token(Identity(admin.id, unique, (north, south), "admin"))

    def add_staff(role, clinics, **extra):
        body = {"email": f"{role}-{'-'.join(clinics)}@{unique}.test", "display_name": f"{role} {clinics[0]}",
                "password": PASSWORD, "role": role, "clinic_ids": list(clinics), **extra}
        response = http.post("/api/staff", json=body, headers=admin_headers)
        assert response.status_code == 201, response.json
        return response.json

    counselor_north = add_staff("counselor", [north], counselor={
        "specialties": ["trauma", "grief"], "languages": ["en", "es"], "modalities": ["in_person"],
        "weekly_capacity": 12, "gender": "female"})
    counselor_south = add_staff("counselor", [south], counselor={"specialties": ["anxiety"], "languages": ["en"]})
    desk_north = add_staff("front_desk", [north])
    desk_south = add_staff("front_desk", [south])

    class Org:
        id = unique
    o = Org()
    o.app, o.http, o.north, o.south, o.admin = app, http, north, south, admin_headers
    o.counselor_north, o.counselor_south = counselor_north["id"], counselor_south["id"]
    o.desk_north = token(Identity(desk_north["id"], unique, (north,), "front_desk"))
    o.desk_south = token(Identity(desk_south["id"], unique, (south,), "front_desk"))
    o.token = token
    return o


def register(org, headers=None, **overrides):
    body = {"clinic_id": org.north, "first_name": "Canary", "last_name": "Phi-Check",
            "email": "canary@example.org", "phone": "+1 555 0100", "date_of_birth": "1990-04-01",
            "concerns": ["grief", "sleep"], "preferences": {"language": "es", "modality": "telehealth",
                                                            "days": ["mon"], "times": ["evening"]},
            "urgency": "soon", "notes": "private note", **overrides}
    return org.http.post("/api/clients", json=body, headers=headers or org.desk_north)


def test_sign_in_returns_a_token_that_names_the_staff_member(org, unique):
    response = org.http.post("/api/auth/token", json={"email": f"ADMIN@{unique}.test", "password": PASSWORD})
    assert response.status_code == 200, response.json
    me = org.http.get("/api/auth/me", headers={"Authorization": f"Bearer {response.json['token']}"})
    assert me.json["role"] == "admin" and me.json["org_id"] == unique
    assert sorted(me.json["clinic_ids"]) == sorted([org.north, org.south])

    wrong = org.http.post("/api/auth/token", json={"email": f"admin@{unique}.test", "password": "nope"})
    assert wrong.status_code == 401
    assert "token" not in (wrong.json or {})


def test_client_endpoints_need_an_identity(org):
    assert org.http.get("/api/clients").status_code == 401
    assert register(org, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert org.http.get("/api/counselors").status_code == 401


def test_a_registered_client_is_published_with_ids_and_codes_only(org, components):
    response = register(org, counselor_id=org.counselor_north)

    assert response.status_code == 201, response.json
    client = Client.objects.get(id=response.json["id"])
    assert client.pending_events == []  # published and pulled in the request
    [intake] = events_on(components.kafka_bootstrap, Topic.INTAKE_SUBMITTED, lambda e: e["org_id"] == org.id)
    assert intake["clinic_id"] == org.north
    assert intake["payload"]["client_id"] == client.id and intake["payload"]["intake_id"] == client.intake_id
    assert intake["payload"]["concerns"] == ["grief", "sleep"]
    assert intake["payload"]["preferences"] == {"language": "es", "modality": "telehealth", "counselor_gender": None}
    [assigned] = events_on(components.kafka_bootstrap, Topic.CLIENT_ASSIGNED, lambda e: e["org_id"] == org.id)
    assert assigned["payload"]["counselor_id"] == org.counselor_north
    for event in (intake, assigned):
        for private in ("Canary", "Phi-Check", "canary@example.org", "555 0100", "1990-04-01", "private note",
                        "evening"):
            assert private not in str(event)


def test_a_user_of_one_clinic_never_sees_another_clinics_client(org):
    client_id = register(org).json["id"]

    assert org.http.get(f"/api/clients/{client_id}", headers=org.desk_north).status_code == 200
    assert org.http.get(f"/api/clients/{client_id}", headers=org.desk_south).status_code == 404
    assert org.http.get(f"/api/clients/{client_id}/sessions", headers=org.desk_south).status_code == 404
    assert org.http.post(f"/api/clients/{client_id}/assignment", json={"counselor_id": org.counselor_south},
                         headers=org.desk_south).status_code == 404
    listed = org.http.get("/api/clients", headers=org.desk_south).json
    assert client_id not in [c["id"] for c in listed]
    other_org = org.token(Identity("someone", "another-org", (org.north,), "admin"))
    assert org.http.get(f"/api/clients/{client_id}", headers=other_org).status_code == 404
    # The admin of the organisation sees every clinic.
    assert org.http.get(f"/api/clients/{client_id}", headers=org.admin).status_code == 200


def test_front_desk_may_not_register_in_a_clinic_it_does_not_work_at(org):
    response = register(org, headers=org.desk_south)
    assert response.status_code == 422
    assert "clinic_id" in response.json["errors"]["json"]


def test_validation_errors_name_the_fields(org):
    response = register(org, first_name="", concerns=["astrology"], email="not-an-email",
                        preferences={"language": "spanish"}, date_of_birth="2999-01-01", shoe_size=42)
    assert response.status_code == 422
    errors = response.json["errors"]["json"]
    assert {"first_name", "concerns", "email", "preferences", "date_of_birth", "shoe_size"} <= set(errors)
    assert "language" in errors["preferences"]
    assert "Canary" not in str(response.json)


def test_roles_are_enforced(org):
    counselor = org.token(Identity(org.counselor_north, org.id, (org.north,), "counselor"))
    assert register(org, headers=counselor).status_code == 403
    assert org.http.post("/api/staff", json={}, headers=org.desk_north).status_code == 403
    assert org.http.patch(f"/api/counselors/{org.counselor_north}", json={"weekly_capacity": 3},
                          headers=org.desk_north).status_code == 403


def test_accounts_are_an_administrators_and_a_supervisor_edits_directory_entries_only(org, unique):
    """A supervisor of North must not reach South through a counselor who works in both: no new staff, no
    password, no clinics, no role; the counselor's name and directory entry are theirs to keep current."""
    both = org.http.post("/api/staff", headers=org.admin, json={
        "email": f"both@{unique}.test", "display_name": "Both Clinics", "password": PASSWORD,
        "role": "counselor", "clinic_ids": [org.north, org.south]}).json
    supervisor = org.token(Identity("sup", org.id, (org.north,), "supervisor"))
    body = {"email": f"new@{unique}.test", "display_name": "New", "password": PASSWORD, "role": "counselor",
            "clinic_ids": [org.north]}
    added = org.http.post("/api/staff", json=body, headers=supervisor)
    assert added.status_code == 403
    for change in ({"password": "another-password-1"}, {"clinic_ids": [org.north]}, {"role": "supervisor"},
                   {"active": False}):
        refused = org.http.patch(f"/api/staff/{both['id']}", json=change, headers=supervisor)
        assert refused.status_code == 403 and set(change) <= set(refused.json["errors"]["json"]), refused.json
    renamed = org.http.patch(f"/api/staff/{both['id']}", json={"display_name": "Both C."}, headers=supervisor)
    assert renamed.status_code == 200 and renamed.json["clinic_ids"] == [org.north, org.south]
    assert org.http.patch(f"/api/counselors/{both['id']}", json={"weekly_capacity": 8},
                          headers=supervisor).status_code == 200
    assert org.http.post("/api/staff", json=body, headers=org.admin).status_code == 201


def test_an_address_one_organisation_uses_tells_another_nothing(org, intake_app, unique):
    other = bootstrap(publish=None).handle(SeedOrganisation(f"{unique}x", "Other practice", {f"{unique}x-north": "North"},
                                                            f"admin@{unique}x.test", "Other Admin", PASSWORD))
    other_admin = org.token(Identity(other.id, f"{unique}x", (f"{unique}x-north",), "admin"))
    taken_here = f"front_desk-{org.north}@{unique}.test"  # a front desk of the first organisation
    body = {"email": taken_here, "display_name": "Same Address", "password": "other-password-1",
            "role": "front_desk", "clinic_ids": [f"{unique}x-north"]}
    assert org.http.post("/api/staff", json=body, headers=other_admin).status_code == 201
    again = org.http.post("/api/staff", json=body, headers=other_admin)
    assert again.status_code == 422 and "this organisation" in str(again.json)
    # Each signs in with their own password; the same password in both would have to name the organisation.
    mine = org.http.post("/api/auth/token", json={"email": taken_here, "password": PASSWORD})
    theirs = org.http.post("/api/auth/token", json={"email": taken_here, "password": "other-password-1"})
    assert mine.status_code == 200 and theirs.status_code == 200
    assert org.http.get("/api/auth/me", headers={"Authorization": f"Bearer {theirs.json['token']}"}).json[
        "org_id"] == f"{unique}x"
    org.http.patch(f"/api/staff/{staff_id_by_email(org, other_admin, taken_here)}", headers=other_admin,
                   json={"password": PASSWORD})
    ambiguous = org.http.post("/api/auth/token", json={"email": taken_here, "password": PASSWORD})
    assert ambiguous.status_code == 409 and "org_id" in ambiguous.json["errors"]["json"]
    chosen = org.http.post("/api/auth/token", json={"email": taken_here, "password": PASSWORD, "org_id": org.id})
    assert chosen.status_code == 200


def staff_id_by_email(org, headers, email):
    return next(s["id"] for s in org.http.get("/api/staff", headers=headers).json if s["email"] == email)


def test_a_session_is_rated_once_and_names_must_be_plain_text(org, components):
    client_id = register(org, counselor_id=org.counselor_north).json["id"]
    rating = {"client_id": client_id, "session_number": 4, "answers": {"goal-1": 9, "task-1": 8, "bond-1": 10}}
    first = org.http.post("/api/feedback", json=rating, headers=org.desk_north)
    second = org.http.post("/api/feedback", json={**rating, "answers": {"goal-1": 1, "task-1": 1, "bond-1": 1}},
                           headers=org.desk_north)
    assert first.status_code == 201
    assert second.status_code == 409 and first.json["id"] in str(second.json["errors"]["json"]["session_number"])
    assert len([f for f in org.http.get(f"/api/feedback?client_id={client_id}", headers=org.desk_north).json
                if f["session_number"] == 4]) == 1
    for name in ("Ana\u202eniL", "Ana\x00", "Ana\u2066x"):
        refused = register(org, first_name=name)
        assert refused.status_code == 422 and "first_name" in refused.json["errors"]["json"], name
    assert register(org, first_name="Zoë-Ana", notes="line one\nline two").status_code == 201


def test_json_nested_beyond_any_request_is_a_400_not_a_crash(org):
    deep = "[" * 100_000 + "]" * 100_000
    answer = org.http.post("/api/auth/token", data=deep, content_type="application/json")
    assert answer.status_code == 400 and "Nested" in str(answer.json)
    assert org.http.post("/api/clients", data='{"a":' * 50 + "1" + "}" * 50, content_type="application/json",
                         headers=org.desk_north).status_code == 400


def test_unknown_ids_are_404(org):
    assert org.http.get("/api/clients/nope", headers=org.desk_north).status_code == 404
    assert org.http.get("/api/counselors/nope", headers=org.desk_north).status_code == 404
    assert org.http.post("/api/clients/nope/sessions", json={"held_on": "2026-01-02"},
                         headers=org.desk_north).status_code == 404


def test_assignment_is_recorded_and_published_once(org, components):
    client_id = register(org).json["id"]

    response = org.http.post(f"/api/clients/{client_id}/assignment", json={"counselor_id": org.counselor_north},
                             headers=org.desk_north)

    assert response.status_code == 200, response.json
    [assignment] = response.json["assignments"]
    assert assignment["counselor_id"] == org.counselor_north and assignment["assigned_by"]
    [event] = events_on(components.kafka_bootstrap, Topic.CLIENT_ASSIGNED, lambda e: e["org_id"] == org.id)
    assert event["payload"]["client_id"] == client_id and event["payload"]["previous_counselor_id"] is None
    # A counselor of the other clinic cannot take this client.
    refused = org.http.post(f"/api/clients/{client_id}/assignment", json={"counselor_id": org.counselor_south},
                            headers=org.admin)
    assert refused.status_code == 422 and "counselor_id" in refused.json["errors"]["json"]


def test_directory_filters_and_caseload(org, components):
    register(org, counselor_id=org.counselor_north)
    register(org, counselor_id=org.counselor_north)

    found = org.http.get("/api/counselors", query_string={"specialty": "trauma", "language": "es"},
                         headers=org.admin).json
    assert [c["id"] for c in found] == [org.counselor_north]
    assert found[0]["caseload"] == 2 and found[0]["weekly_capacity"] == 12
    assert org.http.get("/api/counselors", query_string={"specialty": "ocd"}, headers=org.admin).json == []
    in_south = org.http.get("/api/counselors", query_string={"clinic_id": org.south}, headers=org.admin).json
    assert [c["id"] for c in in_south] == [org.counselor_south]
    # Front desk of north sees only counselors of north.
    assert [c["id"] for c in org.http.get("/api/counselors", headers=org.desk_north).json] == [org.counselor_north]
    bad = org.http.get("/api/counselors", query_string={"modality": "carrier-pigeon"}, headers=org.admin)
    assert bad.status_code == 422 and "modality" in bad.json["errors"]["query"]


def test_counselor_changes_publish_counselor_updated_with_the_caseload(org, components):
    register(org, counselor_id=org.counselor_north)
    response = org.http.patch(f"/api/counselors/{org.counselor_north}",
                              json={"accepting_new_clients": False, "style_notes": "warm, direct"},
                              headers=org.admin)
    assert response.status_code == 200, response.json
    assert response.json["accepting_new_clients"] is False

    updates = events_on(components.kafka_bootstrap, Topic.COUNSELOR_UPDATED,
                        lambda e: e["payload"]["counselor_id"] == org.counselor_north)
    last = updates[-1]["payload"]
    assert last["accepting_new_clients"] is False and last["caseload"] == 1
    assert last["specialties"] == ["trauma", "grief"] and "style_notes" not in last
    staff = events_on(components.kafka_bootstrap, Topic.STAFF_UPDATED, lambda e: e["org_id"] == org.id)
    assert {e["payload"]["role"] for e in staff} == {"counselor", "front_desk"}
    # The seeded admin's staff.updated waits in its outbox for the worker's relay (no producer given).
    [pending] = Staff.objects.get(org_id=org.id, role="admin").pending_events
    assert pending["topic"] == Topic.STAFF_UPDATED
    assert Staff.objects.get(id=org.counselor_north).pending_events == []


def test_a_counselor_who_leaves_the_directory_is_announced_inactive(org, components):
    response = org.http.patch(f"/api/staff/{org.counselor_south}", json={"role": "supervisor"}, headers=org.admin)
    assert response.status_code == 200, response.json
    [*_, last] = events_on(components.kafka_bootstrap, Topic.COUNSELOR_UPDATED,
                           lambda e: e["payload"]["counselor_id"] == org.counselor_south)
    assert last["payload"]["active"] is False
    [*_, staff] = events_on(components.kafka_bootstrap, Topic.STAFF_UPDATED,
                            lambda e: e["payload"]["staff_id"] == org.counselor_south)
    assert staff["payload"]["role"] == "supervisor"
    assert org.http.get(f"/api/counselors/{org.counselor_south}", headers=org.admin).status_code == 404


def test_sessions_are_numbered_and_not_recorded_twice(org):
    client_id = register(org, counselor_id=org.counselor_north).json["id"]
    first = org.http.post(f"/api/clients/{client_id}/sessions", json={"held_on": "2026-01-05"},
                          headers=org.desk_north)
    second = org.http.post(f"/api/clients/{client_id}/sessions", json={"held_on": "2026-01-12"},
                           headers=org.desk_north)
    again = org.http.post(f"/api/clients/{client_id}/sessions", json={"held_on": "2026-01-12", "number": 2},
                          headers=org.desk_north)

    assert (first.json["number"], second.json["number"]) == (1, 2)
    assert again.status_code == 422 and "number" in again.json["errors"]["json"]
    listed = org.http.get(f"/api/clients/{client_id}/sessions", headers=org.desk_north)
    assert [s["number"] for s in listed.json] == [1, 2]
    assert listed.headers["X-Pagination"]


def test_next_sessions_recorded_at_once_each_get_a_number_of_their_own(org):
    # Two desks (or a double submit) recording a client's next session at the same moment.
    for _ in range(3):
        client_id = register(org, counselor_id=org.counselor_north).json["id"]
        answers = at_once(lambda: org.app.test_client().post(
            f"/api/clients/{client_id}/sessions", json={"held_on": "2026-02-02"}, headers=org.desk_north), 4)
        assert [a.status_code for a in answers] == [201] * 4, [a.json for a in answers]
        assert sorted(a.json["number"] for a in answers) == [1, 2, 3, 4]


def test_staff_entered_feedback_is_validated_against_the_clinics_instrument(org, components):
    client_id = register(org, counselor_id=org.counselor_north).json["id"]

    bad = org.http.post("/api/feedback", json={"client_id": client_id, "session_number": 1,
                                               "answers": {"goal-1": 11, "task-1": 5}}, headers=org.desk_north)
    assert bad.status_code == 422
    assert set(bad.json["errors"]["json"]["answers"]) == {"goal-1", "bond-1"}

    good = org.http.post("/api/feedback", json={"client_id": client_id, "session_number": 1,
                                                "answers": {"goal-1": 9, "task-1": 8, "bond-1": 10}},
                         headers=org.desk_north)
    assert good.status_code == 201, good.json
    [event] = events_on(components.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, lambda e: e["org_id"] == org.id)
    assert event["payload"]["counselor_id"] == org.counselor_north
    assert event["payload"]["instrument_id"] == "rapport-short"
    assert event["payload"]["answers"] == {"goal-1": 9, "task-1": 8, "bond-1": 10}
    assert org.http.get(f"/api/feedback/{good.json['id']}", headers=org.desk_south).status_code == 404


def test_openapi_documents_the_api(org):
    spec = org.http.get("/openapi.json").json
    for path in ("/api/auth/token", "/api/clients", "/api/clients/{client_id}/feedback-requests",
                 "/api/counselors", "/api/staff", "/api/feedback"):
        assert path in spec["paths"]
