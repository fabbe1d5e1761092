"""The administration pages over the real database: staff (add, edit roles and clinics, directory entry,
deactivate, new password), clinics, the audit page and its API (time range, exports)."""
from __future__ import annotations

from datetime import datetime, timezone

from services.common.audit import AuditRecord
from services.intake.adapters.models import Clinic, Staff
from tests.integration.test_intake_api import PASSWORD, org  # noqa: F401  (the `org` fixture)
from tests.integration.test_intake_pages import post_form, signed_in

NEW_PASSWORD = "a brand new passphrase"


def admin(org):
    return signed_in(org, f"admin@{org.id}.test")[0]


def counselor_email(org):
    return f"counselor-{org.north}@{org.id}.test"


def add_counselor(browser, org, **extra):
    return post_form(browser, "/staff/new", {
        "email": f"new.counselor@{org.id}.test", "password": PASSWORD, "display_name": "Noor Newcomer",
        "role": "counselor", "clinic_ids": [org.north], "specialties": ["anxiety", "ocd"], "languages": "en, AR",
        "modalities": ["telehealth"], "weekly_capacity": "15", "accepting_new_clients": "yes", **extra})


def test_the_admin_home_links_every_admin_page_and_the_top_bar_links_it(org):
    page = admin(org).get("/admin").text
    for link in ('href="/staff"', 'href="/staff/new"', 'href="/clinics"', 'href="/audit"',
                 f'/alliance/settings?clinic_id={org.north}'):
        assert link in page, link
    assert '/admin" aria-current="page">Admin</a>' in page


def test_an_admin_adds_a_counselor_with_a_directory_entry(org):
    browser = admin(org)
    response = add_counselor(browser, org)
    assert response.status_code == 303, response.text
    member = Staff.objects.get(org_id=org.id, email=f"new.counselor@{org.id}.test")
    assert response.headers["Location"] == f"/staff/{member.id}?done=added"
    assert (member.role, member.clinic_ids, member.display_name) == ("counselor", [org.north], "Noor Newcomer")
    assert member.counselor.languages == ["en", "ar"] and member.counselor.weekly_capacity == 15
    assert member.counselor.specialties == ["anxiety", "ocd"] and member.counselor.accepting_new_clients

    listed = browser.get("/staff").text
    assert "Noor Newcomer" in listed and f"new.counselor@{org.id}.test" in listed
    assert signed_in(org, f"new.counselor@{org.id}.test")[1].status_code == 303


def test_the_new_staff_form_shows_each_error_next_to_its_field(org):
    browser = admin(org)
    before = Staff.objects(org_id=org.id).count()
    response = post_form(browser, "/staff/new", {"email": "not-an-address", "password": "short",
                                                 "display_name": "", "role": "counselor", "languages": "english"})
    assert response.status_code == 422
    for field in ("email", "password", "display_name", "clinic_ids", "languages"):
        assert f'id="{field}-error"' in response.text, field
    assert 'value="not-an-address"' in response.text
    assert Staff.objects(org_id=org.id).count() == before

    taken = add_counselor(browser, org, email=counselor_email(org))
    assert taken.status_code == 422 and "has this e-mail already" in taken.text


def test_an_admin_edits_roles_clinics_and_the_directory_entry(org):
    browser = admin(org)
    page = browser.get(f"/staff/{org.counselor_north}").text
    assert 'value="en, es"' in page and 'name="specialties" value="trauma" checked' in page

    response = post_form(browser, f"/staff/{org.counselor_north}", {
        "display_name": "Counselor Both", "role": "counselor", "clinic_ids": [org.north, org.south],
        "specialties": ["grief"], "languages": "en", "modalities": ["in_person", "telehealth"],
        "weekly_capacity": "20", "directory": "shown"}, follow_redirects=True)
    assert "Changes saved." in response.text
    member = Staff.objects.get(id=org.counselor_north)
    assert member.clinic_ids == [org.north, org.south] and member.display_name == "Counselor Both"
    assert member.counselor.specialties == ["grief"] and member.counselor.modalities == ["in_person", "telehealth"]
    assert member.counselor.accepting_new_clients is False  # the box was not ticked

    # A form without the directory entry's fields (the API's own shape, a script) leaves the entry as it is.
    post_form(browser, f"/staff/{org.counselor_north}", {"display_name": "Counselor B", "role": "counselor",
                                                          "clinic_ids": [org.north, org.south]})
    assert Staff.objects.get(id=org.counselor_north).counselor.specialties == ["grief"]

    refused = post_form(browser, f"/staff/{org.counselor_north}", {
        "display_name": "Counselor Both", "role": "counselor", "clinic_ids": []})
    assert refused.status_code == 422 and 'id="clinic_ids-error"' in refused.text
    assert Staff.objects.get(id=org.counselor_north).clinic_ids == [org.north, org.south]


def test_a_supervisor_edits_a_counselors_directory_entry_only(org, unique):
    post_form(admin(org), "/staff/new", {"email": f"sup@{unique}.test", "password": PASSWORD,
                                         "display_name": "Sam Supervisor", "role": "supervisor",
                                         "clinic_ids": [org.north]})
    browser, _ = signed_in(org, f"sup@{unique}.test")
    assert browser.get("/staff/new").status_code == 403
    assert browser.get("/clinics").status_code == 403
    assert browser.get("/audit").status_code == 403
    listed = browser.get("/staff").text
    assert "counselor " + org.north in listed and "counselor " + org.south not in listed
    assert browser.get(f"/staff/{org.counselor_south}").status_code == 404

    page = browser.get(f"/staff/{org.counselor_north}").text
    assert "<fieldset disabled>" in page and "Set a new password" not in page
    response = post_form(browser, f"/staff/{org.counselor_north}", {
        "display_name": "Renamed", "role": "admin", "clinic_ids": [org.north, org.south], "languages": "fr",
        "directory": "shown"})
    assert response.status_code == 303
    member = Staff.objects.get(id=org.counselor_north)
    assert (member.display_name, member.role, member.clinic_ids) == ("Renamed", "counselor", [org.north])
    assert member.counselor.languages == ["fr"]
    assert post_form(browser, f"/staff/{org.counselor_north}/active", {"active": "false"}).status_code == 403


