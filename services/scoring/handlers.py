"""Scoring's event handlers: plain functions, listed in EVENT_HANDLERS at the bottom.

Everything derived from an event has an id derived from it (scores: the event id; alerts: client, counselor,
session and rule; published events: the score or alert id), so a redelivery, or a replay of the topic into
a fresh database, produces the same documents and the same events, never new ones.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any, Iterable

from pymongo import UpdateOne

from services.common.events import Event, InvalidEvent, Topic, make_event
from services.common.kafka import BatchHandler
from services.common.mongo import update_each
from services.common.outbox import (Publish, PublishAll, insert_all_once, insert_once, outbox_entry,
                                    publish_pending, publish_pending_all)

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


def handle_feedback_batch(events: list[Event], publish_all: PublishAll) -> None:
    """Score one partition's feedback events of a poll, in order, with a handful of bulk round trips.

    Per event only the stored score is looked up (a point read: a redelivered event reuses what it wrote);
    each dyad is read once, alerts and scores are inserted in bulk, each dyad is updated once, conditional on
    the version it was read at, and every derived event goes out with one wait for the broker.
    """
    overrides = cache(ClinicAlertSettings.overrides_for)  # each clinic's rule overrides, read once a batch
    dyads: dict[str, _DyadProgress] = {}
    scores: list[SessionScore] = []
    assessed: list[tuple[Event, _Assessment]] = []
    for event in events:
        p = event.payload
        dyad_id = Dyad.key(event.org_id, event.clinic_id, p["client_id"], p["counselor_id"])
        if dyad_id not in dyads:
            dyads[dyad_id] = _DyadProgress.read(event)
        progress = dyads[dyad_id]
        stored = SessionScore.objects(id=event.event_id).first()
        if stored is not None:
            # After a crash the stored score applies its stored update, once: only on the version it was
            # computed on. Recomputing it from the dyad as it is now would count the session twice.
            if stored.trajectory_after and stored.dyad_version == progress.version:
                progress.advance(stored.id, stored.trajectory_after, stored.below_cutoff)
            scores.append(stored)
            continue
        assessment = _assess(event, progress, overrides(event.org_id, event.clinic_id))
        if assessment.trajectory_after is not None:
            progress.advance(event.event_id, assessment.trajectory_after, assessment.below_cutoff)
        assessed.append((event, assessment))
    raised = _insert_alerts([alert for _, a in assessed for alert in a.alerts])
    fresh = [_session_document(event, a, raised) for event, a in assessed]
    scores.extend(insert_all_once(fresh))
    _write_dyads(dyads.values())
    publish_pending_all(scores, publish_all)


@dataclass
class _DyadProgress:
    """A dyad as read at the start of a batch, and how far the batch's events have moved it."""

    org_id: str
    clinic_id: str
    client_id: str
    counselor_id: str
    stored_version: int
    version: int
    trajectory: dict | None
    last_event_id: str | None = None
    below_cutoff: bool = False

    @property
    def id(self) -> str:
        return Dyad.key(self.org_id, self.clinic_id, self.client_id, self.counselor_id)

    @classmethod
    def read(cls, event: Event) -> "_DyadProgress":
        p = event.payload
        progress = cls(event.org_id, event.clinic_id, p["client_id"], p["counselor_id"], 0, 0, None)
        dyad = Dyad.objects(id=progress.id).first()
        if dyad is not None:
            progress.stored_version = progress.version = dyad.version
            progress.trajectory = dict(dyad.trajectory)
        return progress

    def advance(self, event_id: str, trajectory: dict, below_cutoff: bool) -> None:
        self.version += 1
        self.trajectory, self.last_event_id, self.below_cutoff = trajectory, event_id, below_cutoff


@dataclass
class _Assessment:
    """What scoring one feedback event found, before anything is written."""

    instrument_id: str
    total: float
    mean: float
    subscales: dict
    baseline: dict
    common: dict
    late: bool
    below_cutoff: bool
    dyad_id: str
    dyad_version: int
    trajectory_after: dict | None
    scored: Event
    alerts: list[Alert]


