"""The isolation matrix (OWASP API1/API3/API5): every route of every service × every method × every role ×
own clinic / other clinic of the organisation / other organisation / an id that exists nowhere / spoofed
tenant fields, with real tokens against the running platform; then every protected route with a missing,
expired, tampered and unsigned (alg=none) token.

Routes come from the services' url_maps, and each needs an entry in access_rules.RULES: a route added later
fails the first test until someone says who may use it.

Expected: allowed cells succeed; an object of another clinic (below admin) or another organisation answers
404 exactly as an id that exists nowhere does (never 403 or 200: existence does not leak); a role that may
never use a route gets 403 whatever it points at; spoofed org_id/clinic_id in the query, body or headers
never widens access; and no answer to anyone carries an id of an object outside their scope.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import jwt
import pytest
import requests

from services.common.auth import issue_token
from tests.security.access_rules import Access, access_for
from tests.security.routes import served_routes
from tests.security.summary import report
from tests.security.tenants import ROLES, Clinic, World
from tests.support.identity import DEVELOPMENT, bearer

NOWHERE = "0000aaaa0000bbbb0000cccc0000dddd"   # a well-formed id of no object at all
SPOOF_HEADERS = ("X-Org-Id", "X-Clinic-Id", "X-Tenant-Id")
PARALLEL = 8


@dataclass
class Cell:
    service: str
    method: str
    rule: str
    access: Access
    role: str
    tenancy: str              # own, other_clinic, other_org, nowhere, spoofed
    expected: tuple[int, ...]


@pytest.fixture(scope="module")
def routes(security_platform) -> list[tuple[str, str, str]]:
    return served_routes(security_platform.envs["intake-api"])


def test_every_served_route_has_an_access_rule(routes):
    missing = [f"{s} {m} {r}" for s, m, r in routes if access_for(s, m, r) is None]
    assert not missing, f"routes without a rule in tests/security/access_rules.py: {missing}"
    assert len(routes) > 60, routes  # the url_maps were read, not an empty list


def test_isolation_matrix(world: World, routes):
    cells = [cell for service, method, rule in routes if not (a := access_for(service, method, rule)).public
             for cell in _cells(service, method, rule, a)]
    with ThreadPoolExecutor(PARALLEL) as pool:
        failures = [f for f in pool.map(lambda c: _run_cell(world, c), cells) if f]
    outcome = Counter(_kind(c) for c in cells)
    counts = (f"isolation matrix: {len(cells)} cells on {len({(c.service, c.method, c.rule) for c in cells})} "
              f"protected routes × {len(ROLES)} roles; " + ", ".join(f"{k} {v}" for k, v in sorted(outcome.items()))
              + f"; failures {len(failures)}")
    report(counts)
    assert not failures, counts + "\n" + "\n".join(failures[:40])


def test_bad_tokens_get_401_on_every_protected_route(world: World, routes):
    protected = [(s, m, r, a) for s, m, r in routes if not (a := access_for(s, m, r)).public]
    failures, count = [], Counter()
    with ThreadPoolExecutor(PARALLEL) as pool:
        for problem, kind in pool.map(lambda args: _try_bad_token(world, *args),
                                      [(route, token) for route in protected for token in BAD_TOKENS]):
            count[kind] += 1
            if problem:
                failures.append(problem)
    counts = (f"bad tokens: {sum(count.values())} requests on {len(protected)} protected routes × "
              f"{len(BAD_TOKENS)} tokens; " + ", ".join(f"{k} {v}" for k, v in sorted(count.items()))
              + f"; failures {len(failures)}")
    report(counts)
    assert not failures, counts + "\n" + "\n".join(failures[:40])


# --- building cells -------------------------------------------------------------------------------------

def _cells(service: str, method: str, rule: str, access: Access) -> list[Cell]:
    """A role that may use the route meets every tenant; one that may not gets 403 whatever it points at,
    so it is tried on its own clinic's object, plainly and with spoofed tenant fields (which must not turn
    the 403 into a 422 describing the input)."""
    tenancies = ("own", "other_clinic", "other_org", "nowhere", "spoofed") if access.target else ("own", "spoofed")
    return [Cell(service, method, rule, access, role, tenancy, _expected(access, role, tenancy))
            for role in ROLES for tenancy in tenancies
            if role in access.roles or tenancy in ("own", "spoofed")]


def _expected(access: Access, role: str, tenancy: str) -> tuple[int, ...]:
    if role not in access.roles:
        return (403,)
    # Admins see every clinic of their organisation; everyone else only their own.
    if tenancy in ("own", "spoofed") or (tenancy == "other_clinic" and role == "admin"):
        allowed = access.ok_by_role.get(role, access.ok)
        # Strict request schemas may refuse a spoofed field outright (422 naming it): that widens nothing.
        return (*allowed, 422) if tenancy == "spoofed" else allowed
    return access.foreign


def _kind(cell: Cell) -> str:
    if cell.role not in cell.access.roles:
        return "403 role"
    if cell.tenancy == "spoofed":
        return "spoofed, not widened"
    if cell.tenancy == "own" or (cell.tenancy == "other_clinic" and cell.role == "admin"):
        return "allowed"
    if cell.expected == (404,):
        return "404 other tenant or nowhere"
    return f"{'/'.join(map(str, cell.expected))} other tenant's id refused or filtered out"


def _target_clinic(world: World, tenancy: str) -> Clinic:
    return {"other_clinic": world.other_clinic, "other_org": world.other_org}.get(tenancy, world.own)


def _target(world: World, cell: Cell) -> dict:
    clinic = _target_clinic(world, cell.tenancy)
    kind = cell.access.target
    if kind is None:
        return {}
    if cell.tenancy == "nowhere":
        return {"id": NOWHERE}
    succeeds = set(cell.expected) & set(cell.access.ok) and cell.role in cell.access.roles
    if cell.access.consumes and succeeds:
        return clinic.take_referral()
    if kind == "notification":
        return {"id": clinic.notifications.get(cell.role, clinic.notifications["counselor"])}
    return {"id": clinic.objects[kind]}


def request_for(world: World, cell: Cell, headers: dict[str, str]) -> requests.Response:
    access, target = cell.access, _target(world, cell)
    body_clinic = _target_clinic(world, cell.tenancy)
    path = re.sub(r"<[^>]+>", lambda _: target["id"], cell.rule)
    params = {access.param: target["id"]} if access.where == "query" else {}
    body = access.body(body_clinic, target) if access.body else None
    if access.where in ("json", "form") and access.param:
        body[access.param] = [target["id"]] if isinstance(body[access.param], list) else target["id"]
    if cell.tenancy == "spoofed":
        other = world.other_org
        spoof = {"org_id": other.org_id, "clinic_id": other.id}
        headers = {**headers, **{h: other.org_id if "Org" in h else other.id for h in SPOOF_HEADERS}}
        params |= {k: v for k, v in spoof.items() if k != access.param}
        if body is not None:
            body |= {k: v for k, v in spoof.items() if k != access.param}
    send = {"json": body} if not access.page and cell.method in ("POST", "PUT", "PATCH") else {"data": body}
    url = world.urls[cell.service] + path
    return requests.request(cell.method, url, params=params, headers=headers, allow_redirects=False, timeout=30,
                            **send)


# --- running cells --------------------------------------------------------------------------------------

def _run_cell(world: World, cell: Cell) -> str | None:
    """None if the cell answered as expected, else what went wrong."""
    identity = world.own.identity(cell.role)
    where = f"{cell.service} {cell.method} {cell.rule} as {cell.role} [{cell.tenancy}]"
    started = time.monotonic()
    try:
        headers = world.own.headers(cell.role)
        if cell.access.ends_session:
            headers = bearer(replace(identity, staff_id=f"signout-{uuid.uuid4().hex[:12]}"))
        response = request_for(world, cell, headers)
    except requests.Timeout:
        return f"{where}: no answer within {time.monotonic() - started:.0f} s"
    if response.status_code not in cell.expected:
        return f"{where}: {response.status_code}, expected {cell.expected}: {response.text[:200]}"
    leaked = set() if cell.access.echoes_requested_ids else _leaked_ids(world, identity, response)
    if leaked:
        return f"{where}: answer carries ids outside the caller's scope: {sorted(leaked)[:5]}"
    if response.status_code < 300 and response.content and "json" in response.headers.get("Content-Type", ""):
        orgs = set(_values_of(response.json(), "org_id"))
        if orgs - {identity.org_id}:
            return f"{where}: answer names organisations {orgs}"
    if not cell.access.page and response.status_code >= 400 and "json" not in response.headers.get("Content-Type", ""):
        return f"{where}: error {response.status_code} is not JSON: {response.text[:120]}"
    return None


def _leaked_ids(world: World, identity, response: requests.Response) -> set[str]:
    text = response.text + response.headers.get("Location", "")
    return {i for i in world.foreign_ids(identity) if i in text}


def _values_of(document, key: str):
    if isinstance(document, dict):
        for k, v in document.items():
            if k == key and isinstance(v, str):
                yield v
            yield from _values_of(v, key)
    elif isinstance(document, list):
        for item in document:
            yield from _values_of(item, key)


# --- bad tokens -----------------------------------------------------------------------------------------

def _expired(identity) -> str:
    long_ago = datetime.now(timezone.utc) - timedelta(minutes=DEVELOPMENT.session_idle_minutes + 1)
    return issue_token(DEVELOPMENT, identity, now=long_ago)


def _tampered(identity) -> str:
    """The caller's real token with its claims changed (role admin), the signature left as it was."""
    header, _, signature = issue_token(DEVELOPMENT, identity).split(".")
    claims = jwt.decode(issue_token(DEVELOPMENT, identity), options={"verify_signature": False}) | {"role": "admin"}
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    return f"{header}.{payload}.{signature}"


