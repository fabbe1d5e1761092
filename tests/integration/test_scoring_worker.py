"""Scoring's consumer on the real broker and FerretDB: scores, dyad baselines, alerts, duplicate delivery,
a crash between the writes, exit interviews and replay of the topic into a fresh group and database."""
from __future__ import annotations

import json

from services.common import mongo
from services.common.events import Topic, make_event
from services.scoring import handlers
from services.scoring.handlers import EVENT_HANDLERS
from services.scoring.models import Alert, Dyad, ExitInterviewScore, SessionScore
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


def test_feedback_is_scored_with_a_running_baseline_and_a_fall_raises_named_alerts(
        components, settings_for, run_loop, unique):
    client, counselor = f"c-{unique}", f"co-{unique}"
    publish_all(settings_for("tests"), [feedback(unique, client, counselor, *s) for s in STEADY_THEN_FALL])

    run_loop("scoring", f"scoring-{unique}", EVENT_HANDLERS)

    scores = list(SessionScore.objects(org_id=unique).order_by("session_number"))
    assert [s.total for s in scores] == [29, 29, 29, 22]
    assert scores[3].subscales == {"goal": 9, "task": 4, "bond": 9}
    assert (scores[3].baseline_sessions, scores[3].baseline_mean, scores[3].baseline_sd) == (3, 29, 0)
    assert scores[3].previous_total == 29
    dyad = Dyad.objects.get(id=Dyad.key(unique, CLINIC, client, counselor))
    assert dyad.version == 4 and dyad.last_event_id == scores[3].id
    assert dyad.trajectory["total"]["n"] == 4 and dyad.trajectory["last_total"] == 22

    alerts = {a.rule: a for a in Alert.objects(org_id=unique)}
    assert set(alerts) == {"below_cutoff", "drop_vs_previous", "reliable_drop", "rupture"}
    assert {a.dimension for a in alerts.values()} == {"task"} and all(a.session_number == 4 for a in alerts.values())

    scored = payloads(components.kafka_bootstrap, Topic.ALLIANCE_SCORED, unique)
    assert sorted(p["total"] for p in scored) == [22, 29, 29, 29]
    dropped = payloads(components.kafka_bootstrap, Topic.ALLIANCE_DROPPED, unique)
    assert sorted(p["rule"] for p in dropped) == sorted(alerts)
    reliable = next(p for p in dropped if p["rule"] == "reliable_drop")
    assert reliable["dimension"] == "task" and reliable["severity"] == "high" and reliable["baseline_mean"] == 29
    assert reliable["alert_id"] == alerts["reliable_drop"].id
    assert reliable["subscales"] == {"goal": 9, "task": 4, "bond": 9}


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

    assert len(first_pass) == 8 and sent == first_pass  # 4 scores and 4 alerts, nothing published twice
    assert SessionScore.objects(org_id=unique).count() == 4
    assert Alert.objects(org_id=unique).count() == 4
    dyad = Dyad.objects.get(id=Dyad.key(unique, CLINIC, client, counselor))
    assert dyad.version == 4 and dyad.trajectory["total"]["n"] == 4  # no session counted twice


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
    assert SessionScore.objects(org_id=unique).count() == 3
    assert Dyad.objects.get(id=Dyad.key(unique, CLINIC, client, counselor)).version == 1
    sent = []

    def record(messages):
        sent.extend(topic for topic, key, value in messages)

    handlers.handle_feedback_batch([second, third], record)
    handlers.handle_feedback_batch([second, third], record)

    dyad = Dyad.objects.get(id=Dyad.key(unique, CLINIC, client, counselor))
    assert dyad.version == 3 and dyad.trajectory["total"]["n"] == 3 and dyad.last_event_id == third.event_id
    assert sent == [Topic.ALLIANCE_SCORED, Topic.ALLIANCE_SCORED]


def test_a_second_submission_for_the_same_session_raises_no_second_alert(settings_for, unique):
    mongo.connect(settings_for("scoring"))
    client, counselor = f"c-{unique}", f"co-{unique}"
    handlers.handle_feedback_batch([feedback(unique, client, counselor, 1, 5, 5, 5)], lambda messages: None)
    sent = []

    handlers.handle_feedback_batch([feedback(unique, client, counselor, 1, 4, 4, 4)],
                                   lambda messages: sent.extend(topic for topic, key, value in messages))

    assert Alert.objects(org_id=unique).count() == 1
    assert sent == [Topic.ALLIANCE_SCORED]
    late = SessionScore.objects(org_id=unique, total=12).get()
    assert late.late and late.alerts == []
    assert Dyad.objects.get(id=Dyad.key(unique, CLINIC, client, counselor)).trajectory["total"]["n"] == 1


def test_exit_interview_with_a_low_fit_raises_its_own_alert(components, settings_for, run_loop, unique):
    client, counselor = f"c-{unique}", f"co-{unique}"
    publish_all(settings_for("tests"), [exit_interview(unique, client, counselor, 6, 3, 2, 3),
                                        exit_interview(unique, f"{client}-ok", counselor, 4, 4, 4, 5)])

    run_loop("scoring", f"scoring-{unique}", EVENT_HANDLERS)

    assert ExitInterviewScore.objects(org_id=unique).count() == 2
    [alert] = Alert.objects(org_id=unique)
    assert (alert.rule, alert.dimension, alert.session_number, alert.client_id) == (
        "exit_interview_low_fit", "task", 6, client)
    [dropped] = payloads(components.kafka_bootstrap, Topic.ALLIANCE_DROPPED, unique)
    assert dropped["rule"] == "exit_interview_low_fit" and dropped["instrument_id"] == "exit-interview"
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
                   [a.alert_id for a in s.alerts]) for s in SessionScore.objects(org_id=unique).order_by("id")]
        alerts = sorted((a.id, a.rule, a.dimension, a.threshold) for a in Alert.objects(org_id=unique))
        return scores, alerts

    run_loop("scoring", f"scoring-{unique}", EVENT_HANDLERS)
    original = snapshot()
    dropped_before = payloads(components.kafka_bootstrap, Topic.ALLIANCE_DROPPED, unique)

    run_loop("scoring", f"replay-{unique}", EVENT_HANDLERS, db_prefix=f"r{unique}")
    replayed = snapshot()
    dropped_after = payloads(components.kafka_bootstrap, Topic.ALLIANCE_DROPPED, unique)

    assert replayed == original and len(original[1]) == 4
    # The replay republished the same alerts under the same event ids: consumers dedupe them by id.
    assert {p["event_id"] for p in dropped_after} == {p["event_id"] for p in dropped_before}
    assert {p["alert_id"] for p in dropped_after} == {a[0] for a in original[1]}


def test_two_submissions_for_one_session_in_one_batch_raise_the_alert_once(settings_for, unique):
    mongo.connect(settings_for("scoring"))
    client, counselor = f"c-{unique}", f"co-{unique}"
    first, second = (feedback(unique, client, counselor, 1, *answers) for answers in ((5, 5, 5), (4, 4, 4)))
    sent = []

    handlers.handle_feedback_batch([first, second],
                                   lambda messages: sent.extend(json.loads(v)["payload"] for t, k, v in messages))

    alert = Alert.objects(org_id=unique).get()
    assert alert.source_event_id == first.event_id
    assert [p["alert_id"] for p in sent if "alert_id" in p] == [alert.id]
    by_event = {s.id: s for s in SessionScore.objects(org_id=unique)}
    assert [a.alert_id for a in by_event[first.event_id].alerts] == [alert.id]
    assert by_event[second.event_id].alerts == [] and by_event[second.event_id].late
