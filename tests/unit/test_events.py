import json
import re

import pytest
from marshmallow import ValidationError, fields

from services.common import events
from services.common.events import InvalidEvent, Topic, decode_event, encode_event, make_event
from services.common.repair import ACTION_LABELS

INTAKE = {"intake_id": "i1", "client_id": "c1", "concerns": ["anxiety"]}


def intake_event(**payload):
    return make_event(Topic.INTAKE_SUBMITTED, {**INTAKE, **payload}, org_id="org1", clinic_id="clinic1",
                      producer="intake")


def test_round_trip_keeps_envelope_and_payload():
    event = intake_event(urgency="soon")
    decoded = decode_event(encode_event(event))
    assert decoded.event_id == event.event_id
    assert decoded.type == "intake.submitted" and decoded.version == 1
    assert decoded.org_id == "org1" and decoded.clinic_id == "clinic1"
    assert decoded.correlation_id == event.event_id  # a first event starts its own correlation
    assert decoded.payload.urgency == "soon"
    assert decoded.occurred_at.tzinfo is not None


def test_producer_rejects_unknown_payload_fields_naming_them():
    with pytest.raises(ValidationError) as error:
        intake_event(first_name="Avery")
    assert "first_name" in error.value.messages["payload"]


def test_producer_rejects_values_outside_the_vocabulary():
    with pytest.raises(ValidationError) as error:
        intake_event(concerns=["not-a-concern"])
    assert "concerns" in error.value.messages["payload"]


def test_consumer_ignores_unknown_fields_in_envelope_and_payload():
    raw = json.loads(encode_event(intake_event()))
    raw["added_later"] = 1
    raw["payload"]["also_added_later"] = "x"
    decoded = decode_event(json.dumps(raw).encode())
    assert not hasattr(decoded.payload, "also_added_later")


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b"\xff\xfe", None])
def test_undecodable_messages_are_invalid_events(raw):
    with pytest.raises(InvalidEvent):
        decode_event(raw)


def test_invalid_event_names_fields_but_never_quotes_values():
    raw = json.loads(encode_event(intake_event()))
    raw["payload"]["concerns"] = ["Jane Doe's secret"]
    with pytest.raises(InvalidEvent) as error:
        decode_event(json.dumps(raw).encode())
    assert "payload.concerns" in str(error.value)
    assert "Jane" not in str(error.value)


def test_unsupported_version_is_invalid():
    raw = json.loads(encode_event(intake_event()))
    raw["version"] = 99
    with pytest.raises(InvalidEvent, match="version 99"):
        decode_event(json.dumps(raw).encode())


def test_every_topic_has_a_schema_and_a_dead_letter_topic():
    assert {t for (t, _v) in events.PAYLOAD_SCHEMAS} == {t.value for t in Topic}
    assert set(events.all_topics()) == {t.value for t in Topic} | {f"{t.value}.dlq" for t in Topic}


# Field names that would carry a person's identity, contact details or free text.
PHI_FIELD = re.compile(r"name|email|phone|address|birth|dob|comment|note|text|contact", re.IGNORECASE)


def _field_names(schema_class, prefix=""):
    for name, field in schema_class().fields.items():
        yield f"{prefix}{name}"
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested):
            yield from _field_names(type(inner.schema), f"{prefix}{name}.")


@pytest.mark.parametrize("key", sorted(events.PAYLOAD_SCHEMAS))
def test_event_payloads_carry_no_phi_fields(key):
    leaking = [n for n in _field_names(events.PAYLOAD_SCHEMAS[key]) if PHI_FIELD.search(n)]
    assert leaking == [], f"{key} has fields that may carry PHI: {leaking}"


def test_ids_cannot_carry_free_text():
    with pytest.raises(ValidationError):
        intake_event(client_id="Jane Doe")


ALERT = {"alert_id": "a1", "source_event_id": "e1", "client_id": "c1", "counselor_id": "t1", "session_number": 5,
         "instrument_id": "session-rating-4", "severity": "high", "total": 20, "threshold": 30.5,
         "dimension": "task"}


