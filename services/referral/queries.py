"""Referral's read side: its view of counselors, clients and measured fit (kept from events by the handlers),
the directory matching ranks, and the referrals and intakes a caller may see."""
from __future__ import annotations

from functools import lru_cache

from services.common.auth import Identity
from services.common.events import CrossTenantEvent, Event, InvalidEvent
from services.common.instruments import instrument_definitions

from services.referral import domain
from services.referral.adapters.models import ClientView, CounselorFit, CounselorView, IntakeView, Referral

# The supervisor's decision note is free text about a client: not for the front desk.
NOTE_READERS = ("admin", "supervisor", "counselor")

# --- what a caller may see ---------------------------------------------------------------------------------

def visible_referrals(identity: Identity):
    """The referrals this identity may see: its organisation and clinics (admins: every clinic), and for a
    counselor only the referrals of their own clients; without the decision note below NOTE_READERS."""
    query = Referral.objects(**identity.clinic_filter())
    if identity.role not in NOTE_READERS:
        query = query.exclude("decision_note")
    return query.filter(current_counselor_id=identity.staff_id) if identity.role == "counselor" else query


def visible_referral(identity: Identity, referral_id: str) -> Referral | None:
    return visible_referrals(identity).filter(id=referral_id).first()


def open_referrals(identity: Identity, limit: int) -> list[Referral]:
    return list(visible_referrals(identity).filter(status=domain.OPEN).order_by("-created_at", "id").limit(limit))


def visible_intake(identity: Identity, intake_id: str) -> IntakeView | None:
    """An intake of the caller's clinics (admins: every clinic); for a counselor only their own client's."""
    intake = IntakeView.objects(id=intake_id, **identity.clinic_filter()).first()
    if intake is None or identity.role != "counselor":
        return intake
    own = ClientView.objects(id=intake.client_id, counselor_id=identity.staff_id).only("id").first()
    return intake if own is not None else None


def counselors(identity: Identity):
    """Counselors of the caller's clinics (admins: the whole organisation), by id."""
    query = CounselorView.objects(org_id=identity.org_id)
    if not identity.is_admin:
        query = query.filter(clinic_ids__in=list(identity.clinic_ids))
    return query.order_by("id")


# --- counselors -------------------------------------------------------------------------------------------

def same_org(stored_org: str, event: Event) -> None:
    if stored_org != event.org_id:
        raise CrossTenantEvent(f"{event.type}: the entity belongs to another organisation")


def check_counselor_org(event: Event, counselor_id: str | None) -> None:
    """CrossTenantEvent if the event names a counselor referral knows in another organisation (an assignment
    or a score must not tie one organisation's client to another's counselor)."""
    known = CounselorView.objects(id=counselor_id).only("org_id").first() if counselor_id else None
    if known is not None:
        same_org(known.org_id, event)


# --- clients ----------------------------------------------------------------------------------------------

def known_client(event: Event, client_id: str) -> ClientView | None:
    """The client if referral has seen their intake (so knows concerns and preferences), else None;
    CrossTenantEvent if the event names another organisation or clinic than the client's."""
    view = ClientView.objects(id=client_id).first()
    if view is None or view.intake_id is None:
        return None
    same_org(view.org_id, event)
    if view.clinic_id != event.clinic_id:
        raise CrossTenantEvent(f"{event.type}: the client belongs to another clinic")
    return view


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
