"""Sessions and browser defences across the running platform: a session intake ends is refused by every
service within seconds (deactivation, new role, new password, sign-out), none outlives its absolute
lifetime, every page and answer carries the protective headers, a form from another site is refused by
every service, and JSON nested beyond reason is a 400 everywhere."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import requests

from services.common.auth import COOKIE_NAME, Identity, issue_token
from tests.security.summary import report
from tests.security.tenants import PASSWORD, World, call
from tests.support.identity import DEVELOPMENT, bearer
from tests.support.kafka_reader import wait_for

# A read each service answers a signed-in counselor with 200.
READS = {"intake": "/api/auth/me", "scoring": "/api/alerts", "referral": "/api/referrals", "notify": "/api/inbox"}
PAGES = {"intake": "/", "scoring": "/alliance", "referral": "/referrals", "notify": "/inbox"}
PROPAGATION_S = 30
CHECKS: list[str] = []


def answers(world: World, headers: dict) -> dict[str, int]:
    return {service: requests.get(world.urls[service] + path, headers=headers, timeout=15).status_code
            for service, path in READS.items()}


def new_counselor(world: World) -> tuple[str, str]:
    clinic, tag = world.own, uuid.uuid4().hex[:10]
    email = f"session.{tag}@example.test"
    staff = call("POST", f"{world.urls['intake']}/api/staff", 201, headers=clinic.headers("admin"), json={
        "email": email, "display_name": f"Session {tag}", "password": PASSWORD, "role": "counselor",
        "clinic_ids": [clinic.id]})
    return staff["id"], email


def sign_in(world: World, email: str, password: str = PASSWORD) -> dict[str, str]:
    token = call("POST", f"{world.urls['intake']}/api/auth/token", 200, json={"email": email, "password": password})
    return {"Authorization": f"Bearer {token['token']}"}


def refused_everywhere(world: World, headers: dict) -> dict[str, int]:
    return wait_for(lambda: (found := answers(world, headers)) and set(found.values()) == {401} and found,
                    PROPAGATION_S)


def test_a_session_intake_ends_is_refused_by_every_service_within_seconds(world: World):
    admin = world.own.headers("admin")
    for change in ({"active": False}, {"role": "supervisor"}, {"password": "a-new-password-1"}, None):
        staff_id, email = new_counselor(world)
        headers = sign_in(world, email)
        wait_for(lambda: set(answers(world, headers).values()) == {200}, PROPAGATION_S)
        if change is None:  # signing out in the browser ends the session in every service
            page = requests.get(world.urls["intake"] + "/", headers=headers, timeout=15)
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            cookie = headers["Authorization"][7:]
            signed_out = requests.post(world.urls["intake"] + "/signout", data={"csrf_token": token},
                                       cookies={COOKIE_NAME: cookie}, allow_redirects=False, timeout=15)
            assert signed_out.status_code == 303
        else:
            call("PATCH", f"{world.urls['intake']}/api/staff/{staff_id}", 200, headers=admin, json=change)
        refused_everywhere(world, headers)
        CHECKS.append(f"revoked after {change or 'sign-out'}")
    # A session that ran for longer than its absolute lifetime is over, in every service.
    staff_id, _ = new_counselor(world)
    old = Identity(staff_id, world.own.org_id, (world.own.id,), "counselor").signed_in(
        datetime.now(timezone.utc) - timedelta(hours=DEVELOPMENT.session_max_hours, minutes=1))
    assert set(answers(world, {"Authorization": f"Bearer {issue_token(DEVELOPMENT, old)}"}).values()) == {401}
    CHECKS.append("absolute lifetime")


def test_every_page_and_answer_carries_the_protective_headers(world: World):
    headers = world.own.headers("counselor")
    for service in READS:
        page = requests.get(world.urls[service] + PAGES[service], headers=headers, timeout=15)
        api = requests.get(world.urls[service] + READS[service], headers=headers, timeout=15)
        for answer in (page, api):
            assert answer.headers.get("Cache-Control") == "no-store", (service, answer.url)
            assert answer.headers.get("X-Frame-Options") == "DENY", (service, answer.url)
            assert answer.headers.get("Referrer-Policy") == "same-origin", (service, answer.url)
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy, (service, policy)
        assert "frame-ancestors 'none'" in policy and "style=" not in page.text
        # Scripts come from files the policy names ('self'), never inline.
        assert not re.findall(r"<script(?![^>]*\bsrc=)", page.text), service
        CHECKS.append(f"headers {service}")


def test_a_form_from_another_site_is_refused_by_every_service(world: World):
    """Another port of the same host is the same site to SameSite=Lax: the Origin and the form token are
    what stand between it and a signed-in counselor's session."""
    # The admin may use every one of these forms, so a refusal is the defence's, never the role's.
    cookie = {COOKIE_NAME: bearer(world.own.identity("admin"))["Authorization"][7:]}
    posts = {"intake": "/signout", "scoring": "/alliance/settings", "referral": "/referrals/x/accept",
             "notify": "/preferences"}
    for service, path in posts.items():
        url = world.urls[service] + path
        without_token = requests.post(url, data={"timezone": "UTC"}, cookies=cookie, allow_redirects=False,
                                      timeout=15)
        page = requests.get(world.urls[service] + PAGES[service], cookies=cookie, timeout=15)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        other_site = requests.post(url, data={"timezone": "UTC", "csrf_token": token}, cookies=cookie,
                                   headers={"Origin": "http://127.0.0.1:1"}, allow_redirects=False, timeout=15)
        assert (without_token.status_code, other_site.status_code) == (403, 403), service
        CHECKS.append(f"cross-site form {service}")
    # The same form from the service's own page goes through.
    own = requests.post(world.urls["notify"] + "/preferences", cookies=cookie, timeout=15,
                        data={"timezone": "UTC", "csrf_token": token}, headers={"Origin": world.urls["notify"]})
    assert own.status_code == 200


def test_json_nested_beyond_reason_is_a_400_everywhere(world: World):
    deep = "[" * 50_000 + "]" * 50_000
    admin = world.own.headers("admin")
    targets = {"intake": "/api/auth/token", "scoring": f"/api/clinics/{world.own.id}/alert-settings/preview",
               "referral": "/api/referrals/x/decline", "notify": "/api/preferences"}
    for service, path in targets.items():
        method = "PUT" if service == "notify" else "POST"
        answer = requests.request(method, world.urls[service] + path, data=deep, timeout=15,
                                  headers={**admin, "Content-Type": "application/json"})
        assert answer.status_code == 400 and "Nested" in answer.text, (service, answer.status_code, answer.text)
        CHECKS.append(f"deep JSON {service}")
    report(f"sessions and browser defences: {len(CHECKS)} checks on 4 services ({', '.join(CHECKS[:5])}, ...); "
           "failures 0")
