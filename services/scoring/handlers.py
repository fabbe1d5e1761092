"""Scoring's handlers: plain functions, listed in COMMAND_HANDLERS and EVENT_HANDLERS at the bottom.

Everything derived from an event has an id derived from it (scores: the event id; alerts: client, counselor,
session and source; published events: the score or alert id), so a redelivery, or a replay of the topic into
a fresh database, produces the same documents and the same events, never new ones.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Iterable

from pymongo import UpdateOne

from services.common import sessions
from services.common.bus import Clock
from services.common.events import (AllianceDropped, AllianceScored, CrossTenantEvent, Event, InvalidEvent, Payload,
                                    SubscaleScores, Topic, derived_id, make_event)
from services.common.kafka import BatchHandler
from services.common.mongo import update_each
from services.common.outbox import (Publish, PublishAll, insert_all_once, insert_once, outbox_entry,
                                    publish_pending, publish_pending_all)

from services.scoring.commands import UpdateAlertSettings
from services.scoring.domain import alerting, instruments as domain
from services.scoring.adapters.calibrations import calibration_for
from services.scoring.adapters.instruments import shipped_instruments
from services.scoring.adapters.models import (Alert, AlertRecord, ClinicAlertSettings, Dyad, ScoredExitInterview,
                                              OutcomeRecord, ScoredSession)
from services.scoring.adapters.rules import effective_settings
from services.scoring.queries import clinic_settings

log = logging.getLogger(__name__)
PRODUCER = "scoring"
EXIT_INTERVIEW_SOURCE = "exit-interview"  # instrument_id of alerts raised by an exit interview
SESSION_SOURCE = "session"
_ID_NAMESPACE = uuid.UUID("5b0c2f7e-6a53-4d0e-9d7a-2f1e0f3c8a41")


def alert_id(org_id: str, client_id: str, counselor_id: str, session_number: int, source: str) -> str:
    """One alert per session of a dyad and source (the session's feedback, or its exit interview)."""
    return derived_id(_ID_NAMESPACE, "alert", org_id, client_id, counselor_id, session_number, source)


def handle_feedback_batch(events: list[Event], publish_all: PublishAll) -> None:
    """Score one partition's feedback events of a poll, in order, with a handful of bulk round trips.

    Per event only the stored score is looked up (a point read: a redelivered event reuses what it wrote);
    each dyad is read once, alerts and scores are inserted in bulk, each dyad is updated once, conditional on
    the version it was read at, and every derived event goes out with one wait for the broker.
    """
    settings_of = cache(clinic_settings)  # each clinic's settings and calibration, read once a batch
    scale_of = cache(lambda org, clinic, instrument: calibration_for(
        org, clinic, instrument, settings_of(org, clinic)["rules"]).scale_for(
        alerting.Budget.of(settings_of(org, clinic)).false_alerts_per_counselor_month))
    dyads: dict[str, _DyadProgress] = {}
    scores: list[ScoredSession] = []
    assessed: list[tuple[Event, _Assessment]] = []
    outcomes: list[OutcomeRecord] = []
    for event in events:
        p = event.payload
        dyad_id = Dyad.key(event.org_id, event.clinic_id, p.client_id, p.counselor_id)
        if dyad_id not in dyads:
            dyads[dyad_id] = _DyadProgress.read(event)
        progress = dyads[dyad_id]
        stored = ScoredSession.objects(id=event.event_id).first()
        if stored is not None:
            # After a crash the stored score applies its stored update, once: only on the version it was
            # computed on. Recomputing it from the dyad as it is now would count the session twice.
            if stored.trajectory_after and stored.dyad_version == progress.version:
                progress.advance(stored.id, stored.trajectory_after, stored.below_cutoff)
            scores.append(stored)
            outcomes.extend(stored.outcomes)
            continue
        instrument = _instrument(p.instrument_id)
        settings = settings_of(event.org_id, event.clinic_id)
        assessment = _assess(event, instrument, progress, settings["rules"],
                             scale_of(event.org_id, event.clinic_id, instrument))
        if assessment.trajectory_after is not None:
            progress.advance(event.event_id, assessment.trajectory_after, assessment.result.below_cutoff)
        assessed.append((event, assessment))
        outcomes.extend(assessment.outcomes)
    raised = _insert_alerts([a.alert for _, a in assessed if a.alert is not None])
    fresh = [_session_document(event, a, raised) for event, a in assessed]
    scores.extend(insert_all_once(fresh))
    _record_outcomes(outcomes)
    _write_dyads(dyads.values())
    publish_pending_all(scores, publish_all)


def _instrument(instrument_id: str) -> domain.Instrument:
    instrument = shipped_instruments().get(instrument_id)
    if instrument is None:
        raise InvalidEvent(f"unknown instrument {instrument_id}")
    return instrument


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
        progress = cls(event.org_id, event.clinic_id, p.client_id, p.counselor_id, 0, 0, None)
        dyad = Dyad.objects(id=progress.id).first()
        if dyad is not None:
            progress.stored_version = progress.version = dyad.version
            progress.trajectory = dict(dyad.trajectory) if "recent" in (dyad.trajectory or {}) else (
                _history_from_scores(progress.id).to_dict())
        return progress

    def advance(self, event_id: str, trajectory: dict, below_cutoff: bool) -> None:
        self.version += 1
        self.trajectory, self.last_event_id, self.below_cutoff = trajectory, event_id, below_cutoff


def _history_from_scores(dyad_id: str) -> alerting.DyadHistory:
    """A dyad stored by an earlier version (running sums only) gets its window back from its stored
    sessions, once: its baseline then starts where its sessions are, not from nothing."""
    window = effective_settings(None)["rules"][alerting.RUPTURE]["window"]
    stored = list(ScoredSession.objects(dyad_id=dyad_id, late=False).only(
        "session_number", "total", "subscales", "below_cutoff").order_by("session_number"))
    history = alerting.DyadHistory()
    for s in stored:
        previous = history.previous
        history = alerting.DyadHistory(
            recent=(*history.recent, alerting.Point(s.session_number, s.total, dict(s.subscales)))[-(window + 1):],
            last_session_number=s.session_number,
            falls_in_a_row=history.falls_in_a_row + 1 if previous and s.total < previous.total else 0,
            below_run=history.below_run + 1 if s.below_cutoff else 0)
    return history


@dataclass
class _Assessment:
    """What scoring one feedback event found, before anything is written."""

    instrument_id: str
    score: domain.SessionScore
    result: alerting.Assessment
    baseline: dict
    common: dict
    dyad_id: str
    dyad_version: int
    trajectory_after: dict | None
    scored: Event
    alert: Alert | None
    outcomes: list[OutcomeRecord] = field(default_factory=list)


def _assess(event: Event, instrument: domain.Instrument, dyad: _DyadProgress, rules: dict,
            scale: alerting.AlertScale) -> _Assessment:
    p = event.payload
    try:
        score = domain.score_answers(instrument, p.answers)
    except domain.InvalidAnswers as exc:
        raise InvalidEvent(str(exc)) from None
    # The dyad is keyed by clinic too: a client seen in two clinics has two trajectories, and an event can
    # never touch a trajectory of another organisation or clinic.
    before = alerting.DyadHistory.from_dict(dyad.trajectory)
    result = alerting.assess(instrument, score, p.session_number, before, rules, scale)
    fall = result.fall
    baseline = {"baseline_mean": fall.baseline_mean if fall else None, "baseline_sd": fall.baseline_sd if fall else None,
                "baseline_sessions": fall.sessions if fall else 0,
                "previous_total": before.previous.total if before.previous else None}
    common = {"source_event_id": event.event_id, "client_id": p.client_id, "counselor_id": p.counselor_id,
              "session_number": p.session_number, "instrument_id": instrument.id}
    subscales = dict(score.subscales)
    scored = _derived(event, Topic.ALLIANCE_SCORED, derived_id(_ID_NAMESPACE, Topic.ALLIANCE_SCORED, event.event_id),
                      AllianceScored(**common, score_id=event.event_id, total=score.total, mean=score.mean,
                                     subscales=SubscaleScores(**subscales), **baseline))
    alert = (_alert_document(event, common, result.alert, score.total, subscales, baseline, SESSION_SOURCE)
             if result.alert is not None else None)
    outcomes = [OutcomeRecord(alert_id=alert_id(event.org_id, p.client_id, p.counselor_id, o.session_number,
                                                SESSION_SOURCE), recovered=o.recovered, at_session=o.at_session)
                for o in result.outcomes]
    return _Assessment(
        instrument_id=instrument.id, score=score, result=result, baseline=baseline, common=common,
        dyad_id=dyad.id, dyad_version=dyad.version,
        trajectory_after=None if result.late else result.after.to_dict(), scored=scored, alert=alert,
        outcomes=outcomes)


def _session_document(event: Event, a: _Assessment, raised: set[tuple[str, str]]) -> ScoredSession:
    p = event.payload
    ours = a.alert if a.alert is not None and (a.alert.id, a.alert.source_event_id) in raised else None
    return ScoredSession(
        id=event.event_id, org_id=event.org_id, clinic_id=event.clinic_id, client_id=p.client_id,
        counselor_id=p.counselor_id, session_number=p.session_number, instrument_id=a.instrument_id,
        answers=dict(p.answers), total=a.score.total, mean=a.score.mean, subscales=dict(a.score.subscales),
        **a.baseline, below_cutoff=a.result.below_cutoff, fall_sd=a.result.fall.z if a.result.fall else None,
        late=a.result.late, alert=_alert_record(ours) if ours else None, outcomes=a.outcomes,
        dyad_id=a.dyad_id, dyad_version=a.dyad_version, trajectory_after=a.trajectory_after,
        submitted_at=event.occurred_at,
        pending_events=[outbox_entry(e, key=p.client_id)
                        for e in (a.scored, *([_dropped_event(event, ours)] if ours else []))])


def _record_outcomes(outcomes: Iterable[OutcomeRecord]) -> None:
    """The sessions after an alert tell whether the alliance recovered; the first answer stands."""
    updates = [UpdateOne({"_id": o.alert_id, "outcome": "pending"},
                         {"$set": {"outcome": "recovered" if o.recovered else "not_recovered",
                                   "outcome_session": o.at_session}}) for o in outcomes]
    if updates:
        update_each(Alert._get_collection(), updates)


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
    stored = ScoredExitInterview.objects(id=event.event_id).first() or insert_once(_score_exit_interview(event))
    publish_pending(stored, publish)


def _score_exit_interview(event: Event) -> ScoredExitInterview:
    p = event.payload
    score = alerting.score_exit_interview(p)
    rules = clinic_settings(event.org_id, event.clinic_id)["rules"]
    found = alerting.evaluate_exit_interview(score, rules.get(alerting.EXIT_INTERVIEW_RULE))
    common = {"source_event_id": event.event_id, "client_id": p.client_id, "counselor_id": p.counselor_id,
              "session_number": p.session_number, "instrument_id": EXIT_INTERVIEW_SOURCE}
    baseline = {"baseline_mean": None, "baseline_sd": None, "baseline_sessions": 0, "previous_total": None}
    alert = (_alert_document(event, common, found, score.fit, {}, baseline, EXIT_INTERVIEW_SOURCE)
             if found else None)
    raised = _insert_alerts([alert] if alert else [])
    ours = alert if alert is not None and (alert.id, alert.source_event_id) in raised else None
    return ScoredExitInterview(
        id=event.event_id, org_id=event.org_id, clinic_id=event.clinic_id, client_id=p.client_id,
        counselor_id=p.counselor_id, session_number=p.session_number, fit=score.fit,
        ratings=dict(score.ratings), wants_someone_else=score.wants_someone_else,
        alert=_alert_record(ours) if ours else None, submitted_at=event.occurred_at,
        pending_events=[outbox_entry(_dropped_event(event, ours), key=p.client_id)] if ours else [])


def handle_alert_acknowledged(event: Event, publish: Publish) -> None:
    """What the counselor did about an alert, for the clinic's view of which repairs work. The first
    acknowledgement stands."""
    p = event.payload
    found = Alert.objects(id=p.alert_id).only("org_id").first()
    if found is None:
        log.warning("acknowledgement of an alert scoring does not know: ignored")
        return
    if found.org_id != event.org_id:
        raise CrossTenantEvent("alert.acknowledged: an alert of another organisation")
    Alert.objects(id=p.alert_id, acknowledged_at=None).update_one(
        set__acknowledged_at=event.occurred_at, set__action=p.action)


def _alert_document(event: Event, common: dict, alert: alerting.AlertDecision, total: float, subscales: dict,
                    baseline: dict, source: str) -> Alert:
    return Alert(
        id=alert_id(event.org_id, common["client_id"], common["counselor_id"], common["session_number"], source),
        org_id=event.org_id, clinic_id=event.clinic_id, **common, kind=alert.kind, rules=list(alert.rules),
        dimension=alert.dimension, severity=alert.severity, total=total, threshold=alert.threshold,
        fall_sd=alert.fall.z if alert.fall is not None and alert.kind == alerting.CHANGE else None,
        subscales=subscales, usual_subscales=dict(alert.usual_subscales), **baseline, raised_at=event.occurred_at)


def _insert_alerts(alerts: list[Alert]) -> set[tuple[str, str]]:
    """Store each alert once; returns (alert id, source event id) of those stored now or by the same event
    before. An alert that another submission for the same session raised first stays that one's."""
    return {(stored.id, stored.source_event_id) for stored in insert_all_once(alerts)}


def _alert_record(alert: Alert) -> AlertRecord:
    return AlertRecord(alert_id=alert.id, kind=alert.kind, rules=list(alert.rules), dimension=alert.dimension,
                       severity=alert.severity, threshold=alert.threshold)


def _dropped_event(source: Event, alert: Alert) -> Event:
    return _derived(source, Topic.ALLIANCE_DROPPED, derived_id(_ID_NAMESPACE, Topic.ALLIANCE_DROPPED, alert.id),
                    AllianceDropped.of(alert, alert_id=alert.id))


def _derived(source: Event, type_: str, event_id: str, payload: Payload) -> Event:
    # occurred_at is the source's: the derived fact happened when the client answered, and a replay then
    # produces byte-identical events.
    return make_event(type_, payload, org_id=source.org_id, clinic_id=source.clinic_id, producer=PRODUCER,
                      correlation_id=source.correlation_id, event_id=event_id, occurred_at=source.occurred_at)


def update_alert_settings(cmd: UpdateAlertSettings, clock: Clock) -> None:
    """Replace a clinic's overrides; from the next scored session on they apply. ValidationError naming the
    field when they cannot work together with the defaults (nothing is stored then)."""
    effective_settings(cmd.overrides)
    ClinicAlertSettings.objects(id=ClinicAlertSettings.key(cmd.identity.org_id, cmd.clinic_id)).update_one(
        upsert=True, set__org_id=cmd.identity.org_id, set__clinic_id=cmd.clinic_id,
        set__budget=cmd.overrides.get("budget") or {}, set__rules=cmd.overrides.get("rules") or {},
        set__updated_by=cmd.identity.staff_id, set__updated_at=clock())


COMMAND_HANDLERS = {
    UpdateAlertSettings: update_alert_settings,
}

EVENT_HANDLERS = {
    Topic.FEEDBACK_SUBMITTED.value: BatchHandler(handle_feedback_batch),
    Topic.EXIT_INTERVIEW_SUBMITTED.value: handle_exit_interview_submitted,
    Topic.ALERT_ACKNOWLEDGED.value: handle_alert_acknowledged,
    # Which staff tokens are revoked, for this service's API (services/common/sessions.py).
    Topic.STAFF_UPDATED.value: sessions.handle_staff_updated,
}
