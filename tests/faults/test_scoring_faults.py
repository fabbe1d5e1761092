"""Scoring through crashes, rebalances, poison messages, a database outage and a replay, on the real broker.

The reference for "what should exist" is a replay of the same topic by a fresh consumer group into a fresh
database with nothing going wrong (`rapport replay`'s code path): a faulted run must end identical to it.
"""
from __future__ import annotations

import json
import signal
import threading
from collections import Counter

import requests

from deploy.local.topic_reader import read_topic
from services.common import mongo, ops
from services.common.events import InvalidEvent, Topic, encode_event, make_event
from services.common.kafka import ConsumerLoop, EventProducer
from services.scoring.adapters.models import Alert, ScoredSession
from tests.faults.conftest import feedback_stream
from tests.support.kafka_reader import events_on, publish_all, send_raw, wait_for

CLIENTS, SESSIONS = 40, 10  # 400 feedback events


def scored_state(settings) -> tuple[dict[str, float], set[str], int]:
    """(total per scored feedback event, alert ids, sessions scored out of order) in a scoring database."""
    mongo.connect(settings)
    scores = {s.id: s.total for s in ScoredSession.objects.only("id", "total", "late")}
    late = ScoredSession.objects(late=True).count()
    return scores, {a.id for a in Alert.objects.only("id")}, late


def reference_state(settings_on, unique) -> tuple[dict[str, float], set[str], int]:
    reference = settings_on("scoring", db_prefix=f"ref{unique}")
    ops.replay(reference, group=f"reference-{unique}")
    return scored_state(reference)


def count_scored(settings) -> int:
    mongo.connect(settings)
    return ScoredSession.objects.count()


def report(name: str, expected: dict, got: dict, expected_alerts: set, got_alerts: set, late: int) -> dict:
    figures = {
        "lost": len(set(expected) - set(got)),
        "duplicated": len(got) - len(set(got)),  # scores are keyed by event id: a double would show here
        "unexpected": len(set(got) - set(expected)),
        "different_totals": sum(1 for k in expected if k in got and expected[k] != got[k]),
        "alerts_lost": len(expected_alerts - got_alerts),
        "alerts_extra": len(got_alerts - expected_alerts),
        "reordered": late,
    }
    print(f"\n{name}: {len(got)} scores, {len(got_alerts)} alerts; " + ", ".join(f"{k} {v}" for k, v in
                                                                              figures.items()))
    return figures


def alert_events_per_alert(bootstrap: str, org: str) -> Counter:
    """How many distinct events announce each alert (copies of one event are redeliveries, not doubles)."""
    events = events_on(bootstrap, Topic.ALLIANCE_DROPPED, lambda e: e["org_id"] == org)
    return Counter(alert for alert, _event in {(e["payload"]["alert_id"], e["event_id"]) for e in events})


def test_r3_kill_9_mid_batch_loses_and_doubles_nothing(faulty, settings_on, start_worker, unique):
    settings = settings_on("scoring")
    events = feedback_stream(unique, CLIENTS, SESSIONS)
    worker = start_worker("scoring")
    publish_all(settings, events)

    wait_for(lambda: count_scored(settings) >= 120, timeout_s=120)
    worker.popen.send_signal(signal.SIGKILL)
    worker.popen.wait()
    killed_at = count_scored(settings)
    start_worker("scoring", name="scoring-worker-2")
    wait_for(lambda: count_scored(settings) >= len(events), timeout_s=300, interval_s=1)

    got, got_alerts, late = scored_state(settings)
    expected, expected_alerts, _ = reference_state(settings_on, unique)
    figures = report(f"R3 (killed after {killed_at} of {len(events)})", expected, got, expected_alerts,
                     got_alerts, late)
    assert set(expected) == {e.event_id for e in events}
    assert figures == dict.fromkeys(figures, 0)
    per_alert = alert_events_per_alert(faulty.kafka_bootstrap, unique)
    assert set(per_alert) == expected_alerts and set(per_alert.values()) == {1}


