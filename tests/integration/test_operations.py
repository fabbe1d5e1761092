"""Operations over the real broker: DLQ listing and re-drive, lag, a consumer halting itself, worker probes."""
from __future__ import annotations

import threading

import pytest
import requests

from deploy.local.components import free_port, start_components
from deploy.local.topic_reader import read_topic
from services.common import mongo, ops
from services.common.events import CrossTenantEvent, InvalidEvent, Topic, make_event
from services.common.config import Settings
from services.common.kafka import ConsumerLoop, EventProducer, ensure_topics
from services.common.worker import Worker
from tests.support.kafka_reader import publish_all, send_raw, wait_for

TOPIC = Topic.ALLIANCE_SCORED.value


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    """A broker of this module's own: re-driving and lag are about every group on the broker, and the
    session's end-to-end platform would otherwise dead-letter and re-drive the same messages alongside."""
    started = start_components(tmp_path_factory.mktemp("ops-components"))
    ensure_topics(Settings.load("tests", {"kafka_bootstrap": started.kafka_bootstrap}))
    yield started
    started.stop()


def scored(org: str, client: str, session: int = 1):
    return make_event(TOPIC, {
        "score_id": f"s{session}", "source_event_id": f"f{session}", "client_id": client,
        "counselor_id": "co-1", "session_number": session, "instrument_id": "rapport-short",
        "total": 27.0, "mean": 9.0, "subscales": {"goal": 9.0, "task": 9.0, "bond": 9.0}},
        org_id=org, clinic_id="clinic-1", producer="tests")


def test_dead_letters_are_listed_and_re_driven_exactly_once(components, settings_for, run_loop, unique):
    send_raw(components.kafka_bootstrap, TOPIC, key=unique, value=b"{broken")
    run_loop("referral", f"g-{unique}", {TOPIC: lambda e, p: None})
    settings = settings_for("ops")

    mine = [d for d in ops.dead_letters(settings, TOPIC) if d.key == unique]
    assert len(mine) == 1
    assert mine[0].headers["origin-topic"] == TOPIC and mine[0].headers["error-class"] == "InvalidEvent"

    assert ops.redrive(settings, TOPIC) >= 1
    assert ops.redrive(settings, TOPIC) == 0  # progress is committed: nothing is re-driven twice
    copies = [r for r in read_topic(components.kafka_bootstrap, TOPIC) if r.key == unique.encode()]
    assert len(copies) == 2  # the original and its one re-drive
    assert dict(copies[1].headers)["redriven-from"].startswith(f"{TOPIC}.dlq:".encode())


def test_lag_reports_a_caught_up_group_at_zero(components, settings_for, run_loop, unique):
    producer = EventProducer(settings_for("tests"))
    try:
        producer.publish(scored(unique, f"c-{unique}"), key=f"c-{unique}")
    finally:
        producer.close()
    run_loop("referral", f"g-{unique}", {TOPIC: lambda e, p: None})

    lags = [lag for lag in ops.consumer_lag(settings_for("ops")) if lag.group == f"g-{unique}"]

    assert {lag.topic for lag in lags} == {TOPIC}
    assert all(lag.behind == 0 for lag in lags) and sum(lag.end for lag in lags) > 0


def test_a_consumer_halts_itself_when_most_messages_are_dead_lettered(settings_for, unique):
    settings = settings_for("tests")
    producer = EventProducer(settings)
    events = [scored(unique, f"c-{unique}", n) for n in range(1, 61)]
    for event in events:
        producer.publish(event, key=f"c-{unique}")

    def reject_mine(event, publish):
        if event.org_id == unique:
            raise InvalidEvent("a handler that cannot take these")

    mongo.connect(settings)
    loop = ConsumerLoop(settings, group=f"g-{unique}", handlers={TOPIC: reject_mine}, producer=producer,
                        poll_timeout_ms=200, max_records=20)
    thread = threading.Thread(target=loop.run)
    thread.start()
    thread.join(120)
    producer.close()

    assert not thread.is_alive(), "the loop should have stopped itself"
    assert loop.halted and not loop.ready
    # It stopped after a sample of 20 failures instead of dead-lettering all 60.
    assert 10 <= loop.stats.dead_lettered < 60


def test_events_refused_for_crossing_tenants_are_dead_lettered_without_halting_the_consumer(
        settings_for, run_loop, unique):
    publish_all(settings_for("tests"), [scored(unique, f"c-{unique}", n) for n in range(1, 41)])

    def refuse_mine(event, publish):
        if event.org_id == unique:
            raise CrossTenantEvent("the client belongs to another organisation")

    # run_loop fails if the loop stops before its group has committed everything on the topic.
    loop = run_loop("tests", f"g-{unique}", {TOPIC: refuse_mine})

    assert not loop.halted
    mine = [r for r in read_topic(settings_for("tests").kafka_bootstrap, f"{TOPIC}.dlq")
            if r.key == f"c-{unique}".encode() and dict(r.headers)["consumer-group"] == f"g-{unique}".encode()]
    assert len(mine) == 40 and {dict(r.headers)["error-class"] for r in mine} == {b"CrossTenantEvent"}


def test_a_worker_serves_probes_and_metrics_and_stops_on_request(settings_for, unique):
    port = free_port()
    worker = Worker("referral", handlers={TOPIC: lambda e, p: None},
                    settings=settings_for("referral", worker_http_port=port, consumer_group=f"g-{unique}"))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _status(f"{base}/readyz") == 200, timeout_s=60)
        assert requests.get(f"{base}/healthz", timeout=2).status_code == 200
        metrics = requests.get(f"{base}/metrics", timeout=2).text
        assert "rapport_events_consumed_total" in metrics
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert not worker.ready


def test_a_worker_told_to_stop_before_its_loop_exists_still_stops(settings_for, unique):
    # SIGTERM can arrive while the worker is still connecting, before there is a loop to pass it on to.
    worker = Worker("referral", handlers={TOPIC: lambda e, p: None},
                    settings=settings_for("referral", consumer_group=f"g-{unique}"))
    worker.stop()
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    assert worker.loop is not None and not worker.ready


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.ConnectionError:
        return None  # not listening yet
