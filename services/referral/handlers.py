"""Referral's handlers: plain functions, listed in EVENT_HANDLERS and COMMAND_HANDLERS at the bottom.

Events keep referral's view of the world (read by queries.py) and trigger recommendations; commands decide
them.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from datetime import datetime
from typing import Any, Callable

import mongoengine as me
from mongoengine.queryset.visitor import Q
from pymongo.errors import DuplicateKeyError

from services.common import sessions
from services.common.auth import Identity
from services.common.bus import Clock
from services.common.events import Event, InvalidEvent, Topic, decode_event, derived_id, make_event
from services.common.outbox import Publish, insert_once, outbox_entry, publish_or_defer, publish_pending

from services.referral import domain, queries
from services.referral import outcomes
from services.referral.commands import AcceptReferral, DeclineReferral
from services.referral.adapters import directory_cache
from services.referral.adapters.config import matching_config, outcome_config
from services.referral.adapters.models import ReferralOutcome
from services.referral.adapters.models import (CandidateRecord, ClientAllianceRecord, ClientView, CounselorFit,
                                               CounselorView, IntakeView, ParkedEvent, Referral, StrengthRecord)

PRODUCER = "referral"
# Referral ids derive from the trigger event's id, so a redelivered trigger finds its referral.
REFERRAL_NAMESPACE = uuid.UUID("6f1c1f0e-8a40-4f8e-9d7a-0c9b8e2f5a11")
# A supersession's event id derives from the assignment and the referral it closes.
SUPERSEDED_NAMESPACE = uuid.UUID("b3f0a7d2-6c1e-4f59-8e2a-91d4c7b05e63")

log = logging.getLogger(__name__)


def referral_id_for(trigger_event_id: str) -> str:
    return derived_id(REFERRAL_NAMESPACE, trigger_event_id)


# --- referral's view of the world, kept from events ---------------------------------------------------
# Every update is idempotent on its own (a redelivered event changes nothing) and checks that the event's
# organisation is the one the entity belongs to.

def handle_counselor_updated(event: Event, publish: Publish) -> None:
    _apply_counselor_snapshot(event)
    # After the write: the next recommendation in every process reads this counselor again (an older
    # snapshot that changed nothing, or a redelivery, costs one extra read, never a stale counselor).
    directory_cache.counselors_changed(event.org_id, event.payload.counselor_id)


def handle_client_assigned(event: Event, publish: Publish) -> None:
    """Keep the client's counselor, then close as superseded every open referral of the client that was
    made for another counselor than the client's now (see domain.superseded_by_assignment); an accepted
    referral's assignment starts following how it works out (_follow_referral)."""
    _record_assignment(event)
    client = ClientView.objects.get(id=event.payload.client_id)
    for referral in Referral.objects(org_id=client.org_id, client_id=client.id, status=domain.OPEN):
        if domain.superseded_by_assignment(referral.status, referral.current_counselor_id, client.counselor_id):
            try:
                _supersede(referral, event, client.counselor_id, publish)
            except domain.ReferralNotOpen:
                pass  # a supervisor decided it in the meantime: that decision stands
    _follow_referral(event, client)


def _supersede(referral: Referral, assigned: Event, counselor_id: str | None, publish: Publish) -> None:
    """Close the referral and announce it (`referral.decided`, decision superseded) so notify stops showing
    it as open. The event's id derives from the assignment and the referral: a redelivered client.assigned
    finds the referral closed and makes nothing."""
    p = assigned.payload
    decided = make_event(Topic.REFERRAL_DECIDED, {
        "referral_id": referral.id, "client_id": referral.client_id, "decision": domain.SUPERSEDED,
        "decided_by": p.assigned_by, "previous_counselor_id": referral.current_counselor_id,
        "new_counselor_id": counselor_id,
    }, org_id=referral.org_id, clinic_id=referral.clinic_id, producer=PRODUCER,
        correlation_id=referral.correlation_id, occurred_at=assigned.occurred_at,
        event_id=derived_id(SUPERSEDED_NAMESPACE, assigned.event_id, referral.id))
    _close(referral, decided, decided_by=p.assigned_by, decided_at=assigned.occurred_at, publish=publish)


def handle_alliance_scored(event: Event, publish: Publish) -> None:
    p = event.payload
    queries.check_counselor_org(event, p.counselor_id)
    value = queries.normalised_total(p.instrument_id, p.total)
    client = _known_client_or_park(event)
    if client is not None:
        _record_session(event.org_id, p.counselor_id, client, p.score_id, value)
        _record_outcome_session(event, client, value)


