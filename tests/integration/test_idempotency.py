"""Idempotency-Key on a real database: a retried POST is answered once, never performed twice."""
from __future__ import annotations

import itertools

import pytest
from flask import jsonify, request

from services.common.auth import Identity, issue_token
from services.common.web.app import create_service_app


@pytest.fixture
def app_and_calls(settings_for):
    settings = settings_for("tests")
    app, _api = create_service_app(__name__, "tests", {
        "kafka_bootstrap": settings.kafka_bootstrap, "mongo_uri": settings.mongo_uri,
        "db_prefix": settings.db_prefix})
    calls = []
    numbers = itertools.count(1)

    @app.post("/things")
    def create_thing():
        if request.json.get("explode"):
            return jsonify(code=503), 503
        calls.append(request.json)
        return jsonify(id=next(numbers)), 201

    return app, calls


def test_a_retry_with_the_same_key_replays_the_first_answer(app_and_calls):
    app, calls = app_and_calls
    client = app.test_client()
    first = client.post("/things", json={"a": 1}, headers={"Idempotency-Key": "k-1"})
    again = client.post("/things", json={"a": 1}, headers={"Idempotency-Key": "k-1"})
    other = client.post("/things", json={"a": 1}, headers={"Idempotency-Key": "k-2"})

    assert (first.status_code, first.json) == (201, {"id": 1})
    assert (again.status_code, again.json) == (201, {"id": 1})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.json == {"id": 2}
    assert len(calls) == 2


def test_the_same_key_for_a_different_body_is_refused_naming_the_header(app_and_calls):
    app, calls = app_and_calls
    client = app.test_client()
    client.post("/things", json={"a": 1}, headers={"Idempotency-Key": "k-3"})
    reused = client.post("/things", json={"a": 2}, headers={"Idempotency-Key": "k-3"})
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json["errors"]["headers"]
    assert len(calls) == 1


def test_keys_are_scoped_to_the_caller(app_and_calls, settings_for):
    app, calls = app_and_calls
    client = app.test_client()
    settings = settings_for("tests")
    for staff in ("s1", "s2"):
        token = issue_token(settings, Identity(staff, "org", ("c",), "front_desk"))
        response = client.post("/things", json={"a": 1},
                               headers={"Idempotency-Key": "same", "Authorization": f"Bearer {token}"})
        assert response.status_code == 201
    assert len(calls) == 2


def test_a_server_error_forgets_the_key_so_the_client_can_retry(app_and_calls):
    app, calls = app_and_calls
    client = app.test_client()
    failed = client.post("/things", json={"explode": True}, headers={"Idempotency-Key": "k-4"})
    assert failed.status_code == 503
    retried = client.post("/things", json={"explode": True}, headers={"Idempotency-Key": "k-4"})
    assert retried.status_code == 503 and "Idempotent-Replayed" not in retried.headers


def test_a_malformed_key_is_a_400_naming_the_header(app_and_calls):
    app, _calls = app_and_calls
    response = app.test_client().post("/things", json={}, headers={"Idempotency-Key": "has spaces"})
    assert response.status_code == 400 and "Idempotency-Key" in response.json["errors"]["headers"]
