"""Who may use each route of each service, and what a request to it looks like.

Every (service, rule, method) the services' Flask url_maps serve must have an entry here: the isolation matrix
fails on a route without one, so a route added later cannot go untested. An entry names the roles allowed
(none: public), the object whose tenant the matrix varies and where it travels (path, query, JSON body or
form), a valid request for a target clinic, and the answers that count as success.
"""
from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Callable

from tests.security.tenants import HIGH_ANSWERS, PASSWORD, ROLES, Clinic

ALL = ROLES
STAFF = ("admin", "supervisor", "counselor")          # scoring: front desk sees no scores
OVERSEERS = ("admin", "supervisor")
CLIENT_WRITERS = ("admin", "supervisor", "front_desk")
NOT_FOUND = (404,)

# body(target clinic, target object) -> JSON body or form fields of a request that should succeed
Body = Callable[[Clinic, dict], dict]


@dataclass(frozen=True)
class Access:
    roles: tuple[str, ...]
    target: str | None = None            # kind of the object whose tenant varies (see Clinic.objects)
    where: str = "path"                  # path, query, json or form
    param: str | None = None             # the query/body field that carries the target
    body: Body | None = None
    ok: tuple[int, ...] = (200,)
    ok_by_role: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # The answer when the target is another tenant's or does not exist. 404 for an object in the path;
    # a list filtered by another tenant's id answers 200 with nothing in it.
    foreign: tuple[int, ...] = NOT_FOUND
    page: bool = False                   # HTML: a caller without a valid session is sent to sign-in
    consumes: bool = False               # success changes the target for good: each cell takes a fresh one
    # The audit trail names the ids the organisation's own staff asked for, other tenants' included when
    # they probed them: those are the organisation's records, not another tenant's data.
    echoes_requested_ids: bool = False
    # Success ends the caller's sessions everywhere (sign-out): each cell signs out a throwaway member of the
    # same role and clinics instead of the member whose tokens the other cells use.
    ends_session: bool = False
    why_public: str = ""

    @property
    def public(self) -> bool:
        return not self.roles


def public(why: str) -> Access:
    return Access(roles=(), why_public=why)


# A session of its own for each cell that rates one (one rating per session; sessions go up to 1000).
SESSION_NUMBERS = itertools.count(100)


def unique_email(_clinic: Clinic, _target: dict) -> str:
    return f"new.{uuid.uuid4().hex[:10]}@example.test"


SHARED = {
    ("GET", "/healthz"): public("liveness probe, no data"),
    ("GET", "/readyz"): public("readiness probe: check names and states only"),
    ("GET", "/metrics"): public("Prometheus counters without ids; the proxy keeps it off the internet"),
    ("GET", "/openapi.json"): public("the API description"),
    ("GET", "/static/<path:filename>"): public("stylesheets"),
    ("GET", "/static/rapport/<path:filename>"): public("stylesheets"),
    ("GET", "/api/audit"): Access(("admin",), echoes_requested_ids=True),
    ("POST", "/api/audit/exports"): Access(("admin",), where="json", ok=(204,), body=lambda c, t: {"rows": 0}),
}