def test_r4_a_worker_joining_and_one_leaving_mid_run_changes_nothing(faulty, settings_on, start_worker, unique):
    settings = settings_on("scoring")
    events = feedback_stream(unique, CLIENTS, SESSIONS, seed=11)
    first = start_worker("scoring", name="scoring-a")
    publish_all(settings, events)

    wait_for(lambda: count_scored(settings) >= 100, timeout_s=120)
    start_worker("scoring", name="scoring-b")  # joins the group: partitions move
    wait_for(lambda: count_scored(settings) >= 250, timeout_s=180)
    first.stop()  # leaves the group gracefully: its partitions move again
    wait_for(lambda: count_scored(settings) >= len(events), timeout_s=300, interval_s=1)

    got, got_alerts, late = scored_state(settings)
    expected, expected_alerts, _ = reference_state(settings_on, unique)
    figures = report("R4 (rebalance twice)", expected, got, expected_alerts, got_alerts, late)
    assert figures == dict.fromkeys(figures, 0)


def test_r5_poison_goes_to_the_dlq_the_consumer_goes_on_and_a_redrive_after_a_fix_is_processed_once(
        faulty, settings_on, start_worker, unique):
    settings = settings_on("scoring")
    good = feedback_stream(unique, 10, 1)
    schema_invalid = encode_event(good[0]).replace(b'"session_number":1', b'"session_number":-3')
    unknown_instrument = encode_event(good[1]).replace(b'"rapport-short"', b'"not-installed"')
    start_worker("scoring")
    send_raw(faulty.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, f"{unique}-poison-1", b"\x00\x01 not json")
    send_raw(faulty.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, f"{unique}-poison-2", schema_invalid)
    send_raw(faulty.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED, f"{unique}-poison-3", unknown_instrument)
    publish_all(settings, good[2:])

    wait_for(lambda: count_scored(settings) >= 8, timeout_s=120)
    dead = [d for d in ops.dead_letters(settings, Topic.FEEDBACK_SUBMITTED) if (d.key or "").startswith(unique)]
    assert sorted(d.key for d in dead) == [f"{unique}-poison-{n}" for n in (1, 2, 3)]
    assert {d.headers["error-class"] for d in dead} == {"InvalidEvent"}
    assert all(d.headers["consumer-group"] == "scoring" for d in dead)
    wait_for(lambda: all(lag.behind == 0 for lag in ops.consumer_lag(settings) if lag.group == "scoring"
                         and lag.topic == Topic.FEEDBACK_SUBMITTED), timeout_s=60)
    print(f"\nR5: {len(dead)} dead letters, consumer lag back to 0")

    # Re-drive after a fix, with a consumer whose handler now accepts what it refused before.
    fixed, handled = threading.Event(), []

    def handler(event, publish):
        if not fixed.is_set() and event.org_id == unique:
            raise InvalidEvent("not yet")
        if event.org_id == unique:
            handled.append(event.event_id)

    group, producer = f"fix-{unique}", EventProducer(settings)
    mongo.connect(settings)
    loop = ConsumerLoop(settings, group=group, handlers={Topic.EXIT_INTERVIEW_SUBMITTED.value: handler},
                        producer=producer, poll_timeout_ms=200)
    exit_event = _exit_interview(unique)
    producer.publish(exit_event, key=exit_event.payload.client_id)
    thread = threading.Thread(target=loop.run)
    thread.start()
    wait_for(lambda: any(d.key == exit_event.payload.client_id
                         for d in ops.dead_letters(settings, Topic.EXIT_INTERVIEW_SUBMITTED)), timeout_s=60)
    fixed.set()
    assert ops.redrive(settings, Topic.EXIT_INTERVIEW_SUBMITTED) >= 1
    wait_for(lambda: handled, timeout_s=60)
    assert ops.redrive(settings, Topic.EXIT_INTERVIEW_SUBMITTED) == 0
    producer.publish(exit_event, key=exit_event.payload.client_id)  # and a duplicate delivery
    wait_for(lambda: loop.stats.skipped_duplicates >= 1, timeout_s=60)
    loop.stop()
    thread.join(30)
    producer.close()
    assert handled == [exit_event.event_id]


