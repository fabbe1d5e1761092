"""Scoring's alert settings page on FerretDB: the back-test preview of the alert volume before saving."""
from __future__ import annotations

from services.scoring import queries
from tests.integration.test_scoring_api import CLINIC, as_, caseload, scoring  # noqa: F401  (fixtures)

FORM = {"clinic_id": CLINIC, "budget": "2", "persistently_low.enabled": "on", "persistently_low.sessions": "2",
        "below_cutoff.push": "on", "months": "3"}


def test_preview_shows_the_alert_volume_on_the_clinics_history_and_saves_nothing(scoring, caseload):
    org = caseload["org"]
    admin = as_(scoring, "adm", org, "admin")
    response = admin.post("/alliance/settings", data={**FORM, "action": "preview"})
    assert response.status_code == 200, response.text
    page = response.text
    assert "Preview: the last 3 months with these settings (not saved)" in page
    assert "alerts per counselor-month over the last 3 months" in page
    assert "Alerts per counselor-month</th>" in page and "6 sessions" in page
    assert 'value="2"' in page  # the form keeps what was previewed, ready to save
    assert queries.clinic_overrides(org, CLINIC) == {}

    saved = admin.post("/alliance/settings", data={**FORM, "action": "save"})
    assert "Saved." in saved.text and "Preview:" not in saved.text
    assert queries.clinic_overrides(org, CLINIC)["budget"] == {"false_alerts_per_counselor_month": 2.0}


def test_a_supervisor_previews_but_only_an_admin_saves(scoring, caseload):
    org = caseload["org"]
    supervisor = as_(scoring, "sup", org, "supervisor")
    page = supervisor.get(f"/alliance/settings?clinic_id={CLINIC}").text
    assert 'value="preview"' in page and 'value="save"' not in page
    assert "Preview:" in supervisor.post("/alliance/settings", data={**FORM, "action": "preview"}).text
    assert supervisor.post("/alliance/settings", data={**FORM, "action": "save"}).status_code == 403
    assert queries.clinic_overrides(org, CLINIC) == {}


def test_a_wrong_value_is_named_next_to_its_field_and_nothing_is_previewed(scoring, caseload):
    admin = as_(scoring, "adm", caseload["org"], "admin")
    response = admin.post("/alliance/settings", data={**FORM, "budget": "0", "action": "preview"})
    assert response.status_code == 422
    assert 'id="budget-error"' in response.text and 'aria-describedby="budget-error"' in response.text
    assert 'value="0"' in response.text and "Preview:" not in response.text
