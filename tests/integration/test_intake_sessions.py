"""Sessions that end when they should, in intake itself (the other services: tests/security), and the
audit trail of sign-ins and reads."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import jwt

from services.common.auth import COOKIE_NAME, Identity, issue_token
from services.common.audit import AuditRecord
from services.intake.adapters import accounts
from services.intake.entrypoints import pages
from tests.integration.test_intake_api import PASSWORD, org, register  # noqa: F401  (the `org` fixture)
from tests.support.identity import DEVELOPMENT, form_token


def signed_in_token(org, email) -> str:
    response = org.http.post("/api/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.json
    return response.json["token"]


def works(org, token) -> bool:
    return org.http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_deactivation_a_new_role_or_password_and_a_sign_out_each_end_the_sessions_at_once(org):
    email = f"front_desk-{org.north}@{org.id}.test"
    staff_id = next(s["id"] for s in org.http.get("/api/staff", headers=org.admin).json if s["email"] == email)
    for change in ({"password": "a-new-password-1"}, {"role": "supervisor"}, {"clinic_ids": [org.north, org.south]}):
        token = signed_in_token(org, email if "password" not in change else email)
        assert works(org, token)
        assert org.http.patch(f"/api/staff/{staff_id}", json=change, headers=org.admin).status_code == 200
        assert not works(org, token), change
        if "password" in change:
            org.http.patch(f"/api/staff/{staff_id}", json={"password": PASSWORD}, headers=org.admin)
    token = signed_in_token(org, email)
    unchanged = org.http.patch(f"/api/staff/{staff_id}", json={"display_name": "Renamed"}, headers=org.admin)
    assert unchanged.status_code == 200 and works(org, token)  # a new name ends nothing
    assert org.http.post("/api/auth/signout", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    assert not works(org, token)
    other_device = signed_in_token(org, email)
    assert org.http.patch(f"/api/staff/{staff_id}", json={"active": False}, headers=org.admin).status_code == 200
    assert not works(org, other_device)
    assert org.http.post("/api/auth/token", json={"email": email, "password": PASSWORD}).status_code == 401


def test_a_browser_session_is_renewed_within_its_sign_in_and_never_beyond_it(org):
    email = f"front_desk-{org.south}@{org.id}.test"
    staff_id = next(s["id"] for s in org.http.get("/api/staff", headers=org.admin).json if s["email"] == email)
    identity = Identity(staff_id, org.id, (org.south,), "front_desk")
    browser = org.app.test_client()
    started = datetime.now(timezone.utc) - timedelta(hours=2)
    session = identity.signed_in(started)
    browser.set_cookie(COOKIE_NAME, issue_token(DEVELOPMENT, session, now=datetime.now(timezone.utc)
                                                - timedelta(minutes=5)))
    page = browser.get("/")
    assert page.status_code == 200
    renewed = jwt.decode(browser.get_cookie(COOKIE_NAME).value, options={"verify_signature": False})
    assert renewed["sid"] == session.session_id and renewed["auth"] == int(started.timestamp())
    # Twelve hours after the sign-in the session is over, however busy it was.
    over = identity.signed_in(datetime.now(timezone.utc) - timedelta(hours=DEVELOPMENT.session_max_hours + 1))
    browser.set_cookie(COOKIE_NAME, issue_token(DEVELOPMENT, over, now=datetime.now(timezone.utc)))
    assert browser.get("/").status_code == 302


def test_every_page_and_answer_says_not_to_store_frame_or_run_inline_script(org):
    browser = org.app.test_client()
    browser.post("/signin", data={"email": f"admin@{org.id}.test", "password": PASSWORD})
    page = browser.get("/")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "same-origin"
    api = org.http.get("/api/clients", headers=org.desk_north)
    assert api.headers["Cache-Control"] == "no-store" and api.headers["X-Frame-Options"] == "DENY"
    # Scripts only from files the policy allows ('self'), never inline.
    assert "style=" not in page.text and "<script" in page.text
    assert not re.findall(r"<script(?![^>]*\bsrc=)", page.text)
    # A form from another site is refused, even from the same host on another port.
    form = {**form_token(page.text), "first_name": "X", "last_name": "Y", "clinic_id": org.north,
            "concerns": "anxiety"}
    assert browser.post("/clients/new", data=form, headers={"Origin": "http://127.0.0.1:1"}).status_code == 403
    assert browser.post("/clients/new", data=form).status_code == 303


def test_failed_and_throttled_sign_ins_are_in_the_trail_of_the_accounts_organisation(org, monkeypatch):
    email = f"counselor-{org.north}@{org.id}.test"
    staff_id = next(s["id"] for s in org.http.get("/api/staff", headers=org.admin).json if s["email"] == email)
    assert org.http.post("/api/auth/token", json={"email": email, "password": "wrong"}).status_code == 401
    monkeypatch.setattr(accounts, "ATTEMPTS_PER_ACCOUNT", 0)
    assert org.http.post("/api/auth/token", json={"email": email, "password": PASSWORD}).status_code == 429
    trail = org.http.get("/api/audit", query_string={"subject": f"staff_id:{staff_id}"}, headers=org.admin).json
    assert {r["outcome"] for r in trail if r["action"] == "sign-in"} >= {"refused", "throttled"}
    assert all(r["org_id"] == org.id for r in trail)


def test_a_read_by_query_names_the_clients_read(org):
    client_id = register(org, counselor_id=org.counselor_north).json["id"]
    org.http.get("/api/feedback", query_string={"client_id": client_id}, headers=org.desk_north)
    org.http.get("/api/clients", headers=org.desk_north)
    # A raw $regex: mongoengine's __contains adds a flag FerretDB 1.24 rejects.
    reads = AuditRecord.objects(org_id=org.id, __raw__={"subject": {"$regex": f"client_id:{client_id}"}})
    assert {"GET /api/feedback", "GET /api/clients"} <= {r.action for r in reads}


def test_the_clients_link_pages_refuse_an_address_that_tries_too_many(org, monkeypatch):
    monkeypatch.setattr(pages, "LINK_REQUESTS_PER_ADDRESS", 3)
    answers = [org.http.get(f"/f/not-a-link-{n}", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code
               for n in range(5)]
    assert answers == [404, 404, 404, 429, 429]
    assert org.http.get("/f/not-a-link", environ_base={"REMOTE_ADDR": "203.0.113.10"}).status_code == 404
