"""Referral's own view of the world, kept from events: counselors, clients and measured fit.

Every update is idempotent on its own (redelivery of an event changes nothing) and checks that the event's
organisation is the one the entity belongs to.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import mongoengine as me
from mongoengine.queryset.visitor import Q
from pymongo.errors import DuplicateKeyError

from services.common.events import CrossTenantEvent, Event, InvalidEvent
from services.common.instruments import instrument_definitions
from services.common.outbox import insert_once

from services.referral import domain
from services.referral.adapters.models import ClientAllianceRecord, ClientView, CounselorFit, CounselorView

# Optimistic updates of one counselor's fit that lose to concurrent writers this often give up (and the
# consumer loop retries the event).
FIT_UPDATE_ATTEMPTS = 10


class ConcurrentUpdate(RuntimeError):
    """Another writer kept changing the same document; the event is retried."""


# --- counselors -------------------------------------------------------------------------------------------

COUNSELOR_FIELDS = ("clinic_ids", "specialties", "languages", "modalities", "weekly_capacity", "caseload",
                    "accepting_new_clients", "supervisor_id", "gender", "active")


def apply_counselor_snapshot(event: Event) -> None:
    """Store the snapshot unless a newer one is stored already."""
    p = event.payload
    values = {f"set__{name}": p[name] for name in COUNSELOR_FIELDS}
    not_newer = CounselorView.objects(id=p["counselor_id"], org_id=event.org_id, as_of__lte=event.occurred_at)
    if not_newer.update_one(set__as_of=event.occurred_at, **values):
        return
    try:
        CounselorView(id=p["counselor_id"], org_id=event.org_id, as_of=event.occurred_at,
                      **{name: p[name] for name in COUNSELOR_FIELDS}).save(force_insert=True)
    except (me.NotUniqueError, DuplicateKeyError):
        # Stored already: by another organisation (refused), or a newer snapshot (this one is ignored).
        _same_org(CounselorView.objects(id=p["counselor_id"]).only("org_id").first().org_id, event)


def _same_org(stored_org: str, event: Event) -> None:
    if stored_org != event.org_id:
        raise CrossTenantEvent(f"{event.type}: the entity belongs to another organisation")


def check_counselor_org(event: Event, counselor_id: str | None) -> None:
    """CrossTenantEvent if the event names a counselor referral knows in another organisation (an assignment
    or a score must not tie one organisation's client to another's counselor)."""
    known = CounselorView.objects(id=counselor_id).only("org_id").first() if counselor_id else None
    if known is not None:
        _same_org(known.org_id, event)


# --- clients ----------------------------------------------------------------------------------------------

def client_view(event: Event, client_id: str) -> ClientView:
    """The client's view, created empty in the event's organisation if new; CrossTenantEvent if the client
    belongs to another organisation."""
    ClientView.objects(id=client_id).update_one(upsert=True, set_on_insert__org_id=event.org_id)
    view = ClientView.objects.get(id=client_id)
    _same_org(view.org_id, event)
    return view


def known_client(event: Event, client_id: str) -> ClientView | None:
    """The client if referral has seen their intake (so knows concerns and preferences), else None;
    CrossTenantEvent if the event names another organisation or clinic than the client's."""
    view = ClientView.objects(id=client_id).first()
    if view is None or view.intake_id is None:
        return None
    _same_org(view.org_id, event)
    if view.clinic_id != event.clinic_id:
        raise CrossTenantEvent(f"{event.type}: the client belongs to another clinic")
    return view


def record_intake(event: Event) -> ClientView:
    p = event.payload
    client_view(event, p["client_id"])
    ClientView.objects(id=p["client_id"]).update_one(
        set__clinic_id=event.clinic_id, set__intake_id=p["intake_id"], set__concerns=list(p["concerns"]),
        set__preferences=dict(p["preferences"]))
    if p["assigned_counselor_id"]:
        assign_counselor(p["client_id"], p["assigned_counselor_id"], event.occurred_at)
    return ClientView.objects.get(id=p["client_id"])