# Optimistic updates of one counselor's fit that lose to concurrent writers this often give up (and the
# consumer loop retries the event).
FIT_UPDATE_ATTEMPTS = 10


class ConcurrentUpdate(RuntimeError):
    """Another writer kept changing the same document; the event is retried."""


COUNSELOR_FIELDS = ("clinic_ids", "specialties", "languages", "modalities", "weekly_capacity", "caseload",
                    "accepting_new_clients", "supervisor_id", "gender", "active")


def _apply_counselor_snapshot(event: Event) -> None:
    """Store the snapshot unless a newer one is stored already."""
    p = event.payload
    values = {f"set__{name}": getattr(p, name) for name in COUNSELOR_FIELDS}
    not_newer = CounselorView.objects(id=p.counselor_id, org_id=event.org_id, as_of__lte=event.occurred_at)
    if not_newer.update_one(set__as_of=event.occurred_at, **values):
        return
    try:
        CounselorView(id=p.counselor_id, org_id=event.org_id, as_of=event.occurred_at,
                      **{name: getattr(p, name) for name in COUNSELOR_FIELDS}).save(force_insert=True)
    except (me.NotUniqueError, DuplicateKeyError):
        # Stored already: by another organisation (refused), or a newer snapshot (this one is ignored).
        queries.same_org(CounselorView.objects(id=p.counselor_id).only("org_id").first().org_id, event)


def _client_view(event: Event, client_id: str) -> ClientView:
    """The client's view, created empty in the event's organisation if new; CrossTenantEvent if the client
    belongs to another organisation."""
    ClientView.objects(id=client_id).update_one(upsert=True, set_on_insert__org_id=event.org_id)
    view = ClientView.objects.get(id=client_id)
    queries.same_org(view.org_id, event)
    return view


def _record_intake(event: Event) -> ClientView:
    p = event.payload
    _client_view(event, p.client_id)
    ClientView.objects(id=p.client_id).update_one(
        set__clinic_id=event.clinic_id, set__intake_id=p.intake_id, set__concerns=list(p.concerns),
        set__preferences=p.preferences.to_wire())
    if p.assigned_counselor_id:
        _assign_counselor(p.client_id, p.assigned_counselor_id, event.occurred_at)
    return ClientView.objects.get(id=p.client_id)


def _record_assignment(event: Event) -> None:
    p = event.payload
    queries.check_counselor_org(event, p.counselor_id)
    _client_view(event, p.client_id)
    if p.concerns:
        ClientView.objects(id=p.client_id).update_one(set__concerns=list(p.concerns))
    ClientView.objects(id=p.client_id, clinic_id=None).update_one(set__clinic_id=event.clinic_id)
    _assign_counselor(p.client_id, p.counselor_id, event.occurred_at)


def _assign_counselor(client_id: str, counselor_id: str, at: datetime) -> None:
    """Set the client's counselor unless a later assignment is stored already."""
    not_newer = Q(counselor_since=None) | Q(counselor_since__lte=at)
    ClientView.objects(Q(id=client_id) & not_newer).update_one(set__counselor_id=counselor_id,
                                                                set__counselor_since=at)


def _record_session(org_id: str, counselor_id: str, client: ClientView, score_id: str, value: float) -> None:
    """Fold one scored session into the counselor's fit, once per score id (see CounselorFit); then say the
    strengths moved (directory_cache: they are estimated again once the cached ones are old enough)."""
    _fold_session(org_id, counselor_id, client, score_id, value)
    # Also when the score was counted already: a redelivery after a crash between the fold and this bump.
    directory_cache.sessions_changed(org_id)


def _fold_session(org_id: str, counselor_id: str, client: ClientView, score_id: str, value: float) -> None:
    key = CounselorFit.key(org_id, counselor_id)
    for _ in range(FIT_UPDATE_ATTEMPTS):
        fit = CounselorFit.objects(id=key).first()
        if fit is None:
            insert_once(CounselorFit(id=key, org_id=org_id, counselor_id=counselor_id))
            continue
        records = {r.client_id: r for r in fit.clients}
        stored = records.get(client.id)
        current = stored and domain.ClientAlliance(stored.client_id, tuple(stored.concerns), stored.total,
                                                   stored.sessions, tuple(stored.score_ids), stored.sum_squares)
        stats = {c: domain.FitStat(s["total"], s["clients"]) for c, s in fit.concerns.items()}
        folded = domain.add_session(current, client.id, tuple(client.concerns), stats, score_id, value)
        if folded is None:
            return  # counted already
        updated, new_stats = folded
        records[client.id] = ClientAllianceRecord(
            client_id=updated.client_id, concerns=list(updated.concerns), total=updated.total,
            sessions=updated.sessions, score_ids=list(updated.score_ids), sum_squares=updated.sum_squares)
        if CounselorFit.objects(id=key, version=fit.version).update_one(
                set__clients=list(records.values()), inc__version=1,
                set__concerns={c: {"total": s.total, "clients": s.clients} for c, s in new_stats.items()}):
            return
    raise ConcurrentUpdate(key)


