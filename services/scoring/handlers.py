"""Scoring's event handlers: plain functions, listed in EVENT_HANDLERS at the bottom.

Everything derived from an event has an id derived from it (scores: the event id; alerts: client, counselor,
session and rule; published events: the score or alert id), so a redelivery, or a replay of the topic into
a fresh database, produces the same documents and the same events, never new ones.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any

from mongoengine import NotUniqueError
from pymongo.errors import DuplicateKeyError

from services.common.events import Event, InvalidEvent, Topic, make_event
from services.common.outbox import Publish, insert_once, outbox_entry, publish_pending

from . import domain
from .instruments import shipped_instruments
from .models import Alert, AlertRecord, ClinicAlertSettings, Dyad, ExitInterviewScore, SessionScore
from .rules import rule_defaults

log = logging.getLogger(__name__)
PRODUCER = "scoring"
EXIT_INTERVIEW_SOURCE = "exit-interview"  # instrument_id of alerts raised by an exit interview
_ID_NAMESPACE = uuid.UUID("5b0c2f7e-6a53-4d0e-9d7a-2f1e0f3c8a41")


def derived_id(*parts: Any) -> str:
    """A stable id for something derived from the given parts (uuid5): the same on every redelivery."""
    return uuid.uuid5(_ID_NAMESPACE, "|".join(str(p) for p in parts)).hex


def alert_id(org_id: str, client_id: str, counselor_id: str, session_number: int, rule: str) -> str:
    return derived_id("alert", org_id, client_id, counselor_id, session_number, rule)


def handle_feedback_submitted(event: Event, publish: Publish) -> None:
    score = SessionScore.objects(id=event.event_id).first() or insert_once(_score_session(event))
    _apply_to_dyad(score)
    # After a crash between the write and the publish, the redelivered event lands here with the stored
    # document and publishes what it still holds: the same events, with the same ids.
    publish_pending(score, publish)


def _score_session(event: Event) -> SessionScore:
    p = event.payload
    instrument = shipped_instruments().get(p["instrument_id"])
    if instrument is None:
        raise InvalidEvent(f"unknown instrument {p['instrument_id']}")
    try:
        score = domain.score_answers(instrument, p["answers"])
    except domain.InvalidAnswers as exc:
        raise InvalidEvent(str(exc)) from None
    # The dyad is keyed by clinic too: a client seen in two clinics has two trajectories, and an event can
    # never touch a trajectory of another organisation or clinic.
    dyad_id = Dyad.key(event.org_id, event.clinic_id, p["client_id"], p["counselor_id"])
    dyad = Dyad.objects(id=dyad_id).first()
    before = domain.Trajectory.from_dict(dyad.trajectory if dyad else None)
    late = before.is_late(p["session_number"])
    rules = rule_defaults().effective(instrument.id, ClinicAlertSettings.overrides_for(event.org_id, event.clinic_id))
    alerts = domain.evaluate_alerts(instrument, score, rules, before, late)
    baseline = {"baseline_mean": before.total.mean if before.total.n else None, "baseline_sd": before.total.sd,
                "baseline_sessions": before.total.n, "previous_total": before.last_total}
    common = {"source_event_id": event.event_id, "client_id": p["client_id"], "counselor_id": p["counselor_id"],
              "session_number": p["session_number"], "instrument_id": instrument.id}
    subscales = dict(score.subscales)
    scored = _derived(event, Topic.ALLIANCE_SCORED, derived_id(Topic.ALLIANCE_SCORED, event.event_id), {
        **common, "score_id": event.event_id, "total": score.total, "mean": score.mean, "subscales": subscales,
        **baseline})
    records, dropped = _raise_alerts(event, common, alerts, score.total, subscales, baseline)
    return SessionScore(
        id=event.event_id, org_id=event.org_id, clinic_id=event.clinic_id, client_id=p["client_id"],
        counselor_id=p["counselor_id"], session_number=p["session_number"], instrument_id=instrument.id,
        answers=dict(p["answers"]), total=score.total, mean=score.mean, subscales=subscales, **baseline,
        below_cutoff=instrument.cutoff_total is not None and score.total < instrument.cutoff_total,
        late=late, alerts=records, dyad_id=dyad_id, dyad_version=dyad.version if dyad else 0,
        trajectory_after=None if late else before.advance(p["session_number"], score).to_dict(),
        submitted_at=event.occurred_at,
        pending_events=[outbox_entry(e, key=p["client_id"]) for e in (scored, *dropped)])


def _raise_alerts(event: Event, common: dict, alerts: list[domain.Alert], total: float, subscales: dict,
                  baseline: dict) -> tuple[list[AlertRecord], list[Event]]:
    """Store each alert once; only the event that raised an alert first publishes it."""
    records, dropped = [], []
    for alert in alerts:
        stored = insert_once(Alert(
            id=alert_id(event.org_id, common["client_id"], common["counselor_id"], common["session_number"],
                        alert.rule),
            org_id=event.org_id, clinic_id=event.clinic_id, **common, rule=alert.rule, dimension=alert.dimension,
            severity=alert.severity, total=total, threshold=alert.threshold, subscales=subscales,
            **baseline, raised_at=event.occurred_at))
        if stored.source_event_id != event.event_id:
            continue  # raised already by another submission for the same session
        records.append(AlertRecord(alert_id=stored.id, rule=alert.rule, dimension=alert.dimension,
                                   severity=alert.severity, threshold=alert.threshold))
        dropped.append(_derived(event, Topic.ALLIANCE_DROPPED, derived_id(Topic.ALLIANCE_DROPPED, stored.id), {
            **common, "alert_id": stored.id, "rule": alert.rule, "dimension": alert.dimension,
            "severity": alert.severity, "total": total, "threshold": alert.threshold, "subscales": subscales,
            **baseline}))
    return records, dropped


def _apply_to_dyad(score: SessionScore) -> None:
    """Apply the score's stored trajectory update once: conditional on the dyad version it was computed on."""
    if not score.trajectory_after:
        return  # a late session: scored and checked against the cutoff, but not part of the trajectory
    if score.dyad_version == 0:
        try:
            Dyad(id=score.dyad_id, org_id=score.org_id, clinic_id=score.clinic_id, client_id=score.client_id,
                 counselor_id=score.counselor_id, version=1, last_event_id=score.id,
                 trajectory=score.trajectory_after, below_cutoff=score.below_cutoff).save(force_insert=True)
            return
        except (NotUniqueError, DuplicateKeyError):
            pass
    else:
        updated = Dyad.objects(id=score.dyad_id, version=score.dyad_version).update_one(
            set__version=score.dyad_version + 1, set__last_event_id=score.id,
            set__trajectory=score.trajectory_after, set__below_cutoff=score.below_cutoff)
        if updated:
            return
    dyad = Dyad.objects(id=score.dyad_id).only("last_event_id", "version").first()
    if dyad is not None and dyad.last_event_id != score.id:
        # Another feedback event was applied in between (possible only if this one was dead-lettered and
        # re-sent later): its scores stand, the baseline simply misses this session.
        log.warning("dyad %s moved on past event %s; trajectory not updated", score.dyad_id, score.id)