def _assess(event: Event, dyad: _DyadProgress, overrides: dict) -> _Assessment:
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
    before = domain.Trajectory.from_dict(dyad.trajectory)
    late = before.is_late(p["session_number"])
    rules = rule_defaults().effective(instrument.id, overrides)
    found = domain.evaluate_alerts(instrument, score, rules, before, late)
    baseline = {"baseline_mean": before.total.mean if before.total.n else None, "baseline_sd": before.total.sd,
                "baseline_sessions": before.total.n, "previous_total": before.last_total}
    common = {"source_event_id": event.event_id, "client_id": p["client_id"], "counselor_id": p["counselor_id"],
              "session_number": p["session_number"], "instrument_id": instrument.id}
    subscales = dict(score.subscales)
    scored = _derived(event, Topic.ALLIANCE_SCORED, derived_id(Topic.ALLIANCE_SCORED, event.event_id), {
        **common, "score_id": event.event_id, "total": score.total, "mean": score.mean, "subscales": subscales,
        **baseline})
    return _Assessment(
        instrument_id=instrument.id, total=score.total, mean=score.mean, subscales=subscales, baseline=baseline,
        common=common, late=late,
        below_cutoff=instrument.cutoff_total is not None and score.total < instrument.cutoff_total,
        dyad_id=dyad.id, dyad_version=dyad.version,
        trajectory_after=None if late else before.advance(p["session_number"], score).to_dict(), scored=scored,
        alerts=[_alert_document(event, common, alert, score.total, subscales, baseline) for alert in found])


def _session_document(event: Event, a: _Assessment, raised: set[str]) -> SessionScore:
    p = event.payload
    ours = [alert for alert in a.alerts if (alert.id, alert.source_event_id) in raised]
    return SessionScore(
        id=event.event_id, org_id=event.org_id, clinic_id=event.clinic_id, client_id=p["client_id"],
        counselor_id=p["counselor_id"], session_number=p["session_number"], instrument_id=a.instrument_id,
        answers=dict(p["answers"]), total=a.total, mean=a.mean, subscales=a.subscales, **a.baseline,
        below_cutoff=a.below_cutoff, late=a.late, alerts=[_alert_record(alert) for alert in ours],
        dyad_id=a.dyad_id, dyad_version=a.dyad_version, trajectory_after=a.trajectory_after,
        submitted_at=event.occurred_at,
        pending_events=[outbox_entry(e, key=p["client_id"])
                        for e in (a.scored, *(_dropped_event(event, alert) for alert in ours))])


def _write_dyads(dyads: Iterable[_DyadProgress]) -> None:
    """Apply each dyad's progress once: a new dyad is inserted, a known one updated only at the version the
    batch read it at. A dyad that moved on in between (possible only if one of its events was dead-lettered
    and re-sent later) keeps its state: those scores stand, the baseline simply misses the session."""
    moved = [d for d in dyads if d.version != d.stored_version]
    collection = Dyad._get_collection()
    updates = [UpdateOne({"_id": d.id, "version": d.stored_version},
                         {"$set": {"version": d.version, "last_event_id": d.last_event_id,
                                   "trajectory": d.trajectory, "below_cutoff": d.below_cutoff}})
               for d in moved if d.stored_version]
    new = [d for d in moved if not d.stored_version]
    if updates:
        modified = update_each(collection, updates)
        if modified != len(updates):
            log.warning("%d dyads moved on during a batch; their trajectories were not updated",
                        len(updates) - modified)
    if new:
        stored = insert_all_once([
            Dyad(id=d.id, org_id=d.org_id, clinic_id=d.clinic_id, client_id=d.client_id,
                 counselor_id=d.counselor_id, version=d.version, last_event_id=d.last_event_id,
                 trajectory=d.trajectory, below_cutoff=d.below_cutoff) for d in new])
        concurrent = sum(1 for d, doc in zip(new, stored) if doc.last_event_id != d.last_event_id)
        if concurrent:
            log.warning("%d new dyads were created concurrently; their trajectories were not updated",
                        concurrent)