# --- triggers ---------------------------------------------------------------------------------------------

def handle_intake_submitted(event: Event, publish: Publish) -> None:
    p = event.payload
    queries.check_counselor_org(event, p.assigned_counselor_id)  # before anything of the intake is kept
    insert_once(IntakeView(
        id=p.intake_id, org_id=event.org_id, clinic_id=event.clinic_id, client_id=p.client_id,
        concerns=list(p.concerns), preferences=p.preferences.to_wire(), urgency=p.urgency,
        assigned_counselor_id=p.assigned_counselor_id, source_event_id=event.event_id,
    ))
    client = _record_intake(event)
    _recommend(event, client, "intake", current_counselor_id=client.counselor_id, publish=publish)
    _replay_parked(client, publish)


def handle_exit_interview_submitted(event: Event, publish: Publish) -> None:
    p = event.payload
    if not domain.exit_interview_shows_poor_fit(p, matching_config()):
        return
    client = _known_client_or_park(event)
    if client is None:
        return
    leaving = p.counselor_id
    _recommend(event, client, "exit_interview", current_counselor_id=leaving, exclude=frozenset({leaving}),
               outside_expertise=p.outside_expertise, publish=publish)


def handle_alliance_dropped(event: Event, publish: Publish) -> None:
    p = event.payload
    if not domain.asks_for_review(p.rules, matching_config()):
        return
    client = _known_client_or_park(event)
    if client is None:
        return
    counselor = p.counselor_id
    if client.counselor_id not in (None, counselor):
        return  # the client has another counselor by now: nothing left to review
    first_delivery = Referral.objects(id=referral_id_for(event.event_id)).first() is None
    if first_delivery and Referral.objects(org_id=client.org_id, client_id=client.id, reason="alliance_decline",
                                           current_counselor_id=counselor, status=domain.OPEN).first():
        return  # one open review per client and counselor is enough, however many alerts follow
    _recommend(event, client, "alliance_decline", current_counselor_id=counselor,
               exclude=frozenset({counselor}), publish=publish)


def _recommend(event: Event, client: ClientView, reason: str, *, current_counselor_id: str | None,
               publish: Publish, exclude: frozenset[str] = frozenset(), outside_expertise: bool = False) -> None:
    referral_id = referral_id_for(event.event_id)
    existing = Referral.objects(id=referral_id).first()
    if existing is not None:  # redelivered: publish what a crash may have left pending, compute nothing
        publish_pending(existing, publish)
        return
    config = matching_config()
    recommendation = domain.recommend(queries.directory(client.org_id, config),
                                      domain.MatchRequest(queries.profile(client), exclude, outside_expertise),
                                      config)
    candidates = recommendation.candidates
    recommended = make_event(Topic.REFERRAL_RECOMMENDED, {
        "referral_id": referral_id, "trigger_event_id": event.event_id, "client_id": client.id,
        "current_counselor_id": current_counselor_id, "reason": reason,
        "candidates": [{"counselor_id": c.counselor_id, "score": c.score, "reasons": list(c.reasons),
                        "parts": domain.wire_parts(c)} for c in candidates],
    }, org_id=client.org_id, clinic_id=client.clinic_id, producer=PRODUCER, correlation_id=event.correlation_id)
    referral = insert_once(Referral(
        id=referral_id, org_id=client.org_id, clinic_id=client.clinic_id, client_id=client.id,
        current_counselor_id=current_counselor_id, reason=reason, trigger_event_id=event.event_id,
        correlation_id=event.correlation_id, announced_event_id=recommended.event_id, status=domain.OPEN,
        candidates=[CandidateRecord(counselor_id=c.counselor_id, score=c.score, reasons=list(c.reasons),
                                    parts=dict(c.parts),
                                    strengths=[StrengthRecord(**dataclasses.asdict(s)) for s in c.strengths])
                    for c in candidates],
        weights=dict(recommendation.weights), outside_expertise=recommendation.outside_expertise,
        excluded_counselor_ids=sorted(exclude), excluded=dict(recommendation.excluded),
        pending_events=[outbox_entry(recommended, key=client.id)],
    ))
    publish_pending(referral, publish)