RULES: dict[str, dict[tuple[str, str], Access]] = {
    "intake": {
        ("POST", "/api/auth/token"): public("sign-in: exchanges a password for a token (throttled)"),
        ("GET", "/signin"): public("sign-in form"),
        ("POST", "/signin"): public("sign-in form post (throttled)"),
        ("POST", "/signout"): Access(ALL, ok=(303,), page=True, ends_session=True),
        ("POST", "/api/auth/signout"): Access(ALL, ok=(204,), ends_session=True),
        ("GET", "/f/<token>"): public("client's feedback page: the signed single-use link is the key"),
        ("POST", "/f/<token>"): public("client's feedback answer: the signed single-use link is the key"),
        ("GET", "/x/<token>"): public("client's exit interview: the signed single-use link is the key"),
        ("POST", "/x/<token>"): public("client's exit interview answer: the signed single-use link is the key"),
        ("GET", "/api/auth/me"): Access(ALL),
        ("GET", "/api/clinics"): Access(ALL),
        ("POST", "/api/clinics"): Access(("admin",), where="json", body=lambda c, t: {"name": "Extra clinic"},
                                         ok=(201,)),
        ("PATCH", "/api/clinics/<clinic_id>"): Access(("admin",), "clinic",
                                                      body=lambda c, t: {"name": f"Clinic {c.position}"}),
        ("GET", "/api/staff"): Access(OVERSEERS),
        # Accounts are an administrator's: a supervisor may edit a counselor's name and directory entry only.
        ("POST", "/api/staff"): Access(("admin",), "clinic", "json", "clinic_ids", ok=(201,), foreign=(422,), body=lambda c, t: {
            "email": unique_email(c, t), "display_name": "New counselor", "password": PASSWORD,
            "role": "counselor", "clinic_ids": [t["id"]]}),
        ("GET", "/api/staff/<staff_id>"): Access(OVERSEERS, "staff"),
        ("PATCH", "/api/staff/<staff_id>"): Access(OVERSEERS, "staff", body=lambda c, t: {"display_name": "Counselor"}),
        ("GET", "/api/counselors"): Access(ALL, "clinic", "query", "clinic_id", foreign=(200,)),
        ("GET", "/api/counselors/<counselor_id>"): Access(ALL, "counselor"),
        ("PATCH", "/api/counselors/<counselor_id>"): Access(OVERSEERS, "counselor",
                                                            body=lambda c, t: {"weekly_capacity": 60}),
        ("GET", "/api/clients"): Access(ALL, "clinic", "query", "clinic_id", foreign=(200,)),
        ("POST", "/api/clients"): Access(CLIENT_WRITERS, "clinic", "json", "clinic_id", ok=(201,), foreign=(422,),
                                         body=lambda c, t: {"clinic_id": t["id"], "first_name": "Matrix",
                                                            "last_name": "Client", "concerns": ["anxiety"]}),
        ("GET", "/api/clients/<client_id>"): Access(ALL, "client"),
        ("POST", "/api/clients/<client_id>/assignment"): Access(
            CLIENT_WRITERS, "client", body=lambda c, t: {"counselor_id": c.staff["counselor"]}),
        ("GET", "/api/clients/<client_id>/sessions"): Access(ALL, "client"),
        ("POST", "/api/clients/<client_id>/sessions"): Access(ALL, "client", ok=(201,),
                                                              body=lambda c, t: {"held_on": "2026-03-09"}),
        ("GET", "/api/clients/<client_id>/feedback-requests"): Access(ALL, "client"),
        # The seeded session is rated (no second feedback link) and its exit interview answered: asked again, with a
        # reason.
        ("POST", "/api/clients/<client_id>/feedback-requests"): Access(
            ALL, "client", ok=(201,), body=lambda c, t: {"session_id": c.objects["session"], "kind": "exit_interview",
                                                         "reissue_reason": "client_asked_to_answer_again"}),
        ("GET", "/api/clients/<client_id>/exit-interviews"): Access(ALL, "client"),
        ("GET", "/api/feedback"): Access(ALL, "client", "query", "client_id", foreign=(200,)),
        # One rating per session: each cell rates a session of its own.
        ("POST", "/api/feedback"): Access(ALL, "client", "json", "client_id", ok=(201,), body=lambda c, t: {
            "client_id": t["id"], "session_number": next(SESSION_NUMBERS), "answers": HIGH_ANSWERS}),
        ("GET", "/api/feedback/<feedback_id>"): Access(ALL, "feedback"),
        # Names for the ids a page shows: another tenant's client is simply absent from the answer.
        ("GET", "/api/people"): Access(ALL, "client", "query", "client", foreign=(200,)),
        # pages
        ("GET", "/"): Access(ALL, page=True),
        ("GET", "/counselors"): Access(ALL, page=True),
        ("GET", "/clients/new"): Access(CLIENT_WRITERS, page=True),
        ("POST", "/clients/new"): Access(CLIENT_WRITERS, "clinic", "form", "clinic_id", ok=(303,), foreign=(422,),
                                         page=True, body=lambda c, t: {"clinic_id": t["id"], "first_name": "Form",
                                                                       "last_name": "Client", "concerns": "anxiety"}),
        ("GET", "/clients/<client_id>"): Access(ALL, "client", page=True),
        ("POST", "/clients/<client_id>/assignment"): Access(CLIENT_WRITERS, "client", ok=(303,), page=True,
                                                            body=lambda c, t: {"counselor_id": c.staff["counselor"]}),
        ("POST", "/clients/<client_id>/sessions"): Access(ALL, "client", ok=(303,), page=True,
                                                          body=lambda c, t: {"held_on": "2026-03-16"}),
        ("POST", "/clients/<client_id>/links"): Access(ALL, "client", ok=(303,), page=True, body=lambda c, t: {
            "session_id": c.objects["session"], "kind": "exit_interview",
            "reissue_reason": "client_asked_to_answer_again"}),
        ("POST", "/clients/<client_id>/consent"): Access(CLIENT_WRITERS, "client", ok=(303,), page=True,
                                                         body=lambda c, t: {"consent_email": "yes"}),
        ("GET", "/links/<request_id>"): Access(ALL, "link", page=True),
        # The seeded client gave no consent: a send is refused (422) after the caller's access is checked.
        ("POST", "/links/<request_id>/send"): Access(ALL, "link", ok=(422,), page=True,
                                                     body=lambda c, t: {"channel": "email"}),
        # administration pages (admin_pages.py): the same commands as the API, so the same roles
        ("GET", "/admin"): Access(OVERSEERS, page=True),
        ("GET", "/staff"): Access(OVERSEERS, page=True),
        ("GET", "/staff/new"): Access(("admin",), page=True),
        ("POST", "/staff/new"): Access(("admin",), "clinic", "form", "clinic_ids", ok=(303,), foreign=(422,), page=True,
                                       body=lambda c, t: {"email": unique_email(c, t), "display_name": "Form counselor",
                                                          "password": PASSWORD, "role": "counselor",
                                                          "clinic_ids": [t["id"]]}),
        ("GET", "/staff/<staff_id>"): Access(OVERSEERS, "staff", page=True),
        # The account as it is (a counselor of the body's clinic) and a new name: a supervisor's form sends the
        # name only; nothing that ends the member's sessions, which other cells use.
        ("POST", "/staff/<staff_id>"): Access(OVERSEERS, "staff", ok=(303,), page=True, body=lambda c, t: {
            "display_name": "Counselor", "role": "counselor", "clinic_ids": c.id}),
        ("POST", "/staff/<staff_id>/active"): Access(("admin",), "staff", ok=(303,), page=True,
                                                     body=lambda c, t: {"active": "true"}),
        # A new password would end the sessions of the member other cells act as: the confirmation differs, so
        # an allowed caller meets the form's refusal (422) after the role and tenancy checks.
        ("POST", "/staff/<staff_id>/password"): Access(("admin",), "staff", ok=(422,), page=True, body=lambda c, t: {
            "password": PASSWORD, "confirm_password": "not the same"}),
        ("GET", "/clinics"): Access(("admin",), page=True),
        ("POST", "/clinics"): Access(("admin",), where="form", ok=(303,), page=True,
                                     body=lambda c, t: {"name": "Extra clinic", "instrument_id": "rapport-short"}),
        ("POST", "/clinics/<clinic_id>"): Access(("admin",), "clinic", ok=(303,), page=True,
                                                 body=lambda c, t: {"name": f"Clinic {c.position}"}),
        ("GET", "/audit"): Access(("admin",), page=True),
    },
    "scoring": {
        ("GET", "/api/instruments"): public("the shipped questionnaires' ids and titles, no client data"),
        ("GET", "/api/instruments/<instrument_id>"): public("a shipped questionnaire (FHIR), no client data"),
        ("GET", "/api/scores"): Access(STAFF, "client", "query", "client_id", foreign=(200,)),
        ("GET", "/api/scores/<score_id>"): Access(STAFF, "score"),
        ("GET", "/api/trajectories"): Access(STAFF, "client", "query", "client_id"),
        ("GET", "/api/alerts"): Access(STAFF, "client", "query", "client_id", foreign=(200,)),
        ("GET", "/api/alerts/<alert_id>"): Access(STAFF, "alert"),
        ("GET", "/api/clinics/<clinic_id>/summary"): Access(OVERSEERS, "clinic"),
        ("GET", "/api/clinics/<clinic_id>/alert-settings"): Access(OVERSEERS, "clinic"),
        ("PUT", "/api/clinics/<clinic_id>/alert-settings"): Access(("admin",), "clinic",
                                                                   body=lambda c, t: {"rules": {}}),
        ("POST", "/api/clinics/<clinic_id>/alert-settings/preview"): Access(OVERSEERS, "clinic",
                                                                            body=lambda c, t: {}),
        ("GET", "/api/clients/<client_id>/questionnaire-responses"): Access(STAFF, "client"),
        ("GET", "/alliance"): Access(STAFF, page=True),
        ("GET", "/alliance/trajectory"): Access(STAFF, "client", "query", "client_id", page=True),
        ("GET", "/alliance/settings"): Access(OVERSEERS, "clinic", "query", "clinic_id", page=True),
        # Supervisors preview (as in the API); saving is an admin's (tests/integration/test_alert_settings_page.py).
        ("POST", "/alliance/settings"): Access(OVERSEERS, "clinic", "form", "clinic_id", page=True,
                                               body=lambda c, t: {"clinic_id": c.id, "budget": "1", "action": "preview"}),
        # An image cannot follow a sign-in redirect: without a session it answers 401.
        ("GET", "/charts/trajectory.svg"): Access(STAFF, "client", "query", "client_id"),
    },
    "referral": {
        ("GET", "/api/intakes/<intake_id>"): Access(ALL, "intake"),
        ("GET", "/api/counselors"): Access(ALL),
        # Counts of how the clinic's accepted referrals worked out, as scoring's clinic summary: its overseers.
        ("GET", "/api/clinics/<clinic_id>/referral-outcomes"): Access(OVERSEERS, "clinic"),
        ("GET", "/api/referrals"): Access(ALL, "client", "query", "client_id", foreign=(200,)),
        ("GET", "/api/referrals/<referral_id>"): Access(ALL, "referral"),
        ("POST", "/api/referrals/<referral_id>/accept"): Access(
            OVERSEERS, "referral", consumes=True, body=lambda c, t: {"counselor_id": t.get("candidate", "x")}),
        ("POST", "/api/referrals/<referral_id>/decline"): Access(
            OVERSEERS, "referral", consumes=True, body=lambda c, t: {"reason": "other", "note": "matrix"}),
        ("GET", "/referrals"): Access(ALL, page=True),
        ("GET", "/referrals/<referral_id>"): Access(ALL, "referral", page=True),
        ("POST", "/referrals/<referral_id>/accept"): Access(
            OVERSEERS, "referral", ok=(303,), page=True, consumes=True,
            body=lambda c, t: {"counselor_id": t.get("candidate", "x")}),
        ("POST", "/referrals/<referral_id>/decline"): Access(
            OVERSEERS, "referral", ok=(303,), page=True, consumes=True,
            body=lambda c, t: {"reason": "other", "note": "matrix"}),
    },
    "notify": {
        ("GET", "/api/inbox"): Access(ALL),
        ("GET", "/api/inbox/unread-count"): Access(ALL),
        ("GET", "/api/inbox/<notification_id>"): Access(ALL, "notification"),
        # Only the recipient acknowledges: an admin may read a counselor's notification but not answer it.
        ("POST", "/api/inbox/<notification_id>/ack"): Access(ALL, "notification", ok_by_role={"admin": (403,)}),
        ("GET", "/api/preferences"): Access(ALL),
        ("PUT", "/api/preferences"): Access(ALL, where="json", body=lambda c, t: {"daily_digest": False}),
        ("GET", "/api/supervision"): Access(OVERSEERS, "clinic", "query", "clinic_id"),
        ("GET", "/inbox"): Access(ALL, page=True),
        ("GET", "/inbox/<notification_id>"): Access(ALL, "notification", page=True),
        ("POST", "/inbox/<notification_id>/ack"): Access(ALL, "notification", ok=(303,), page=True,
                                                         ok_by_role={"admin": (403,)}),
        # Bulk acknowledgement: every ticked id must be the caller's own as recipient, or nothing is acknowledged
        # (404 naming none); an admin may read a counselor's notifications but is the recipient of none.
        ("POST", "/inbox/acknowledge"): Access(ALL, "notification", "form", "notification_id", ok=(303,),
                                               ok_by_role={"admin": (404,)}, page=True,
                                               body=lambda c, t: {"notification_id": t["id"]}),
        ("GET", "/supervision"): Access(OVERSEERS, page=True),
        ("GET", "/preferences"): Access(ALL, page=True),
        ("POST", "/preferences"): Access(ALL, where="form", ok=(200,), page=True, body=lambda c, t: {"timezone": "UTC"}),
    },
}


def access_for(service: str, method: str, rule: str) -> Access | None:
    return RULES[service].get((method, rule)) or SHARED.get((method, rule))
