"""Client links over the real database and broker: answering once, expiry, reuse, validation, no PHI on topics."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from services.common.events import Topic
from services.common.config import Settings
from services.intake.adapters import links
from services.intake.handlers import rating_id_for
from services.intake.adapters.models import ExitInterview, FeedbackRequest, FeedbackSubmission, Organisation
from tests.integration.test_intake_api import org, register  # noqa: F401  (the `org` fixture)
from tests.support.kafka_reader import events_on


def session_link(org, kind="feedback", **client):
    client_id = register(org, counselor_id=org.counselor_north, **client).json["id"]
    session = org.http.post(f"/api/clients/{client_id}/sessions", json={"held_on": "2026-02-03"},
                            headers=org.desk_north).json
    response = org.http.post(f"/api/clients/{client_id}/feedback-requests",
                             json={"session_id": session["id"], "kind": kind}, headers=org.desk_north)
    assert response.status_code == 201, response.json
    path = "/" + response.json["url"].split("/", 3)[3]  # the link's path on this test's app
    return client_id, response.json, path


def test_a_feedback_link_is_answered_once_and_published_without_phi(org, components):
    client_id, request, path = session_link(org)
    page = org.http.get(path)
    assert page.status_code == 200
    assert "Today we worked on what matters to me." in page.text
    assert "client-page" in page.text and "Sign out" not in page.text

    answered = org.http.post(path, data={"goal-1": "9", "task-1": "7", "bond-1": "10"})

    assert answered.status_code == 200 and "Thank you" in answered.text
    [event] = events_on(components.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, lambda e: e["org_id"] == org.id)
    rating_id = rating_id_for(client_id, 1)  # one rating per session, whichever way it comes
    assert event["payload"] == {"feedback_id": rating_id, "client_id": client_id,
                                "counselor_id": org.counselor_north, "session_number": 1,
                                "instrument_id": "rapport-short", "answers": {"goal-1": 9, "task-1": 7, "bond-1": 10}}
    assert "Canary" not in str(event)
    assert FeedbackSubmission.objects.get(id=rating_id).pending_events == []

    again = org.http.post(path, data={"goal-1": "1", "task-1": "1", "bond-1": "1"})
    assert again.status_code == 410 and "Already answered" in again.text
    assert org.http.get(path).status_code == 410
    assert len(events_on(components.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED,
                         lambda e: e["org_id"] == org.id)) == 1
    listed = org.http.get(f"/api/clients/{client_id}/feedback-requests", headers=org.desk_north).json
    assert listed[0]["answered_at"] is not None
    # A rated session gets no second feedback link, whatever the reason: the refusal names the session.
    second = org.http.post(f"/api/clients/{client_id}/feedback-requests", headers=org.desk_north,
                           json={"session_id": request["session_id"], "kind": "feedback",
                                 "reissue_reason": "client_asked_to_answer_again"})
    assert second.status_code == 422 and "rated once" in str(second.json["errors"]["json"]["session_id"])
    assert len(events_on(components.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED,
                         lambda e: e["org_id"] == org.id)) == 1


def test_invalid_answers_are_shown_next_to_their_question_and_nothing_is_published(org, components):
    _, request, path = session_link(org)

    response = org.http.post(path, data={"goal-1": "11", "task-1": "5"})

    assert response.status_code == 422
    assert 'aria-describedby="goal-1-error"' in response.text and 'id="bond-1-error"' in response.text
    assert 'id="task-1-error"' not in response.text
    assert 'value="5" checked' in response.text  # what the client did answer stays chosen
    assert FeedbackSubmission.objects(client_id=request["client_id"]).first() is None
    assert events_on(components.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, lambda e: e["org_id"] == org.id) == []
    assert org.http.get(path).status_code == 200  # still open


def test_an_expired_link_shows_a_clear_page(org):
    _, request, path = session_link(org)
    FeedbackRequest.objects(id=request["id"]).update_one(
        set__expires_at=datetime.now(timezone.utc) - timedelta(minutes=1))

    for response in (org.http.get(path), org.http.post(path, data={"goal-1": "5"})):
        assert response.status_code == 410
        assert "This link has expired" in response.text and "Traceback" not in response.text

    secret = Settings.load("intake").jwt_secret
    past = links.sign(secret, "feedback", request["id"], datetime.now(timezone.utc) - timedelta(seconds=1))
    assert org.http.get(f"/f/{past}").status_code == 410


def test_a_tampered_or_foreign_token_is_not_recognised(org):
    _, _, path = session_link(org)
    token = path.rsplit("/", 1)[1]

    for bad in (token[:-2] + "xx", "nonsense", token):
        url = f"/f/{bad}" if bad != token else f"/x/{bad}"  # a feedback token on the exit-interview page
        response = org.http.get(url)
        assert response.status_code == 404
        assert "Link not recognised" in response.text


def test_the_exit_interview_keeps_the_comment_in_intake(org, components):
    client_id, request, path = session_link(org, kind="exit_interview")
    page = org.http.get(path)
    assert "This counselor&#39;s style fits me." in page.text

    missing = org.http.post(path, data={"comfortable": "4", "style_fit": "9"})
    assert missing.status_code == 422
    for field in ("style_fit", "confident_progress", "outside_expertise", "wants_someone_else"):
        assert f'id="{field}-error"' in missing.text

    answered = org.http.post(path, data={"comfortable": "2", "style_fit": "1", "confident_progress": "2",
                                         "outside_expertise": "yes", "wants_someone_else": "no",
                                         "comment": "Canary says the sessions feel rushed"})
    assert answered.status_code == 200
    [event] = events_on(components.kafka_bootstrap, Topic.EXIT_INTERVIEW_SUBMITTED,
                        lambda e: e["org_id"] == org.id)
    assert event["payload"] == {"exit_interview_id": request["id"], "client_id": client_id,
                                "counselor_id": org.counselor_north, "session_number": 1, "comfortable": 2,
                                "style_fit": 1, "confident_progress": 2, "outside_expertise": True,
                                "wants_someone_else": False}
    assert ExitInterview.objects.get(id=request["id"]).comment == "Canary says the sessions feel rushed"
    status = org.http.get(f"/api/clients/{client_id}/exit-interviews", headers=org.desk_north).json
    assert status[0]["style_fit"] == 1
    assert org.http.post(path, data={}).status_code == 410


def test_a_licensed_instrument_shows_the_organisations_wording_or_the_item_number(org):
    response = org.http.patch(f"/api/clinics/{org.north}", json={"instrument_id": "wai-sr"}, headers=org.admin)
    assert response.status_code == 200, response.json
    Organisation.objects(id=org.id).update_one(set__item_texts={"wai-sr": {"wai-1": "Our licensed wording one"}})
    _, request, path = session_link(org)

    page = org.http.get(path)

    assert request["instrument_id"] == "wai-sr"
    assert "Our licensed wording one" in page.text and "Item 2" in page.text
    assert 'value="0"' not in page.text and 'value="5"' in page.text  # the WAI-SR's 1-5 scale
    bad_instrument = org.http.patch(f"/api/clinics/{org.north}", json={"instrument_id": "no-such"},
                                    headers=org.admin)
    assert bad_instrument.status_code == 422 and "instrument_id" in bad_instrument.json["errors"]["json"]


def test_links_are_only_created_for_sessions_of_the_callers_clients(org):
    client_id, _, _ = session_link(org)
    other = register(org, counselor_id=org.counselor_north).json["id"]
    other_session = org.http.post(f"/api/clients/{other}/sessions", json={"held_on": "2026-02-03"},
                                  headers=org.desk_north).json
    wrong_session = org.http.post(f"/api/clients/{client_id}/feedback-requests",
                                  json={"session_id": other_session["id"]}, headers=org.desk_north)
    assert wrong_session.status_code == 422 and "session_id" in wrong_session.json["errors"]["json"]
    assert org.http.post(f"/api/clients/{client_id}/feedback-requests", json={"session_id": other_session["id"]},
                         headers=org.desk_south).status_code == 404