def test_deactivating_ends_the_members_sessions_and_reactivating_lets_them_back(org):
    counselor, _ = signed_in(org, counselor_email(org))
    browser = admin(org)
    done = post_form(browser, f"/staff/{org.counselor_north}/active", {"active": "false"}, follow_redirects=True)
    assert "Deactivated" in done.text and "Reactivate counselor" in done.text
    assert Staff.objects.get(id=org.counselor_north).active is False
    assert counselor.get("/").status_code == 302
    assert "no (deactivated)" in browser.get("/staff").text

    post_form(browser, f"/staff/{org.counselor_north}/active", {"active": "true"})
    assert Staff.objects.get(id=org.counselor_north).active is True
    assert signed_in(org, counselor_email(org))[1].status_code == 303


def test_a_new_password_ends_the_old_sessions_and_replaces_the_old_password(org):
    counselor, _ = signed_in(org, counselor_email(org))
    assert counselor.get("/").status_code == 200
    browser = admin(org)

    mismatch = post_form(browser, f"/staff/{org.counselor_north}/password",
                         {"password": NEW_PASSWORD, "confirm_password": "something else"})
    assert mismatch.status_code == 422 and 'id="confirm_password-error"' in mismatch.text
    short = post_form(browser, f"/staff/{org.counselor_north}/password", {"password": "x", "confirm_password": "x"})
    assert short.status_code == 422 and 'id="password-error"' in short.text
    assert counselor.get("/").status_code == 200  # nothing changed yet

    done = post_form(browser, f"/staff/{org.counselor_north}/password",
                     {"password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}, follow_redirects=True)
    assert "Password set" in done.text
    assert counselor.get("/").status_code == 302  # the old session is over
    old = org.app.test_client().post("/signin", data={"email": counselor_email(org), "password": PASSWORD})
    assert old.status_code == 401
    new = org.app.test_client().post("/signin", data={"email": counselor_email(org), "password": NEW_PASSWORD})
    assert new.status_code == 303


def test_an_admin_adds_and_renames_clinics(org):
    browser = admin(org)
    page = browser.get("/clinics").text
    assert "North" in page and "South" in page and "Rapport short alliance check" in page

    added = post_form(browser, "/clinics", {"name": "East Side", "instrument_id": "wai-sr"}, follow_redirects=True)
    assert "Clinic added." in added.text and "East Side" in added.text
    east = Clinic.objects.get(org_id=org.id, name="East Side")
    assert east.instrument_id == "wai-sr"

    empty = post_form(browser, "/clinics", {"name": "", "instrument_id": "wai-sr"})
    assert empty.status_code == 422 and 'id="name-error"' in empty.text

    post_form(browser, f"/clinics/{east.id}", {"name": "East", "instrument_id": "rapport-short"})
    east.reload()
    assert (east.name, east.instrument_id) == ("East", "rapport-short")
    unknown = post_form(browser, f"/clinics/{east.id}", {"name": "East", "instrument_id": "nonesuch"})
    assert unknown.status_code == 422 and f'id="{east.id}-instrument_id-error"' in unknown.text
    assert post_form(browser, "/clinics/not-ours", {"name": "X", "instrument_id": "wai-sr"}).status_code == 404


def test_the_audit_page_is_a_frame_for_its_script_and_says_it_needs_javascript(org):
    page = admin(org).get("/audit").text
    assert "/static/rapport/audit.js" in page and "This view needs JavaScript" in page
    assert 'data-url-scoring="' in page and 'data-people-url="' in page
    assert f'<option value="{org.counselor_north}"' in page  # the person filter names the staff


def test_the_audit_api_filters_a_time_range_and_records_exports(org):
    browser = admin(org)
    browser.get("/staff")
    records = browser.get("/api/audit", query_string={"page_size": 100})
    assert records.status_code == 200 and "X-Pagination" in records.headers
    newest = datetime.fromisoformat(records.json[0]["at"]).replace(tzinfo=timezone.utc)
    answer = browser.get("/api/audit", query_string={"until": newest.isoformat(), "page_size": 100})
    assert answer.status_code == 200, answer.json
    until = answer.json
    assert until and all(datetime.fromisoformat(r["at"]).replace(tzinfo=timezone.utc) < newest for r in until)

    response = browser.post("/api/audit/exports", json={"rows": 7, "subject": "client_id:abc",
                                                        "since": "2026-01-01T00:00:00+00:00"})
    assert response.status_code == 204
    export = AuditRecord.objects(org_id=org.id, action="export audit csv").first()
    assert export.service == "intake" and export.role == "admin"
    assert export.subject == "rows:7,subject:client_id:abc,since:2026-01-01T00:00:00+00:00"
    assert browser.post("/api/audit/exports", json={"rows": -1}).status_code == 422
    desk = signed_in(org, f"front_desk-{org.north}@{org.id}.test")[0]
    assert desk.post("/api/audit/exports", json={"rows": 1}).status_code == 403
