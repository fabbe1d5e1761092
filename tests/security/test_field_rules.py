"""Field-level rules on the running platform: the front desk never sees clients' free-text comments (exit
interviews) or supervisors' decision notes, in any answer that could carry them; a counselor sees only their
own clients, a supervisor and an admin every client of their clinics. Each rule is checked against a reader
who may see the field, so a test that finds nothing has looked in the right place."""
from __future__ import annotations

import uuid

import requests

from tests.security.summary import report
from tests.security.tenants import Clinic, World, call


def test_free_text_never_reaches_the_front_desk(world: World):
    urls, clinic = world.urls, world.own
    comment, note = f"exit comment {uuid.uuid4().hex}", f"decision note {uuid.uuid4().hex}"
    client_id = clinic.objects["client"]
    _answer_exit_interview(urls["intake"], clinic, client_id, comment)
    referral = clinic.take_referral()
    call("POST", f"{urls['referral']}/api/referrals/{referral['id']}/decline", 200,
         headers=clinic.headers("supervisor"), json={"reason": "other", "note": note})

    # Every answer that could carry the comment or the note, JSON and HTML.
    carriers = [("intake", f"/api/clients/{client_id}/exit-interviews", comment),
                ("intake", f"/clients/{client_id}", comment),
                ("referral", f"/api/referrals/{referral['id']}", note),
                ("referral", "/api/referrals?status=declined", note),
                ("referral", "/referrals", note)]
    checked = 0
    for service, path, text in carriers:
        desk = requests.get(urls[service] + path, headers=clinic.headers("front_desk"), timeout=15)
        assert desk.status_code == 200, f"{path}: {desk.status_code}"
        assert text not in desk.text, f"the front desk sees {text!r} in {path}"
        checked += 1
    for service, path, text in carriers[:3]:  # the open-referrals page never shows decided ones to anyone
        supervisor = requests.get(urls[service] + path, headers=clinic.headers("supervisor"), timeout=15)
        assert text in supervisor.text, f"a supervisor should read {text!r} in {path}"
    exit_interviews = call("GET", f"{urls['intake']}/api/clients/{client_id}/exit-interviews", 200,
                           headers=clinic.headers("front_desk"))
    assert exit_interviews and all(x["comment"] is None for x in exit_interviews)
    report(f"field rules: front desk kept from free text in {checked} answers")


def test_counselors_see_only_their_own_clients(world: World):
    urls, clinic = world.urls, world.own
    own, colleagues = clinic.objects["client"], clinic.colleague_client
    colleague_intake = call("GET", f"{urls['intake']}/api/clients/{colleagues}", 200,
                            headers=clinic.headers("admin"))["intake_id"]
    for role, sees_colleagues in (("counselor", False), ("supervisor", True), ("admin", True)):
        headers = clinic.headers(role)
        listed = {c["id"] for c in call("GET", f"{urls['intake']}/api/clients", 200, headers=headers,
                                        params={"page_size": 100})}
        assert own in listed and (colleagues in listed) == sees_colleagues, role
        home = requests.get(f"{urls['intake']}/", headers=headers, timeout=15).text
        assert (colleagues in home) == sees_colleagues, role
        for service, path in (("intake", f"/api/clients/{colleagues}"), ("intake", f"/clients/{colleagues}"),
                              ("intake", f"/api/clients/{colleagues}/sessions"),
                              ("referral", f"/api/intakes/{colleague_intake}")):
            status = requests.get(urls[service] + path, headers=headers, timeout=15).status_code
            assert status == (200 if sees_colleagues else 404), f"{role} {path}: {status}"
        referrals = call("GET", f"{urls['referral']}/api/referrals", 200, headers=headers,
                         params={"client_id": colleagues})
        assert bool(referrals) == sees_colleagues, role
    report("field rules: counselor 404 on a colleague's client in intake and referral; supervisor and admin 200")


def _answer_exit_interview(intake: str, clinic: Clinic, client_id: str, comment: str) -> None:
    desk = clinic.headers("front_desk")
    link = call("POST", f"{intake}/api/clients/{client_id}/feedback-requests", 201, headers=desk,
                json={"session_id": clinic.objects["session"], "kind": "exit_interview"})
    answered = requests.post(link["url"], timeout=15, data={
        "comfortable": "4", "style_fit": "4", "confident_progress": "4", "outside_expertise": "no",
        "wants_someone_else": "no", "comment": comment})
    assert answered.status_code == 200, answered.text[:300]