def record_assignment(event: Event) -> None:
    p = event.payload
    check_counselor_org(event, p["counselor_id"])
    client_view(event, p["client_id"])
    if p["concerns"]:
        ClientView.objects(id=p["client_id"]).update_one(set__concerns=list(p["concerns"]))
    ClientView.objects(id=p["client_id"], clinic_id=None).update_one(set__clinic_id=event.clinic_id)
    assign_counselor(p["client_id"], p["counselor_id"], event.occurred_at)


def assign_counselor(client_id: str, counselor_id: str, at: datetime) -> None:
    """Set the client's counselor unless a later assignment is stored already."""
    not_newer = Q(counselor_since=None) | Q(counselor_since__lte=at)
    ClientView.objects(Q(id=client_id) & not_newer).update_one(set__counselor_id=counselor_id,
                                                                set__counselor_since=at)


def profile(client: ClientView) -> domain.ClientProfile:
    preferences = client.preferences or {}
    return domain.ClientProfile(
        client_id=client.id, org_id=client.org_id, clinic_id=client.clinic_id, concerns=tuple(client.concerns),
        language=preferences.get("language"), modality=preferences.get("modality") or "either",
        counselor_gender=preferences.get("counselor_gender"))


# --- measured fit -----------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _instrument_ranges() -> dict[str, domain.InstrumentRange]:
    return {id_: domain.instrument_range(d) for id_, d in instrument_definitions().items()}


def normalised_total(instrument_id: str, total: float) -> float:
    scale = _instrument_ranges().get(instrument_id)
    if scale is None:
        raise InvalidEvent(f"unknown instrument {instrument_id}")
    return scale.normalise(total)


def record_session(org_id: str, counselor_id: str, client: ClientView, score_id: str, value: float) -> None:
    """Fold one scored session into the counselor's fit, once per score id (see CounselorFit)."""
    key = CounselorFit.key(org_id, counselor_id)
    for _ in range(FIT_UPDATE_ATTEMPTS):
        fit = CounselorFit.objects(id=key).first()
        if fit is None:
            insert_once(CounselorFit(id=key, org_id=org_id, counselor_id=counselor_id))
            continue
        records = {r.client_id: r for r in fit.clients}
        stored = records.get(client.id)
        current = stored and domain.ClientAlliance(stored.client_id, tuple(stored.concerns), stored.total,
                                                   stored.sessions, tuple(stored.score_ids))
        stats = {c: domain.FitStat(s["total"], s["clients"]) for c, s in fit.concerns.items()}
        folded = domain.add_session(current, client.id, tuple(client.concerns), stats, score_id, value)
        if folded is None:
            return  # counted already
        updated, new_stats = folded
        records[client.id] = ClientAllianceRecord(
            client_id=updated.client_id, concerns=list(updated.concerns), total=updated.total,
            sessions=updated.sessions, score_ids=list(updated.score_ids))
        if CounselorFit.objects(id=key, version=fit.version).update_one(
                set__clients=list(records.values()), inc__version=1,
                set__concerns={c: {"total": s.total, "clients": s.clients} for c, s in new_stats.items()}):
            return
    raise ConcurrentUpdate(key)


def load_directory(org_id: str, config: domain.MatchingConfig) -> domain.Directory:
    """Every counselor of the organisation with their measured fit, as plain data for matching."""
    counselors = [
        domain.Counselor(
            counselor_id=d["_id"], org_id=d["org_id"], clinic_ids=frozenset(d.get("clinic_ids", ())),
            specialties=frozenset(d.get("specialties", ())), languages=frozenset(d.get("languages", ())),
            modalities=frozenset(d.get("modalities", ())), weekly_capacity=d.get("weekly_capacity", 0),
            caseload=d.get("caseload", 0), accepting_new_clients=d.get("accepting_new_clients", True),
            gender=d.get("gender"), active=d.get("active", True))
        for d in CounselorView.objects(org_id=org_id).as_pymongo()]
    fit = {d["counselor_id"]: {c: domain.FitStat(s["total"], s["clients"]) for c, s in d.get("concerns", {}).items()}
           for d in CounselorFit.objects(org_id=org_id).only("counselor_id", "concerns").as_pymongo()}
    return domain.Directory(counselors, fit, config.default_fit_prior)
