"""The consumer loop against the real broker and database: DLQ, idempotency, retries, commits."""
from __future__ import annotations

from pymongo.errors import AutoReconnect

from deploy.local.topic_reader import read_topic
from services.common.events import Topic, encode_event, make_event
from tests.support.kafka_reader import publish_all, send_raw

TOPIC = Topic.FEEDBACK_SUBMITTED.value


def feedback_event(org: str, session: int = 1):
    return make_event(TOPIC, {
        "feedback_id": f"f{session}", "client_id": f"client-{org}", "counselor_id": "counselor-1",
        "session_number": session, "instrument_id": "rapport-short",
        "answers": {"goal-1": 9, "task-1": 9, "bond-1": 9}}, org_id=org, clinic_id="clinic-1", producer="tests")


def recorder(org: str, calls: list):
    def handle(event, publish):
        if event.org_id == org:
            calls.append(event.event_id)
    return handle


def dlq_records(bootstrap: str, key: str, group: str):
    """What `group` dead-lettered of the messages with `key` (later tests' groups re-read earlier poison)."""
    return [r for r in read_topic(bootstrap, f"{TOPIC}.dlq")
            if r.key == key.encode() and dict(r.headers)["consumer-group"] == group.encode()]


def test_poison_message_goes_to_the_dlq_with_its_origin_and_the_next_message_is_processed(
        components, settings_for, run_loop, unique):
    send_raw(components.kafka_bootstrap, TOPIC, key=unique, value=b'{"not": "an event"')
    good = feedback_event(unique)
    publish_all(settings_for("tests"), [good])
    calls = []

    run_loop("scoring", f"g-{unique}", {TOPIC: recorder(unique, calls)})

    assert calls == [good.event_id]
    [dead] = dlq_records(components.kafka_bootstrap, unique, f"g-{unique}")
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.value == b'{"not": "an event"'
    assert headers["origin-topic"] == TOPIC
    assert headers["consumer-group"] == f"g-{unique}"
    assert headers["error-class"] == "InvalidEvent"
    assert int(headers["origin-offset"]) >= 0 and int(headers["origin-partition"]) in (0, 1, 2)


def test_schema_invalid_event_is_dead_lettered_naming_the_field(components, settings_for, run_loop, unique):
    broken = encode_event(feedback_event(unique)).replace(b'"session_number":1', b'"session_number":0')
    send_raw(components.kafka_bootstrap, TOPIC, key=unique, value=broken)
    calls = []

    run_loop("scoring", f"g-{unique}", {TOPIC: recorder(unique, calls)})

    assert calls == []
    [dead] = dlq_records(components.kafka_bootstrap, unique, f"g-{unique}")
    assert "payload.session_number" in dict(dead.headers)["error-message"].decode()


def test_duplicate_delivery_is_handled_once(components, settings_for, run_loop, unique):
    event = feedback_event(unique)
    publish_all(settings_for("tests"), [event, event])
    calls = []

    loop = run_loop("scoring", f"g-{unique}", {TOPIC: recorder(unique, calls)})

    assert calls == [event.event_id]
    assert loop.stats.skipped_duplicates >= 1


def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(components, settings_for, run_loop, unique):
    event = feedback_event(unique)
    publish_all(settings_for("tests"), [event])
    attempts = []

    def failing(e, publish):
        if e.org_id == unique:
            attempts.append(e.event_id)
            raise ZeroDivisionError("division by zero for Jane Doe")

    run_loop("scoring", f"g-{unique}", {TOPIC: failing}, consumer_max_attempts=3,
             consumer_retry_backoff_s=0.01)

    assert attempts == [event.event_id] * 3
    [dead] = dlq_records(components.kafka_bootstrap, f"client-{unique}", f"g-{unique}")
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["error-class"] == "ZeroDivisionError"
    assert "Jane" not in headers["error-message"]  # the exception text may hold data: never copied


def test_transient_failures_rewind_and_retry_without_skipping_or_dead_lettering(
        components, settings_for, run_loop, unique):
    first, second = feedback_event(unique, 1), feedback_event(unique, 2)
    publish_all(settings_for("tests"), [first, second])
    seen, failures = [], []

    def flaky(e, publish):
        if e.org_id != unique:
            return
        if len(failures) < 2:
            failures.append(e.event_id)
            raise AutoReconnect("database went away")
        seen.append(e.event_id)

    loop = run_loop("scoring", f"g-{unique}", {TOPIC: flaky}, consumer_retry_backoff_s=0.05)

    assert seen == [first.event_id, second.event_id]  # same key, same partition: order kept
    assert loop.stats.transient_failures == 2
    assert dlq_records(components.kafka_bootstrap, f"client-{unique}", f"g-{unique}") == []
