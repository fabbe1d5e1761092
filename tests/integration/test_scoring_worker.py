"""Scoring's consumer on the real broker and FerretDB: scores, dyad baselines, alerts, duplicate delivery,
a crash between the writes, exit interviews and replay of the topic into a fresh group and database."""
from __future__ import annotations

import json

import pytest

from services.common import mongo
from services.common.events import CrossTenantEvent, Topic, make_event
from services.scoring.domain import alerting
from services.scoring import handlers
from services.scoring.handlers import EVENT_HANDLERS
from services.scoring.adapters.instruments import shipped_instruments
from services.scoring.adapters.models import (Alert, ClinicAlertSettings, ClinicCalibration, Dyad, ScoredExitInterview,
                                     ScoredSession)
from tests.support.kafka_reader import events_on, publish_all, send_raw

CLINIC = "clinic-a"


def feedback(org, client, counselor, session, goal, task, bond, instrument="rapport-short"):
    return make_event(Topic.FEEDBACK_SUBMITTED, {
        "feedback_id": f"f-{client}-{session}", "client_id": client, "counselor_id": counselor,
        "session_number": session, "instrument_id": instrument,
        "answers": {"goal-1": goal, "task-1": task, "bond-1": bond}}, org_id=org, clinic_id=CLINIC,
        producer="tests")


def exit_interview(org, client, counselor, session, comfortable, style_fit, confident_progress):
    return make_event(Topic.EXIT_INTERVIEW_SUBMITTED, {
        "exit_interview_id": f"x-{client}", "client_id": client, "counselor_id": counselor,
        "session_number": session, "comfortable": comfortable, "style_fit": style_fit,
        "confident_progress": confident_progress, "outside_expertise": False, "wants_someone_else": False},
        org_id=org, clinic_id=CLINIC, producer="tests")


def payloads(bootstrap, topic, org):
    """This org's events on a topic, one per event id: another scoring worker on the shared topics (the e2e
    platform's, in a full run) derives the very same events, ids included, and consumers dedupe by id."""
    unique_events = {e["event_id"]: e for e in events_on(bootstrap, topic, lambda e: e["org_id"] == org)}
    return [e["payload"] | {"event_id": event_id} for event_id, e in unique_events.items()]


# A client whose alliance holds for three sessions, then falls in the task dimension.
STEADY_THEN_FALL = [(1, 10, 10, 9), (2, 9, 10, 10), (3, 10, 9, 10), (4, 9, 4, 9)]


def push_below_cutoff(org):
    """The clinic chose to send every session below the cutoff to the inbox: an alert at a first session."""
    ClinicAlertSettings(id=ClinicAlertSettings.key(org, CLINIC), org_id=org, clinic_id=CLINIC,
                        rules={"below_cutoff": {"push": True}}).save()


