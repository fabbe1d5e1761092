"""Intake's pages over the real database: sign-in and sessions, the new-client form, scoping, the directory."""
from __future__ import annotations

from services.common.auth import COOKIE_NAME
from services.intake.adapters.models import Client
from tests.integration.test_intake_api import PASSWORD, org, register  # noqa: F401  (the `org` fixture)
from tests.support.identity import form_token


def post_form(browser, path, data, **options):
    """A form post as a browser sends it: with the form token of the signed-in session."""
    return browser.post(path, data={**data, **form_token(browser.get("/").text)}, **options)


def signed_in(org, email):
    browser = org.app.test_client()
    response = browser.post("/signin", data={"email": email, "password": PASSWORD, "next": "/counselors"})
    assert response.status_code == 303, response.text
    return browser, response


def desk_email(org, clinic):
    return f"front_desk-{clinic}@{org.id}.test"


def test_pages_send_anonymous_visitors_to_sign_in_and_back(org):
    response = org.app.test_client().get("/clients/new")
    assert response.status_code == 302
    assert "/signin?next=" in response.headers["Location"]


def test_sign_in_sets_an_httponly_session_cookie_and_sign_out_clears_it(org):
    browser, response = signed_in(org, desk_email(org, org.north))
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert response.headers["Location"] == "/counselors"
    assert browser.get("/").status_code == 200

    assert browser.post("/signout").status_code == 403  # without the form token: another site's form
    signed_out = post_form(browser, "/signout", {})
    assert signed_out.status_code == 303
    assert f"{COOKIE_NAME}=;" in signed_out.headers["Set-Cookie"]
    assert browser.get("/").status_code == 302


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(org):
    response = org.app.test_client().post("/signin", data={"email": desk_email(org, org.north), "password": "x"})
    assert response.status_code == 401
    assert "do not match" in response.text and 'aria-invalid="true"' in response.text


def test_sign_in_never_redirects_off_site(org):
    browser = org.app.test_client()
    response = browser.post("/signin", data={"email": desk_email(org, org.north), "password": PASSWORD,
                                             "next": "https://evil.example/phish"})
    assert response.headers["Location"] == "/"


def test_the_new_client_form_shows_each_error_next_to_its_field(org):
    browser, _ = signed_in(org, desk_email(org, org.north))
    before = Client.objects(org_id=org.id).count()

    response = post_form(browser, "/clients/new", {"first_name": "Canary", "email": "nope", "language": "spanish"})

    assert response.status_code == 422
    for field in ("last_name", "email", "language", "concerns"):
        assert f'id="{field}-error"' in response.text, field
    assert 'id="first_name" name="first_name" autocomplete="off" value="Canary"' in response.text
    assert 'aria-describedby="first_name-error"' not in response.text
    assert Client.objects(org_id=org.id).count() == before


def test_front_desk_registers_a_client_and_records_a_session_with_a_link(org):
    browser, _ = signed_in(org, desk_email(org, org.north))
    response = post_form(browser, "/clients/new", {
        "first_name": "Robin", "last_name": "Page", "clinic_id": org.north, "concerns": ["anxiety", "work"],
        "urgency": "soon", "language": "en", "modality": "telehealth", "days": ["mon", "thu"],
        "counselor_id": org.counselor_north})
    assert response.status_code == 303, response.text
    client = Client.objects.get(org_id=org.id, last_name="Page")
    assert client.preferences["days"] == ["mon", "thu"] and client.counselor_id == org.counselor_north

    page = post_form(browser, f"/clients/{client.id}/sessions", {"held_on": "2026-03-02"}, follow_redirects=True)
    assert "Session recorded." in page.text
    session_id = page.text.split('name="session_id" value="', 1)[1].split('"', 1)[0]
    page = post_form(browser, f"/clients/{client.id}/links", {"session_id": session_id, "kind": "feedback"},
                     follow_redirects=True)
    assert "Link created" in page.text and "/f/" in page.text


def test_another_clinics_client_page_is_not_found(org):
    client_id = register(org).json["id"]
    browser, _ = signed_in(org, desk_email(org, org.south))
    response = browser.get(f"/clients/{client_id}")
    assert response.status_code == 404 and "Canary" not in response.text
    assert post_form(browser, f"/clients/{client_id}/assignment",
                     {"counselor_id": org.counselor_south}).status_code == 404
    assert "Canary" not in browser.get("/").text


def test_the_directory_filters_counselors(org):
    browser, _ = signed_in(org, f"admin@{org.id}.test")
    everyone = browser.get("/counselors").text
    assert "counselor " + org.north in everyone and "counselor " + org.south in everyone
    spanish = browser.get("/counselors", query_string={"language": "es"}).text
    assert "counselor " + org.north in spanish and "counselor " + org.south not in spanish
    invalid = browser.get("/counselors", query_string={"language": "spanish"}).text
    assert 'id="language-error"' in invalid
