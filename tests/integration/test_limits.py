"""Request limits on a real database: shared attempt counters, per-caller API limits, content types."""
from __future__ import annotations

import pytest
from flask import jsonify

from services.common import mongo, ratelimit
from services.common.auth import Identity
from services.common.schemas import MAX_PAGE
from services.common.web.app import create_service_app
from tests.support.identity import bearer


@pytest.fixture
def app(settings_for):
    settings = settings_for("tests")
    app, _api = create_service_app(__name__, "tests", {
        "kafka_bootstrap": settings.kafka_bootstrap, "mongo_uri": settings.mongo_uri,
        "db_prefix": settings.db_prefix, "api_requests_per_minute": 5})

    @app.post("/api/things")
    def create_thing():
        return jsonify(ok=True), 201

    return app


def test_shared_attempt_counter_allows_the_limit_then_says_when_to_retry(settings_for, unique):
    mongo.connect(settings_for("tests"))
    now = 1_000_020.0  # the start of a 60 s window (a multiple of 60)
    decisions = [ratelimit.hit("signin", f"acct-{unique}", limit=3, window_s=60, now=now + 10)
                 for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after_s == 50
    # Another key, or the next window, starts afresh.
    assert ratelimit.hit("signin", f"other-{unique}", limit=3, window_s=60, now=now + 10).allowed
    assert ratelimit.hit("signin", f"acct-{unique}", limit=3, window_s=60, now=now + 61).allowed


def test_a_caller_over_the_api_limit_gets_429_with_retry_after(app):
    client = app.test_client()
    statuses = [client.post("/api/things", json={}).status_code for _ in range(7)]
    assert statuses[:5] == [201] * 5 and statuses[5:] == [429, 429]
    limited = client.post("/api/things", json={})
    assert int(limited.headers["Retry-After"]) >= 1 and limited.json["code"] == 429


def test_a_body_that_is_not_json_is_415_naming_the_header(app):
    response = app.test_client().post("/api/things", data="a=1",
                                      content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "Content-Type" in response.json["errors"]["headers"]


def test_a_page_number_beyond_the_bound_is_a_422_naming_it_not_a_500(intake_app):
    # schemathesis found it: page × page_size overflowed MongoDB's 64-bit skip.
    client = intake_app().test_client()
    admin = bearer(Identity("admin-1", "org-limits", (), "admin"))
    refused = client.get("/api/clinics", query_string={"page": 10**19}, headers=admin)
    assert refused.status_code == 422 and "page" in refused.json["errors"]["query"]
    assert client.get("/api/clinics", query_string={"page": MAX_PAGE}, headers=admin).status_code == 200
