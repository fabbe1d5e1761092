"""Scoring's API and pages on FerretDB: scoping by organisation, clinic and role, trajectories, alerts, the
clinic summary, per-clinic alert settings, the FHIR export and the SVG chart."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from services.common.auth import Identity, issue_token
from services.common.events import Topic, make_event
from services.scoring import handlers
from services.scoring.entrypoints.app import create_app
from services.scoring.adapters.models import Alert

CLINIC, OTHER_CLINIC = "clinic-a", "clinic-b"
# Sessions 1-3 steady, 4 falls in the task dimension.
SESSIONS = [(1, 10, 10, 9), (2, 9, 10, 10), (3, 10, 9, 10), (4, 9, 4, 9)]


def feedback(org, client, counselor, session, goal, task, bond, clinic=CLINIC):
    return make_event(Topic.FEEDBACK_SUBMITTED, {
        "feedback_id": f"f-{client}-{session}", "client_id": client, "counselor_id": counselor,
        "session_number": session, "instrument_id": "rapport-short",
        "answers": {"goal-1": goal, "task-1": task, "bond-1": bond}}, org_id=org, clinic_id=clinic,
        producer="tests")


@pytest.fixture
def scoring(settings_for):
    settings = settings_for("scoring")
    app = create_app({"kafka_bootstrap": settings.kafka_bootstrap, "mongo_uri": settings.mongo_uri,
                      "db_prefix": settings.db_prefix})
    yield app
    app.extensions["rapport.kafka"].close()


@pytest.fixture
def caseload(scoring, unique):
    """Two counselors in clinic A (one client each, one of them falling), one client in clinic B."""
    ids = {"org": unique, "falling": f"c1-{unique}", "steady": f"c2-{unique}", "elsewhere": f"c3-{unique}",
           "counselor": f"co1-{unique}", "colleague": f"co2-{unique}"}
    handlers.handle_feedback_batch(
        [feedback(unique, ids["falling"], ids["counselor"], *s) for s in SESSIONS]
        + [feedback(unique, ids["steady"], ids["colleague"], n, 10, 10, 10) for n in (1, 2)]
        + [feedback(unique, ids["elsewhere"], ids["counselor"], 1, 2, 2, 2, clinic=OTHER_CLINIC)],
        lambda messages: None)
    return ids


def as_(scoring, staff_id, org, role, clinics=(CLINIC,)):
    token = issue_token(scoring.extensions["rapport.settings"], Identity(staff_id, org, tuple(clinics), role))
    client = scoring.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def test_every_route_needs_a_staff_identity(scoring, caseload):
    anonymous = scoring.test_client()
    assert anonymous.get(f"/api/scores?client_id={caseload['falling']}").status_code == 401
    assert anonymous.get(f"/charts/trajectory.svg?client_id={caseload['falling']}").status_code == 401
    assert anonymous.get("/alliance").status_code == 302  # to sign-in
    front_desk = as_(scoring, "fd", caseload["org"], "front_desk")
    assert front_desk.get(f"/api/scores?client_id={caseload['falling']}").status_code == 403
    assert front_desk.get(f"/api/clinics/{CLINIC}/summary").status_code == 403


def test_a_counselor_sees_only_their_own_clients_in_any_clinic(scoring, caseload):
    counselor = as_(scoring, caseload["counselor"], caseload["org"], "counselor")
    own = counselor.get(f"/api/scores?client_id={caseload['falling']}")
    assert own.status_code == 200 and [s["total"] for s in own.json] == [29, 29, 29, 22]
    assert counselor.get(f"/api/scores?client_id={caseload['steady']}").json == []  # a colleague's client
    falling = f"/api/scores?client_id={caseload['falling']}"
    assert counselor.get(f"{falling}&counselor_id={caseload['colleague']}").json == []
    assert len(counselor.get(f"{falling}&counselor_id={caseload['counselor']}").json) == 4
    assert counselor.get(f"/api/trajectories?client_id={caseload['steady']}").status_code == 404
    # Their own sessions in clinic B, which their token does not name: a counselor's access follows the
    # assignment (a telehealth counselor's client of another clinic), not the clinics (Identity.client_filter).
    assert counselor.get(f"/api/trajectories?client_id={caseload['elsewhere']}").status_code == 200
    assert counselor.get(f"/api/alerts?counselor_id={caseload['colleague']}").json == []
    other_org = as_(scoring, caseload["counselor"], "another-org", "counselor")
    assert other_org.get(f"/api/trajectories?client_id={caseload['falling']}").status_code == 404
    score_id = own.json[0]["id"]
    assert as_(scoring, caseload["colleague"], caseload["org"], "counselor").get(
        f"/api/scores/{score_id}").status_code == 404


def test_dyad_trajectory_has_the_baseline_and_the_alerts_per_session(scoring, caseload):
    supervisor = as_(scoring, "sup", caseload["org"], "supervisor")
    response = supervisor.get("/api/trajectories", query_string={"client_id": caseload["falling"],
                                                                 "counselor_id": caseload["counselor"]})
    assert response.status_code == 200
    body = response.json
    assert body["cutoff_total"] == 27 and body["instrument_ids"] == ["rapport-short"]
    # What the next session will be compared with: sessions 1-3 (the last one, 4, will be the previous).
    assert body["baseline"]["sessions"] == 3 and body["baseline"]["mean"] == pytest.approx(29)
    assert [p["total"] for p in body["points"]] == [29, 29, 29, 22]
    assert body["points"][3]["alerts"] == ["rupture"] and body["points"][3]["alert_kind"] == "change"
    assert [p["below_cutoff"] for p in body["points"]] == [False, False, False, True]
    assert body["chart_url"].endswith(f"/charts/trajectory.svg?client_id={caseload['falling']}"
                                      f"&counselor_id={caseload['counselor']}")


def test_an_alert_names_its_rules_dimension_repair_suggestion_and_outcome(scoring, caseload):
    counselor = as_(scoring, caseload["counselor"], caseload["org"], "counselor")
    alerts = counselor.get("/api/alerts?rule=rupture").json
    [alert] = [a for a in alerts if a["client_id"] == caseload["falling"]]
    assert (alert["kind"], alert["rules"], alert["dimension"]) == ("change", ["rupture"], "task")
    assert "start small" in alert["suggestion"] and alert["outcome"] == "pending" and alert["action"] is None
    assert alert["baseline_mean"] == 29 and alert["total"] == 22 and alert["fall_sd"] > 3
    assert counselor.get(f"/api/alerts/{alert['alert_id']}").json["rules"] == ["rupture"]
    assert counselor.get("/api/alerts?kind=level").json == []
    assert counselor.get("/api/alerts?rule=nonsense").status_code == 422


def test_clinic_summary_counts_sessions_below_cutoff_and_alerts_per_counselor_month(scoring, caseload):
    supervisor = as_(scoring, "sup", caseload["org"], "supervisor")
    summary = supervisor.get(f"/api/clinics/{CLINIC}/summary?since=2000-01-01").json
    assert summary["sessions"] == 6 and summary["sessions_below_cutoff"] == 1
    assert summary["share_below_cutoff"] == pytest.approx(1 / 6)
    [row] = summary["alerts_per_counselor_month"]
    assert row["counselor_id"] == caseload["counselor"] and row["alerts"] == 1
    assert summary["alerts_by_dimension"] == {"task": 1} and summary["alerts_by_rule"] == {"rupture": 1}
    assert summary["alerts_by_kind"] == {"change": 1}
    pending = {"alerts": 1, "pending": 1, "recovered": 0, "not_recovered": 0}
    assert summary["recovery_by_rule"] == {"rupture": pending}
    assert summary["recovery_by_counselor"] == {caseload["counselor"]: pending}
    assert summary["recovery_by_action"] == {"not_acknowledged": pending}
    assert supervisor.get(f"/api/clinics/{OTHER_CLINIC}/summary").status_code == 404
    assert as_(scoring, caseload["counselor"], caseload["org"], "counselor").get(
        f"/api/clinics/{CLINIC}/summary").status_code == 403


def test_an_admin_sets_a_clinics_budget_and_rules_and_later_sessions_follow_them(scoring, caseload):
    org = caseload["org"]
    admin = as_(scoring, "adm", org, "admin", clinics=())
    supervisor = as_(scoring, "sup", org, "supervisor")
    body = {"budget": {"false_alerts_per_counselor_month": 2}, "rules": {"below_cutoff": {"push": True}}}
    assert supervisor.put(f"/api/clinics/{CLINIC}/alert-settings", json=body).status_code == 403
    refused = admin.put(f"/api/clinics/{CLINIC}/alert-settings", json={"rules": {"rupture": {"window": 99}}})
    assert refused.status_code == 422 and "window" in str(refused.json)
    contradictory = admin.put(f"/api/clinics/{CLINIC}/alert-settings",
                              json={"rules": {"rupture": {"min_baseline_sessions": 9}}})
    assert contradictory.status_code == 422 and "min_baseline_sessions" in str(contradictory.json)
    saved = admin.put(f"/api/clinics/{CLINIC}/alert-settings", json=body)
    assert saved.status_code == 200
    assert saved.json["effective"]["budget"]["false_alerts_per_counselor_month"] == 2
    assert saved.json["effective"]["rules"]["below_cutoff"]["push"] is True
    [calibration] = saved.json["calibrations"]
    assert calibration["instrument_id"] == "rapport-short" and calibration["source"] == "instrument"
    assert 0 < calibration["k"] < 5
    assert supervisor.get(f"/api/clinics/{CLINIC}/alert-settings").json["overrides"] == body

    # Session 5: 20 of 30, below the cutoff and far under the client's usual 29.
    handlers.handle_feedback_batch([feedback(org, caseload["falling"], caseload["counselor"], 5, 8, 4, 8)],
                                   lambda messages: None)
    [alert] = Alert.objects(org_id=org, session_number=5)
    assert alert.rules == ["rupture", "below_cutoff"]


def test_an_admin_previews_what_settings_would_have_sent_before_saving(scoring, caseload):
    org = caseload["org"]
    admin = as_(scoring, "adm", org, "admin", clinics=())
    preview = admin.post(f"/api/clinics/{CLINIC}/alert-settings/preview?months=3",
                         json={"rules": {"below_cutoff": {"push": True}}})
    assert preview.status_code == 200
    body = preview.json
    assert (body["months"], body["sessions"]) == (3, 6)
    assert (body["current"]["change_alerts"], body["current"]["level_notices"]) == (1, 0)
    assert body["proposed"]["level_notices"] == 0 and body["proposed"]["change_alerts"] == 1
    assert "alerts per counselor-month over the last 3 months" in body["summary"]
    assert as_(scoring, "adm", org, "admin").get(f"/api/clinics/{CLINIC}/alert-settings").json["overrides"] == {}
    assert admin.post(f"/api/clinics/{CLINIC}/alert-settings/preview", json={"budget": {"x": 1}}).status_code == 422
    counselor = as_(scoring, caseload["counselor"], org, "counselor")
    assert counselor.post(f"/api/clinics/{CLINIC}/alert-settings/preview", json={}).status_code == 403


def test_fhir_export_of_a_clients_responses(scoring, caseload):
    counselor = as_(scoring, caseload["counselor"], caseload["org"], "counselor")
    response = counselor.get(f"/api/clients/{caseload['falling']}/questionnaire-responses")
    assert response.status_code == 200 and response.content_type == "application/fhir+json"
    bundle = response.json
    assert bundle["resourceType"] == "Bundle" and bundle["total"] == 4
    last = bundle["entry"][3]["resource"]
    assert last["resourceType"] == "QuestionnaireResponse" and last["status"] == "completed"
    assert last["questionnaire"].endswith("/api/instruments/rapport-short")
    questionnaire = counselor.get(last["questionnaire"])
    assert questionnaire.status_code == 200 and questionnaire.json["resourceType"] == "Questionnaire"
    assert [i["linkId"] for i in questionnaire.json["item"]] == [i["linkId"] for i in last["item"]]
    assert last["subject"]["identifier"]["value"] == caseload["falling"]
    assert last["item"] == [{"linkId": "goal-1", "answer": [{"valueInteger": 9}]},
                            {"linkId": "task-1", "answer": [{"valueInteger": 4}]},
                            {"linkId": "bond-1", "answer": [{"valueInteger": 9}]}]
    assert counselor.get(f"/api/clients/{caseload['steady']}/questionnaire-responses").status_code == 404


def test_chart_and_pages_show_the_fall(scoring, caseload):
    counselor = as_(scoring, caseload["counselor"], caseload["org"], "counselor")
    dyad = f"client_id={caseload['falling']}&counselor_id={caseload['counselor']}"
    chart = counselor.get(f"/charts/trajectory.svg?{dyad}")
    assert chart.status_code == 200 and chart.mimetype == "image/svg+xml"
    root = ET.fromstring(chart.data)
    desc = root.find("{http://www.w3.org/2000/svg}desc").text
    assert "Cutoff 27; flagged below it at session(s) 4" in desc and "session 4: Sudden fall" in desc
    assert counselor.get("/charts/trajectory.svg?client_id=bad id").status_code == 422
    overview = counselor.get("/alliance")
    assert overview.status_code == 200
    page = overview.get_data(as_text=True)
    assert caseload["falling"] in page and "fell below their usual" in page and "start small" in page
    assert '>below cutoff</span>' in page  # the falling client's last session is flagged
    assert caseload["steady"] not in page  # a colleague's client
    trajectory = counselor.get(f"/alliance/trajectory?{dyad}")
    assert trajectory.status_code == 200 and "/charts/trajectory.svg" in trajectory.get_data(as_text=True)