def _known_client_or_park(event: Event) -> ClientView | None:
    """The client, or None after parking the event until the client's intake arrives (topics are not
    ordered between each other, so a score or an exit interview can overtake the intake)."""
    client_id = event.payload.client_id
    client = queries.known_client(event, client_id)
    if client is None:
        insert_once(ParkedEvent(id=event.event_id, org_id=event.org_id, client_id=client_id,
                                event=event.to_dict()))
    return client


def _replay_parked(client: ClientView, publish: Publish) -> None:
    for parked in ParkedEvent.objects(org_id=client.org_id, client_id=client.id).order_by("parked_at"):
        event = decode_event(json.dumps(parked.event).encode())
        try:
            EVENT_HANDLERS[event.type](event, publish)
        except InvalidEvent as exc:  # unusable on its own merits: dropping it must not fail the intake
            log.warning("parked %s dropped: %s", event.type, exc)
        parked.delete()


# --- learning from referrals (services/referral/outcomes.py) ----------------------------------------------

def _follow_referral(event: Event, client: ClientView) -> None:
    """An accepted referral's reassignment landed: follow the new dyad, against the client's alliance with
    the counselor they left. A redelivered assignment finds the outcome stored and changes nothing."""
    p = event.payload
    if not p.referral_id:
        return  # the front desk's own reassignment: nobody chose this counselor over another
    referral = Referral.objects(id=p.referral_id, org_id=event.org_id, client_id=client.id).first()
    if referral is None or referral.status != domain.ACCEPTED or referral.chosen_counselor_id != p.counselor_id:
        return
    previous = referral.current_counselor_id or p.previous_counselor_id
    old = queries.dyad_alliance(event.org_id, previous, client.id)
    # Scores of the new dyad can overtake the assignment (topics are not ordered between each other): those
    # the counselor's fit has counted already are the first sessions. Should there be more than the rule
    # needs, their mean stands for the first ones' (the fit keeps sums, not single sessions).
    new = queries.dyad_alliance(event.org_id, p.counselor_id, client.id)
    state = outcomes.OutcomeState(old.total / old.sessions if old else None,
                                  *((new.total, new.sessions, tuple(new.score_ids)) if new else ()))
    status = outcomes.settle(state, outcome_config())
    insert_once(ReferralOutcome(
        id=ReferralOutcome.key(event.org_id, client.id, p.counselor_id), org_id=event.org_id,
        clinic_id=referral.clinic_id, referral_id=referral.id, reason=referral.reason, client_id=client.id,
        concerns=list(client.concerns), previous_counselor_id=previous, counselor_id=p.counselor_id,
        accepted_at=event.occurred_at, old_mean=state.old_mean, old_sessions=old.sessions if old else 0,
        new_total=state.new_total, new_sessions=state.new_sessions, score_ids=list(state.score_ids),
        status=status, settled_at=None if status == outcomes.FOLLOWING else event.occurred_at))


def _record_outcome_session(event: Event, client: ClientView, value: float) -> None:
    """Fold a session of a followed new dyad into its outcome, once per score id; settle the outcome when its
    first sessions are in (outcomes.settle). Optimistic like _record_session."""
    p = event.payload
    key = ReferralOutcome.key(event.org_id, client.id, p.counselor_id)
    config = outcome_config()
    for _ in range(FIT_UPDATE_ATTEMPTS):
        outcome = ReferralOutcome.objects(id=key, org_id=event.org_id).first()
        if outcome is None or outcome.status != outcomes.FOLLOWING:
            return  # not the new dyad of an accepted referral, or settled already
        old_mean, old_sessions = outcome.old_mean, outcome.old_sessions
        if old_mean is None:  # the old dyad's scores, too, may have arrived after the assignment
            old = queries.dyad_alliance(event.org_id, outcome.previous_counselor_id, client.id)
            old_mean, old_sessions = (old.total / old.sessions, old.sessions) if old else (None, 0)
        state = outcomes.OutcomeState(old_mean, outcome.new_total, outcome.new_sessions, tuple(outcome.score_ids))
        folded = outcomes.fold_session(state, p.score_id, value, config)
        if folded is None:
            return  # counted already
        status = outcomes.settle(folded, config)
        settled = {} if status == outcomes.FOLLOWING else {"set__settled_at": event.occurred_at}
        if ReferralOutcome.objects(id=key, version=outcome.version).update_one(
                set__old_mean=folded.old_mean, set__old_sessions=old_sessions, set__new_total=folded.new_total,
                set__new_sessions=folded.new_sessions, set__score_ids=list(folded.score_ids), set__status=status,
                inc__version=1, **settled):
            return
    raise ConcurrentUpdate(key)