def _exit_interview(org: str):
    return make_event(Topic.EXIT_INTERVIEW_SUBMITTED, {
        "exit_interview_id": f"x-{org}", "client_id": f"{org}-client-x", "counselor_id": f"{org}-co-x",
        "session_number": 1, "comfortable": 2, "style_fit": 2, "confident_progress": 2,
        "outside_expertise": False, "wants_someone_else": True}, org_id=org, clinic_id="clinic-1",
        producer="fault-suite")


def test_r6_a_database_outage_commits_nothing_unwritten_and_everything_is_processed_after(
        faulty, settings_on, start_worker, unique):
    settings = settings_on("scoring")
    events = feedback_stream(unique, 50, 6, seed=5)
    worker = start_worker("scoring")
    wait_for(lambda: _status(f"{worker.http}/readyz") == 200, timeout_s=60)
    publish_all(settings, events[:100])
    wait_for(lambda: count_scored(settings) >= 50, timeout_s=120)

    faulty.process("ferretdb").stop()
    wait_for(lambda: _status(f"{worker.http}/readyz") == 503, timeout_s=60)
    publish_all(settings, events[100:])  # arrives while the database is away
    committed_during = _committed(settings)
    faulty.start_again("ferretdb")

    # Everything below a committed offset must have been written before the outage ended.
    written = set(scored_state(settings)[0])
    offsets = {(r.partition, r.offset): r for r in read_topic(faulty.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED)}
    committed_unwritten = [key for key, r in offsets.items()
                           if r.offset < committed_during.get(r.partition, 0)
                           and _envelope_field(r, "event_id") not in written
                           and _envelope_field(r, "org_id") == unique]
    wait_for(lambda: count_scored(settings) >= len(events), timeout_s=300, interval_s=1)
    wait_for(lambda: _status(f"{worker.http}/readyz") == 200, timeout_s=60)
    got, got_alerts, late = scored_state(settings)
    print(f"\nR6: committed but unwritten {len(committed_unwritten)}, scored {len(got)} of {len(events)}, "
          f"reordered {late}")
    assert committed_unwritten == []
    assert set(got) == {e.event_id for e in events} and late == 0


def test_r9_a_replay_into_a_new_group_gives_identical_scores_and_no_new_alerts(
        faulty, settings_on, start_worker, unique):
    settings = settings_on("scoring")
    events = feedback_stream(unique, 40, 8, seed=3)
    start_worker("scoring")
    publish_all(settings, events)
    wait_for(lambda: count_scored(settings) >= len(events), timeout_s=300, interval_s=1)
    got, got_alerts, late = scored_state(settings)
    alert_events_before = len(read_topic(faulty.kafka_bootstrap, Topic.ALLIANCE_DROPPED))

    expected, expected_alerts, _ = reference_state(settings_on, unique)

    figures = report("R9 (replay vs production)", expected, got, expected_alerts, got_alerts, late)
    assert figures == dict.fromkeys(figures, 0)
    assert len(read_topic(faulty.kafka_bootstrap, Topic.ALLIANCE_DROPPED)) == alert_events_before


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def _committed(settings) -> dict[int, int]:
    return {lag.partition: lag.committed or 0 for lag in ops.consumer_lag(settings)
            if lag.group == "scoring" and lag.topic == Topic.FEEDBACK_SUBMITTED}


def _envelope_field(record, name: str) -> str | None:
    try:
        return json.loads(record.value)[name]
    except (ValueError, KeyError, TypeError):
        return None
