"""Intake's names API (`GET /api/people`, what people.js asks on every staff page) over the real database:
names only under the caller's own permissions, the read audited, the number of ids bounded."""
from __future__ import annotations

import pytest

from services.common.audit import AuditRecord
from services.common.auth import Identity, issue_token
from services.intake.bootstrap import bootstrap
from services.intake.commands import SeedOrganisation

PASSWORD = "correct horse battery"


@pytest.fixture
def practice(intake_app, settings_for, unique):
    """Two clinics; counselors Nia (north) and Sol (south) with a client each, a second organisation with a
    client of its own; bearer headers for each caller."""
    app = intake_app()
    settings = settings_for("intake")
    http = app.test_client()

    def headers(identity):
        return {"Authorization": f"Bearer {issue_token(settings, identity)}"}

    def organisation(org):
        north, south = f"{org}-north", f"{org}-south"
        admin = bootstrap(publish=None).handle(SeedOrganisation(
            org, "Practice", {north: "North", south: "South"}, f"admin@{org}.test", "Ada Admin", PASSWORD))
        admin_headers = headers(Identity(admin.id, org, (north, south), "admin"))

        def counselor(name, clinic):
            response = http.post("/api/staff", headers=admin_headers, json={
                "email": f"{name.lower()}@{org}.test", "display_name": f"{name} Counselor", "password": PASSWORD,
                "role": "counselor", "clinic_ids": [clinic], "counselor": {"languages": ["en"]}})
            assert response.status_code == 201, response.json
            return response.json["id"]

        def client(first, clinic, counselor_id):
            response = http.post("/api/clients", headers=admin_headers, json={
                "clinic_id": clinic, "first_name": first, "last_name": "Client", "concerns": ["grief"],
                "counselor_id": counselor_id})
            assert response.status_code == 201, response.json
            return response.json["id"]

        nia, sol, ola = counselor("Nia", north), counselor("Sol", south), counselor("Ola", north)
        return {"org": org, "north": north, "admin": admin.id, "nia": nia, "sol": sol, "ola": ola,
                "admin_headers": admin_headers,
                "nia_client": client("Nora", north, nia), "sol_client": client("Sami", south, sol)}

    ours, theirs = organisation(unique), organisation(f"{unique}x")
    ours["http"], ours["headers"] = http, headers
    ours["as_nia"] = headers(Identity(ours["nia"], unique, (ours["north"],), "counselor"))
    ours["as_supervisor"] = headers(Identity("sup-1", unique, (ours["north"],), "supervisor"))
    ours["as_ola"] = headers(Identity(ours["ola"], unique, (ours["north"],), "counselor"))
    ours["other_org"] = theirs
    return ours


def headers_of(practice, counselor):
    return practice["headers"](Identity(practice[counselor], practice["org"], (practice["north"],), "counselor"))


def people(practice, headers, clients=(), staff=(), clinics=()):
    return practice["http"].get("/api/people", headers=headers,
                                query_string=[*(("client", c) for c in clients), *(("staff", s) for s in staff),
                                              *(("clinic", c) for c in clinics)])


def test_a_counselor_gets_the_names_of_their_own_clients_only(practice):
    theirs = practice["other_org"]
    asked = [practice["nia_client"], practice["sol_client"], theirs["nia_client"], "no-such-client"]
    response = people(practice, practice["as_nia"], clients=asked,
                      staff=[practice["nia"], practice["sol"], theirs["nia"], "no-such-staff"],
                      clinics=[practice["north"], theirs["north"]])
    assert response.status_code == 200, response.json
    # Sol's client is at another clinic; the other organisation's people, clinics and unknown ids are simply
    # absent.
    assert response.json == {"clients": {practice["nia_client"]: "Nora Client"},
                             "staff": {practice["nia"]: "Nia Counselor", practice["sol"]: "Sol Counselor"},
                             "clinics": {practice["north"]: "North"}}


def test_a_counselor_still_names_a_client_they_counseled_before_a_reassignment(practice):
    nora = practice["nia_client"]
    moved = practice["http"].post(f"/api/clients/{nora}/assignment", headers=practice["admin_headers"],
                                  json={"counselor_id": practice["ola"]})
    assert moved.status_code == 200, moved.json
    # The record follows the assignment; the name stays on the pages of the counselor the client left.
    assert practice["http"].get(f"/api/clients/{nora}", headers=practice["as_nia"]).status_code == 404
    assert people(practice, practice["as_nia"], clients=[nora]).json["clients"] == {nora: "Nora Client"}
    assert people(practice, practice["as_ola"], clients=[nora]).json["clients"] == {nora: "Nora Client"}
    # A counselor who never had the client does not get the name.
    sol = headers_of(practice, "sol")
    assert people(practice, sol, clients=[nora]).json["clients"] == {}


def test_a_supervisor_sees_the_clients_of_their_clinics(practice):
    response = people(practice, practice["as_supervisor"], clients=[practice["nia_client"], practice["sol_client"]])
    assert response.status_code == 200
    assert response.json == {"clients": {practice["nia_client"]: "Nora Client"}, "staff": {}, "clinics": {}}


def test_the_clients_named_are_recorded_as_the_reads_subjects(practice):
    people(practice, practice["as_nia"], clients=[practice["nia_client"], practice["sol_client"]])
    read = AuditRecord.objects(action="GET /api/people", actor=practice["nia"]).order_by("-seq").first()
    assert read is not None and read.outcome == "ok"
    assert read.subject == f"client_id:{practice['nia_client']}"  # not the client it did not see


def test_more_than_200_ids_of_a_kind_is_a_400_naming_the_field(practice):
    response = people(practice, practice["as_nia"], staff=[f"s{n}" for n in range(201)])
    assert response.status_code == 400
    assert list(response.json["errors"]["query"]) == ["staff"]
    assert people(practice, practice["as_nia"], clients=[f"c{n}" for n in range(200)]).status_code == 200


def test_names_need_a_signed_in_caller_and_well_formed_ids(practice):
    assert people(practice, {}, clients=[practice["nia_client"]]).status_code == 401
    malformed = people(practice, practice["as_nia"], clients=["not an id!"])
    assert malformed.status_code == 422 and "client" in malformed.json["errors"]["query"]