def test_feedback_is_scored_against_the_clients_baseline_and_a_fall_raises_one_alert(
        components, settings_for, run_loop, unique):
    client, counselor = f"c-{unique}", f"co-{unique}"
    publish_all(settings_for("tests"), [feedback(unique, client, counselor, *s) for s in STEADY_THEN_FALL])

    run_loop("scoring", f"scoring-{unique}", EVENT_HANDLERS)

    scores = list(ScoredSession.objects(org_id=unique).order_by("session_number"))
    assert [s.total for s in scores] == [29, 29, 29, 22]
    assert scores[3].subscales == {"goal": 9, "task": 4, "bond": 9}
    # Session 4 against sessions 1-2 (session 3, just before it, is left out), in the instrument's documented
    # noise while the clinic has too few sessions of its own.
    noise = shipped_instruments()["rapport-short"].documented_noise
    assert (scores[3].baseline_sessions, scores[3].baseline_mean) == (2, 29)
    assert scores[3].baseline_sd == pytest.approx(alerting.shrunk_sd([29, 29], noise, 16))
    assert scores[3].previous_total == 29 and scores[3].below_cutoff and scores[3].fall_sd > 3
    assert [s.below_cutoff for s in scores[:3]] == [False] * 3
    dyad = Dyad.objects.get(id=Dyad.key(unique, CLINIC, client, counselor))
    assert dyad.version == 4 and dyad.last_event_id == scores[3].id and dyad.below_cutoff
    assert [p["total"] for p in dyad.trajectory["recent"]] == [29, 29, 29, 22]

    [alert] = Alert.objects(org_id=unique)
    assert (alert.kind, alert.rules, alert.dimension, alert.session_number) == ("change", ["rupture"], "task", 4)
    assert alert.severity == "high" and alert.outcome == "pending" and scores[3].alert.alert_id == alert.id
    assert ClinicCalibration.objects(org_id=unique).get().calibration["source"] == "instrument"

    scored = payloads(components.kafka_bootstrap, Topic.ALLIANCE_SCORED, unique)
    assert sorted(p["total"] for p in scored) == [22, 29, 29, 29]
    [dropped] = payloads(components.kafka_bootstrap, Topic.ALLIANCE_DROPPED, unique)
    assert (dropped["kind"], dropped["rules"], dropped["dimension"]) == ("change", ["rupture"], "task")
    assert dropped["alert_id"] == alert.id and dropped["baseline_mean"] == 29 and dropped["fall_sd"] > 3
    assert dropped["subscales"] == {"goal": 9, "task": 4, "bond": 9}


def test_the_sessions_after_an_alert_record_whether_the_alliance_recovered_and_what_was_done(
        settings_for, unique):
    mongo.connect(settings_for("scoring"))
    client, counselor = f"c-{unique}", f"co-{unique}"
    sessions = [*STEADY_THEN_FALL, (5, 10, 9, 10)]
    handlers.handle_feedback_batch([feedback(unique, client, counselor, *s) for s in sessions], lambda m: None)
    [alert] = Alert.objects(org_id=unique)
    assert (alert.outcome, alert.outcome_session) == ("recovered", 5)

    acknowledged = make_event(Topic.ALERT_ACKNOWLEDGED, {
        "alert_id": alert.id, "client_id": client, "counselor_id": counselor, "acknowledged_by": counselor,
        "action": "changed_approach"}, org_id=unique, clinic_id=CLINIC, producer="tests")
    handlers.handle_alert_acknowledged(acknowledged, lambda *a: None)
    handlers.handle_alert_acknowledged(make_event(Topic.ALERT_ACKNOWLEDGED, {
        **acknowledged.payload.to_wire(), "action": "other"}, org_id=unique, clinic_id=CLINIC, producer="tests"),
        lambda *a: None)  # a later acknowledgement does not overwrite the first
    alert.reload()
    assert alert.action == "changed_approach" and alert.acknowledged_at is not None
    with pytest.raises(CrossTenantEvent):
        handlers.handle_alert_acknowledged(make_event(Topic.ALERT_ACKNOWLEDGED, acknowledged.payload,
                                                      org_id=f"other-{unique}", clinic_id=CLINIC,
                                                      producer="tests"), lambda *a: None)


def test_a_dyad_that_stays_below_the_cutoff_gets_one_notice(settings_for, unique):
    mongo.connect(settings_for("scoring"))
    client, counselor = f"c-{unique}", f"co-{unique}"
    low = [(n, 8, 8, 8) for n in range(1, 7)]  # 24 of 30, under the cutoff of 27 every week
    handlers.handle_feedback_batch([feedback(unique, client, counselor, *s) for s in low], lambda m: None)
    assert ScoredSession.objects(org_id=unique, below_cutoff=True).count() == 6
    [notice] = Alert.objects(org_id=unique)
    assert (notice.kind, notice.rules, notice.session_number) == ("level", ["persistently_low"], 3)