def handle_exit_interview_submitted(event: Event, publish: Publish) -> None:
    stored = ExitInterviewScore.objects(id=event.event_id).first() or insert_once(_score_exit_interview(event))
    publish_pending(stored, publish)


def _score_exit_interview(event: Event) -> ExitInterviewScore:
    p = event.payload
    score = domain.score_exit_interview(p)
    rules = rule_defaults().effective(None, ClinicAlertSettings.overrides_for(event.org_id, event.clinic_id))
    found = domain.evaluate_exit_interview(score, rules.get(domain.EXIT_INTERVIEW_RULE))
    common = {"source_event_id": event.event_id, "client_id": p["client_id"], "counselor_id": p["counselor_id"],
              "session_number": p["session_number"], "instrument_id": EXIT_INTERVIEW_SOURCE}
    baseline = {"baseline_mean": None, "baseline_sd": None, "baseline_sessions": 0, "previous_total": None}
    alerts = [_alert_document(event, common, found, score.fit, {}, baseline)] if found else []
    raised = _insert_alerts(alerts)
    ours = [alert for alert in alerts if (alert.id, alert.source_event_id) in raised]
    return ExitInterviewScore(
        id=event.event_id, org_id=event.org_id, clinic_id=event.clinic_id, client_id=p["client_id"],
        counselor_id=p["counselor_id"], session_number=p["session_number"], fit=score.fit,
        ratings=dict(score.ratings), wants_someone_else=score.wants_someone_else,
        alerts=[_alert_record(alert) for alert in ours], submitted_at=event.occurred_at,
        pending_events=[outbox_entry(_dropped_event(event, alert), key=p["client_id"]) for alert in ours])


def _alert_document(event: Event, common: dict, alert: domain.Alert, total: float, subscales: dict,
                    baseline: dict) -> Alert:
    return Alert(
        id=alert_id(event.org_id, common["client_id"], common["counselor_id"], common["session_number"],
                    alert.rule),
        org_id=event.org_id, clinic_id=event.clinic_id, **common, rule=alert.rule, dimension=alert.dimension,
        severity=alert.severity, total=total, threshold=alert.threshold, subscales=subscales, **baseline,
        raised_at=event.occurred_at)


def _insert_alerts(alerts: list[Alert]) -> set[tuple[str, str]]:
    """Store each alert once; returns (alert id, source event id) of those stored now or by the same event
    before. An alert that another submission for the same session raised first stays that one's."""
    return {(stored.id, stored.source_event_id) for stored in insert_all_once(alerts)}


def _alert_record(alert: Alert) -> AlertRecord:
    return AlertRecord(alert_id=alert.id, rule=alert.rule, dimension=alert.dimension, severity=alert.severity,
                       threshold=alert.threshold)


def _dropped_event(source: Event, alert: Alert) -> Event:
    return _derived(source, Topic.ALLIANCE_DROPPED, derived_id(Topic.ALLIANCE_DROPPED, alert.id), {
        "source_event_id": alert.source_event_id, "client_id": alert.client_id,
        "counselor_id": alert.counselor_id, "session_number": alert.session_number,
        "instrument_id": alert.instrument_id, "alert_id": alert.id, "rule": alert.rule,
        "dimension": alert.dimension, "severity": alert.severity, "total": alert.total,
        "threshold": alert.threshold, "subscales": alert.subscales, "baseline_mean": alert.baseline_mean,
        "baseline_sd": alert.baseline_sd, "baseline_sessions": alert.baseline_sessions,
        "previous_total": alert.previous_total})


def _derived(source: Event, type_: str, event_id: str, payload: dict) -> Event:
    # occurred_at is the source's: the derived fact happened when the client answered, and a replay then
    # produces byte-identical events.
    return make_event(type_, payload, org_id=source.org_id, clinic_id=source.clinic_id, producer=PRODUCER,
                      correlation_id=source.correlation_id, event_id=event_id, occurred_at=source.occurred_at)


EVENT_HANDLERS = {
    Topic.FEEDBACK_SUBMITTED.value: BatchHandler(handle_feedback_batch),
    Topic.EXIT_INTERVIEW_SUBMITTED.value: handle_exit_interview_submitted,
}