def test_an_alert_is_one_event_listing_its_rules():
    event = make_event(Topic.ALLIANCE_DROPPED, {**ALERT, "kind": "change", "rules": ["rupture", "persistently_low"],
                                                "fall_sd": 3.2}, org_id="org1", clinic_id="k1", producer="scoring")
    decoded = decode_event(encode_event(event))
    assert decoded.version == 2 and decoded.payload.rules == ["rupture", "persistently_low"]
    with pytest.raises(ValidationError) as error:
        make_event(Topic.ALLIANCE_DROPPED, {**ALERT, "kind": "change", "rules": []}, org_id="org1", clinic_id="k1",
                   producer="scoring")
    assert "rules" in error.value.messages["payload"]


@pytest.mark.parametrize("rule, kind", [("rupture", "change"), ("below_cutoff", "level"),
                                        ("exit_interview_low_fit", "exit_interview")])
def test_a_version_1_alert_still_on_the_topic_is_read_as_the_current_version(rule, kind):
    raw = {"event_id": "x1", "type": "alliance.dropped", "version": 1, "occurred_at": "2026-11-02T10:00:00+00:00",
           "org_id": "org1", "clinic_id": "k1", "correlation_id": "x1", "producer": "scoring",
           "payload": {**ALERT, "rule": rule}}
    decoded = decode_event(json.dumps(raw).encode())
    assert decoded.version == 2
    assert (decoded.payload.rules, decoded.payload.kind) == ([rule], kind)
    assert not hasattr(decoded.payload, "rule")


def test_an_acknowledgement_carries_a_code_for_what_was_done_never_words():
    payload = {"alert_id": "a1", "client_id": "c1", "counselor_id": "t1", "acknowledged_by": "t1",
               "action": "reagreed_goals"}
    event = make_event(Topic.ALERT_ACKNOWLEDGED, payload, org_id="org1", clinic_id="k1", producer="notify")
    assert decode_event(encode_event(event)).payload.action == "reagreed_goals"
    with pytest.raises(ValidationError):
        make_event(Topic.ALERT_ACKNOWLEDGED, {**payload, "action": "We talked about her mother"}, org_id="org1",
                   clinic_id="k1", producer="notify")
    assert set(ACTION_LABELS) == set(events.REPAIR_ACTIONS)


def test_an_alert_states_each_dimensions_usual_level_and_one_without_it_still_reads():
    usual = {"goal": 8.0, "task": 6.5, "bond": None}
    event = make_event(Topic.ALLIANCE_DROPPED, {**ALERT, "kind": "change", "rules": ["rupture"],
                                                "subscales": {"goal": 4, "task": 6, "bond": 7},
                                                "usual_subscales": usual},
                       org_id="org1", clinic_id="k1", producer="scoring")
    decoded = decode_event(encode_event(event))
    assert decoded.payload.usual_subscales == events.SubscaleScores(**usual)
    # A version-2 event made before the field existed (still on the topic) reads, with no usual levels.
    raw = json.loads(encode_event(event))
    del raw["payload"]["usual_subscales"]
    older = decode_event(json.dumps(raw).encode())
    assert older.version == 2 and older.payload.usual_subscales == events.SubscaleScores()
    assert older.payload.subscales == events.SubscaleScores(goal=4, task=6, bond=7)


def test_a_version_1_alert_upcasts_without_usual_levels():
    raw = {"event_id": "x1", "type": "alliance.dropped", "version": 1, "occurred_at": "2026-11-02T10:00:00+00:00",
           "org_id": "org1", "clinic_id": "k1", "correlation_id": "x1", "producer": "scoring",
           "payload": {**ALERT, "rule": "rupture", "subscales": {"goal": 4}}}
    decoded = decode_event(json.dumps(raw).encode())
    assert decoded.version == 2 and decoded.payload.kind == "change"
    assert decoded.payload.usual_subscales == events.SubscaleScores()
    assert decoded.payload.subscales == events.SubscaleScores(goal=4)
    # The version-1 schema does not know the field: what a version-1 producer could not have sent is not read.
    assert "usual_subscales" not in events.PAYLOAD_SCHEMAS[(Topic.ALLIANCE_DROPPED.value, 1)]._declared_fields