def test_a_dyad_stored_by_the_earlier_version_gets_its_baseline_back_from_its_sessions(settings_for, unique):
    mongo.connect(settings_for("scoring"))
    client, counselor = f"c-{unique}", f"co-{unique}"
    handlers.handle_feedback_batch([feedback(unique, client, counselor, *s) for s in STEADY_THEN_FALL[:3]],
                                   lambda m: None)
    # What the earlier version kept: running sums and the last total, no window of sessions.
    Dyad.objects(id=Dyad.key(unique, CLINIC, client, counselor)).update_one(set__trajectory={
        "total": {"n": 3, "mean": 29.0, "m2": 0.0}, "last_session_number": 3, "last_total": 29.0})
    handlers.handle_feedback_batch([feedback(unique, client, counselor, *STEADY_THEN_FALL[3])], lambda m: None)
    fell = ScoredSession.objects(org_id=unique, session_number=4).get()
    assert (fell.baseline_sessions, fell.baseline_mean) == (2, 29) and fell.alert is not None


def test_a_redelivered_batch_changes_nothing(settings_for, unique):
    """The batch handler keeps no processed-event record: its own idempotency is all there is."""
    mongo.connect(settings_for("scoring"))
    client, counselor = f"c-{unique}", f"co-{unique}"
    events = [feedback(unique, client, counselor, *s) for s in STEADY_THEN_FALL]
    sent = []

    def record(messages):
        sent.extend((topic, json.loads(value)["event_id"]) for topic, key, value in messages)

    handlers.handle_feedback_batch(events, record)
    first_pass = list(sent)
    handlers.handle_feedback_batch(events, record)  # every event delivered again, together
    for event in events:  # and once more, one by one
        handlers.handle_feedback_batch([event], record)

    assert len(first_pass) == 5 and sent == first_pass  # 4 scores and 1 alert, nothing published twice
    assert ScoredSession.objects(org_id=unique).count() == 4
    assert Alert.objects(org_id=unique).count() == 1
    dyad = Dyad.objects.get(id=Dyad.key(unique, CLINIC, client, counselor))
    assert dyad.version == 4 and len(dyad.trajectory["recent"]) == 4  # no session counted twice


class WorkerDied(Exception):
    pass


def test_a_crash_between_the_scores_and_the_dyad_update_is_repaired_once_on_redelivery(
        settings_for, unique, monkeypatch):
    mongo.connect(settings_for("scoring"))
    client, counselor = f"c-{unique}", f"co-{unique}"
    first, second, third = (feedback(unique, client, counselor, *s) for s in STEADY_THEN_FALL[:3])
    handlers.handle_feedback_batch([first], lambda messages: None)

    def die(dyads):
        raise WorkerDied()

    # The worker wrote the second and third scores, then died before updating the dyad and publishing.
    with monkeypatch.context() as patched:
        patched.setattr(handlers, "_write_dyads", die)
        try:
            handlers.handle_feedback_batch([second, third], lambda messages: None)
        except WorkerDied:
            pass
    assert ScoredSession.objects(org_id=unique).count() == 3
    assert Dyad.objects.get(id=Dyad.key(unique, CLINIC, client, counselor)).version == 1
    sent = []

    def record(messages):
        sent.extend(topic for topic, key, value in messages)

    handlers.handle_feedback_batch([second, third], record)
    handlers.handle_feedback_batch([second, third], record)

    dyad = Dyad.objects.get(id=Dyad.key(unique, CLINIC, client, counselor))
    assert dyad.version == 3 and len(dyad.trajectory["recent"]) == 3 and dyad.last_event_id == third.event_id
    assert sent == [Topic.ALLIANCE_SCORED, Topic.ALLIANCE_SCORED]


def test_a_second_submission_for_the_same_session_raises_no_second_alert(settings_for, unique):
    mongo.connect(settings_for("scoring"))
    push_below_cutoff(unique)
    client, counselor = f"c-{unique}", f"co-{unique}"
    handlers.handle_feedback_batch([feedback(unique, client, counselor, 1, 5, 5, 5)], lambda messages: None)
    sent = []

    handlers.handle_feedback_batch([feedback(unique, client, counselor, 1, 4, 4, 4)],
                                   lambda messages: sent.extend(topic for topic, key, value in messages))

    assert Alert.objects(org_id=unique).count() == 1
    assert sent == [Topic.ALLIANCE_SCORED]
    late = ScoredSession.objects(org_id=unique, total=12).get()
    assert late.late and late.alert is None and late.below_cutoff
    assert len(Dyad.objects.get(id=Dyad.key(unique, CLINIC, client, counselor)).trajectory["recent"]) == 1