def _unsigned(identity) -> str:
    claims = jwt.decode(issue_token(DEVELOPMENT, identity), options={"verify_signature": False})
    return jwt.encode({**claims, "role": "admin"}, key=None, algorithm="none")


BAD_TOKENS = {"missing": None, "expired": _expired, "tampered": _tampered, "alg=none": _unsigned}


def _try_bad_token(world: World, route: tuple, token_kind: str) -> tuple[str | None, str]:
    service, method, rule, access = route
    role = access.roles[0]
    make = BAD_TOKENS[token_kind]
    headers = {"Authorization": f"Bearer {make(world.own.identity(role))}"} if make else {}
    # The own clinic's object and a request that would succeed with a valid token (nothing is consumed:
    # an unauthenticated request must change nothing).
    cell = Cell(service, method, rule, replace(access, consumes=False), role, "own", (401,))
    response = request_for(world, cell, headers)
    where = f"{service} {method} {rule} with a {token_kind} token"
    if access.page:
        sent_to_signin = response.status_code == 302 and "/signin" in response.headers.get("Location", "")
        return (None if sent_to_signin else f"{where}: {response.status_code}, expected a redirect to sign-in",
                "302 to sign-in")
    if response.status_code != 401 or "json" not in response.headers.get("Content-Type", ""):
        return f"{where}: {response.status_code} {response.text[:120]}", "401"
    return None, "401"
