"""The command bus and the typed payloads every service builds on: plain data, no broker or database."""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from marshmallow import ValidationError

from services.common.bus import MessageBus, inject_events
from services.common.events import AllianceDropped, IntakeSubmitted, Preferences, SubscaleScores
from services.common.kafka import BatchHandler


@dataclass(frozen=True)
class Ping:
    text: str


@dataclass(frozen=True)
class Unlisted:
    pass


def test_a_command_reaches_its_handler_with_only_the_dependencies_it_names():
    seen = []

    def ping(cmd: Ping, clock) -> str:
        seen.append(clock())
        return cmd.text.upper()

    bus = MessageBus({Ping: ping}, {"clock": lambda: "noon", "publish": print, "mailer": object()})
    assert bus.handle(Ping("hello")) == "HELLO" and seen == ["noon"]
    with pytest.raises(TypeError, match="no handler for Unlisted"):
        bus.handle(Unlisted())


def test_event_handlers_get_their_dependencies_and_a_batch_handler_stays_one():
    def single(event, publish, *, clock):
        publish(event, clock())

    def batch(events, publish_all, *, clock):
        publish_all([(e, clock()) for e in events])

    bound = inject_events({"a": single, "b": BatchHandler(batch)}, {"clock": lambda: 7, "config": "unused"})
    out = []
    bound["a"]("e1", lambda *message: out.append(message))
    assert isinstance(bound["b"], BatchHandler)
    bound["b"].handle(["e2", "e3"], out.extend)
    assert out == [("e1", 7), ("e2", 7), ("e3", 7)]


def test_a_payload_is_built_from_a_sources_attributes_and_checked_like_one_from_the_wire():
    stored = SimpleNamespace(id="a-1", source_event_id="e-1", client_id="cl-1", counselor_id="co-1",
                             session_number=4, instrument_id="wai-sr", kind="change", rules=["rupture"],
                             dimension="bond", severity="high", total=31.0, threshold=40.0, fall_sd=2.5,
                             subscales={"goal": 3.0, "task": 3.5, "bond": 2.0}, usual_subscales={}, baseline_mean=44.0,
                             baseline_sd=3.0, baseline_sessions=5, previous_total=43.0, raised_at="not a field")
    payload = AllianceDropped.of(stored, alert_id=stored.id)
    assert (payload.alert_id, payload.rules, payload.fall_sd) == ("a-1", ["rupture"], 2.5)
    assert payload.subscales == SubscaleScores(goal=3.0, task=3.5, bond=2.0)
    assert AllianceDropped.Schema().load(payload.to_wire()) == payload
    with pytest.raises(ValidationError) as refused:
        AllianceDropped.of(SimpleNamespace(**{**vars(stored), "client_id": "Jane Doe"}), alert_id="a-1")
    assert "client_id" in refused.value.messages


def test_optional_fields_default_alike_on_the_wire_and_in_code():
    made = IntakeSubmitted(intake_id="i-1", client_id="cl-1", concerns=["grief"])
    loaded = IntakeSubmitted.Schema().load({"intake_id": "i-1", "client_id": "cl-1", "concerns": ["grief"]})
    assert made == loaded and made.preferences == Preferences() and made.urgency == "routine"
    assert made.preferences is not IntakeSubmitted(intake_id="i-2", client_id="c", concerns=["grief"]).preferences