# --- commands ---------------------------------------------------------------------------------------------

def _visible_referral(cmd: AcceptReferral | DeclineReferral) -> Referral:
    referral = queries.visible_referral(cmd.identity, cmd.referral_id)
    if referral is None:
        raise domain.ReferralNotFound(cmd.referral_id)
    return referral


def _decide(referral: Referral, identity: Identity, decision: str, publish: Publish, clock: Clock,
            **changes: Any) -> Referral:
    payload = {"referral_id": referral.id, "client_id": referral.client_id, "decision": decision,
               "decided_by": identity.staff_id, "previous_counselor_id": referral.current_counselor_id,
               "new_counselor_id": changes.get("chosen_counselor_id"),
               "decline_reason": changes.get("decline_reason")}
    decided = make_event(Topic.REFERRAL_DECIDED, payload, org_id=referral.org_id, clinic_id=referral.clinic_id,
                         producer=PRODUCER, correlation_id=referral.correlation_id)
    return _close(referral, decided, decided_by=identity.staff_id, decided_at=clock(), publish=publish, **changes)


def _close(referral: Referral, decided: Event, *, decided_by: str, decided_at: datetime, publish: Publish,
           **changes: Any) -> Referral:
    """Record the decision and its `referral.decided` event in one conditional write: of two concurrent
    decisions (or a decision and a supersession) only one finds the referral still open, so exactly one
    event exists."""
    written = Referral.objects(id=referral.id, status=domain.OPEN).update_one(
        set__status=decided.payload.decision, set__decided_by=decided_by, set__decided_at=decided_at,
        push__pending_events=outbox_entry(decided, key=referral.client_id),
        **{f"set__{name}": value for name, value in changes.items()})
    if not written:
        raise domain.ReferralNotOpen(Referral.objects.get(id=referral.id).status)
    referral.reload()
    publish_or_defer(referral, publish)
    return referral


def accept_referral(cmd: AcceptReferral, publish: Publish, clock: Clock) -> Referral:
    referral = _visible_referral(cmd)
    # What referral knows of the client's counselor (from client.assigned): intake checks again, for an
    # assignment referral has not heard of yet (see intake's handle_referral_decided).
    client = ClientView.objects(id=referral.client_id).only("counselor_id").first()
    domain.check_accept(referral.status, [c.counselor_id for c in referral.candidates], cmd.counselor_id,
                        referral.current_counselor_id, client.counselor_id if client else None)
    return _decide(referral, cmd.identity, domain.ACCEPTED, publish, clock, chosen_counselor_id=cmd.counselor_id)


def decline_referral(cmd: DeclineReferral, publish: Publish, clock: Clock) -> Referral:
    referral = _visible_referral(cmd)
    domain.check_decline(referral.status)
    changes = {"decline_reason": cmd.reason}
    if cmd.note:
        changes["decision_note"] = cmd.note
    return _decide(referral, cmd.identity, domain.DECLINED, publish, clock, **changes)


EVENT_HANDLERS = {
    Topic.COUNSELOR_UPDATED.value: handle_counselor_updated,
    Topic.CLIENT_ASSIGNED.value: handle_client_assigned,
    Topic.ALLIANCE_SCORED.value: handle_alliance_scored,
    Topic.INTAKE_SUBMITTED.value: handle_intake_submitted,
    Topic.EXIT_INTERVIEW_SUBMITTED.value: handle_exit_interview_submitted,
    Topic.ALLIANCE_DROPPED.value: handle_alliance_dropped,
    # Which staff tokens are revoked, for this service's API (services/common/sessions.py).
    Topic.STAFF_UPDATED.value: sessions.handle_staff_updated,
}

COMMAND_HANDLERS: dict[type, Callable[..., Any]] = {
    AcceptReferral: accept_referral,
    DeclineReferral: decline_referral,
}