def test_exit_interview_with_a_low_fit_raises_its_own_alert(components, settings_for, run_loop, unique):
    client, counselor = f"c-{unique}", f"co-{unique}"
    publish_all(settings_for("tests"), [exit_interview(unique, client, counselor, 6, 3, 2, 3),
                                        exit_interview(unique, f"{client}-ok", counselor, 4, 4, 4, 5)])

    run_loop("scoring", f"scoring-{unique}", EVENT_HANDLERS)

    assert ScoredExitInterview.objects(org_id=unique).count() == 2
    [alert] = Alert.objects(org_id=unique)
    assert (alert.kind, alert.rules, alert.dimension, alert.session_number, alert.client_id) == (
        "exit_interview", ["exit_interview_low_fit"], "task", 6, client)
    [dropped] = payloads(components.kafka_bootstrap, Topic.ALLIANCE_DROPPED, unique)
    assert dropped["rules"] == ["exit_interview_low_fit"] and dropped["instrument_id"] == "exit-interview"
    assert abs(dropped["total"] - 8 / 3) < 1e-9 and dropped["threshold"] == 3


def test_replaying_the_topic_into_a_fresh_group_and_database_gives_identical_scores_and_alert_ids(
        components, settings_for, run_loop, unique):
    client, counselor = f"c-{unique}", f"co-{unique}"
    events = [feedback(unique, client, counselor, *s) for s in STEADY_THEN_FALL]
    publish_all(settings_for("tests"), events)
    # A duplicate on the wire as well: the replay meets it too.
    send_raw(components.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, client,
             json.dumps(events[3].to_dict()).encode())

    def snapshot():
        scores = [(s.id, s.session_number, s.total, s.mean, dict(s.subscales), s.baseline_mean, s.baseline_sd,
                   s.alert.alert_id if s.alert else None)
                  for s in ScoredSession.objects(org_id=unique).order_by("id")]
        alerts = sorted((a.id, tuple(a.rules), a.dimension, a.threshold) for a in Alert.objects(org_id=unique))
        return scores, alerts

    run_loop("scoring", f"scoring-{unique}", EVENT_HANDLERS)
    original = snapshot()
    dropped_before = payloads(components.kafka_bootstrap, Topic.ALLIANCE_DROPPED, unique)

    run_loop("scoring", f"replay-{unique}", EVENT_HANDLERS, db_prefix=f"r{unique}")
    replayed = snapshot()
    dropped_after = payloads(components.kafka_bootstrap, Topic.ALLIANCE_DROPPED, unique)

    assert replayed == original and len(original[1]) == 1
    # The replay republished the same alerts under the same event ids: consumers dedupe them by id.
    assert {p["event_id"] for p in dropped_after} == {p["event_id"] for p in dropped_before}
    assert {p["alert_id"] for p in dropped_after} == {a[0] for a in original[1]}


def test_two_submissions_for_one_session_in_one_batch_raise_the_alert_once(settings_for, unique):
    mongo.connect(settings_for("scoring"))
    push_below_cutoff(unique)
    client, counselor = f"c-{unique}", f"co-{unique}"
    first, second = (feedback(unique, client, counselor, 1, *answers) for answers in ((5, 5, 5), (4, 4, 4)))
    sent = []

    handlers.handle_feedback_batch([first, second],
                                   lambda messages: sent.extend(json.loads(v)["payload"] for t, k, v in messages))

    alert = Alert.objects(org_id=unique).get()
    assert alert.source_event_id == first.event_id
    assert [p["alert_id"] for p in sent if "alert_id" in p] == [alert.id]
    by_event = {s.id: s for s in ScoredSession.objects(org_id=unique)}
    assert by_event[first.event_id].alert.alert_id == alert.id
    assert by_event[second.event_id].alert is None and by_event[second.event_id].late
