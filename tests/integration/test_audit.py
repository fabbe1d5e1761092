"""The audit trail on a real database: requests are recorded, the chain verifies, tampering is pinpointed."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import abort, jsonify

from services.common import audit
from services.common.audit import HEAD_ID, AuditHead, AuditRecord
from services.common.auth import Identity
from services.common.web.app import create_service_app
from services.common.web.identity import require_identity
from tests.security import summary
from tests.support.identity import bearer as bearer_for


@pytest.fixture
def app(settings_for):
    settings = settings_for("tests")
    app, _api = create_service_app(__name__, "tests", {
        "kafka_bootstrap": settings.kafka_bootstrap, "mongo_uri": settings.mongo_uri,
        "db_prefix": settings.db_prefix})

    @app.get("/api/clients/<client_id>")
    def read_client(client_id):
        require_identity()
        if client_id == "elsewhere":
            abort(404)
        return jsonify(id=client_id)

    return app


def bearer(settings, staff="s1", role="counselor", org="org-1"):
    return bearer_for(Identity(staff, org, ('north',), role), settings)


def test_reads_denials_and_misses_are_recorded_with_who_what_and_outcome(app, settings_for):
    client, settings = app.test_client(), settings_for("tests")
    client.get("/api/clients/c-1", headers=bearer(settings))
    client.get("/api/clients/elsewhere", headers=bearer(settings))
    client.get("/api/clients/c-1")
    client.get("/healthz")

    records = list(AuditRecord.objects.order_by("seq"))
    assert [(r.actor, r.subject, r.outcome) for r in records] == [
        ("s1", "client_id:c-1", "ok"), ("s1", "client_id:elsewhere", "not_found"),
        (None, "client_id:c-1", "unauthenticated")]
    assert records[0].action == "GET /api/clients/<client_id>" and records[0].org_id == "org-1"
    assert all(r.request_id for r in records)


def test_the_chain_verifies_and_pinpoints_an_edited_or_deleted_record(app, settings_for):
    client, settings = app.test_client(), settings_for("tests")
    for n in range(5):
        client.get(f"/api/clients/c-{n}", headers=bearer(settings))
    report = audit.verify()
    assert report.intact and report.records == 5

    AuditRecord.objects(seq=3).update_one(set__actor="someone-else")
    edited = audit.verify().problem
    assert edited == "record 3 was altered"

    AuditRecord.objects(seq=3).update_one(set__actor="s1")
    assert audit.verify().intact
    fourth = AuditRecord.objects.get(seq=4).to_mongo()
    AuditRecord.objects(seq=4).delete()
    AuditRecord._get_collection().insert_one({**fourth, "_id": audit.position_key(9)})
    moved = audit.verify().problem
    assert moved == "record 4 was moved"

    AuditRecord.objects(seq=2).delete()
    deleted = audit.verify().problem
    assert deleted == "records 2..2 are missing"
    summary.report(f"audit chain: {report.records} records verified intact; then pinpointed: {edited}, {moved}, "
                   f"{deleted}")


def test_admins_of_the_organisation_query_the_trail_others_may_not(app, settings_for):
    client, settings = app.test_client(), settings_for("tests")
    client.get("/api/clients/c-9", headers=bearer(settings))
    client.get("/api/clients/c-9", headers=bearer(settings, staff="x", org="org-2"))

    listed = client.get("/api/audit", query_string={"subject": "c-9"},
                        headers=bearer(settings, staff="a1", role="admin"))
    assert listed.status_code == 200
    assert {r["actor"] for r in listed.json} == {"s1"}  # org-2's access is not org-1's business
    assert client.get("/api/audit", headers=bearer(settings)).status_code == 403


def test_concurrent_writers_all_append_and_the_chain_stays_intact(app):
    """A burst of requests in several threads and processes: every record finds a position (before, the
    losers gave up after a few collisions and the request answered 500)."""
    writers, each = 8, 15

    def append(writer: int) -> None:
        for n in range(each):
            audit.record("tests", "GET /api/clients/<client_id>", "ok", actor=f"s{writer}", subject=f"c-{n}")

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(append, range(writers)))
    report = audit.verify()
    assert report.intact and report.records == writers * each
    summary.report(f"audit chain: {writers} concurrent writers appended {report.records} records, chain intact")


def test_a_head_left_behind_by_a_writer_that_died_is_caught_up(app):
    for n in range(3):
        audit.record("tests", "GET /api/clients/<client_id>", "ok", actor="s1", subject=f"c-{n}")
    # A writer that appended record 3 and died before moving the head.
    AuditHead.objects(id=HEAD_ID).update_one(set__seq=2, set__hash=AuditRecord.objects.get(seq=2).hash)
    appended = audit.record("tests", "GET /api/clients/<client_id>", "ok", actor="s1", subject="c-3")
    assert appended.seq == 4 and audit.verify().intact
    assert AuditHead.objects.get(id=HEAD_ID).seq == 4