def handle_exit_interview_submitted(event: Event, publish: Publish) -> None:
    stored = ExitInterviewScore.objects(id=event.event_id).first() or insert_once(_score_exit_interview(event))
    publish_pending(stored, publish)


def _score_exit_interview(event: Event) -> ExitInterviewScore:
    p = event.payload
    score = domain.score_exit_interview(p)
    rules = rule_defaults().effective(None, ClinicAlertSettings.overrides_for(event.org_id, event.clinic_id))
    alert = domain.evaluate_exit_interview(score, rules.get(domain.EXIT_INTERVIEW_RULE))
    common = {"source_event_id": event.event_id, "client_id": p["client_id"], "counselor_id": p["counselor_id"],
              "session_number": p["session_number"], "instrument_id": EXIT_INTERVIEW_SOURCE}
    baseline = {"baseline_mean": None, "baseline_sd": None, "baseline_sessions": 0, "previous_total": None}
    records, dropped = _raise_alerts(event, common, [alert] if alert else [], score.fit, {}, baseline)
    return ExitInterviewScore(
        id=event.event_id, org_id=event.org_id, clinic_id=event.clinic_id, client_id=p["client_id"],
        counselor_id=p["counselor_id"], session_number=p["session_number"], fit=score.fit,
        ratings=dict(score.ratings), wants_someone_else=score.wants_someone_else, alerts=records,
        submitted_at=event.occurred_at, pending_events=[outbox_entry(e, key=p["client_id"]) for e in dropped])


def _derived(source: Event, type_: str, event_id: str, payload: dict) -> Event:
    # occurred_at is the source's: the derived fact happened when the client answered, and a replay then
    # produces byte-identical events.
    return make_event(type_, payload, org_id=source.org_id, clinic_id=source.clinic_id, producer=PRODUCER,
                      correlation_id=source.correlation_id, event_id=event_id, occurred_at=source.occurred_at)


EVENT_HANDLERS = {
    Topic.FEEDBACK_SUBMITTED.value: handle_feedback_submitted,
    Topic.EXIT_INTERVIEW_SUBMITTED.value: handle_exit_interview_submitted,
}
