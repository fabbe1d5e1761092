"""Referral's read side: its view of counselors, clients and measured fit (kept from events by the handlers),
the directory matching ranks, and the referrals and intakes a caller may see."""
from __future__ import annotations

from functools import lru_cache

from mongoengine.queryset.visitor import Q
from services.common.auth import Identity
from services.common.events import CrossTenantEvent, Event, InvalidEvent
from services.common.instruments import instrument_definitions

from services.referral import domain
from services.referral.adapters.models import ClientView, CounselorFit, CounselorView, IntakeView, Referral
from services.referral import outcomes
from services.referral.adapters import directory_cache
from services.referral.adapters.config import outcome_config
from services.referral.adapters.models import ClientAllianceRecord, ReferralOutcome

# The supervisor's decision note is free text about a client: not for the front desk.
NOTE_READERS = ("admin", "supervisor", "counselor")

# --- what a caller may see ---------------------------------------------------------------------------------

def visible_referrals(identity: Identity):
    """The referrals this identity may see: its organisation and clinics (admins: every clinic); for a
    counselor the referrals naming them as the client's counselor or as the one chosen, in any clinic of
    the organisation (as for client data, a counselor's access follows the assignment: Identity.client_filter);
    without the decision note below NOTE_READERS."""
    if identity.role == "counselor":
        query = Referral.objects(Q(current_counselor_id=identity.staff_id) | Q(chosen_counselor_id=identity.staff_id),
                                 org_id=identity.org_id)
    else:
        query = Referral.objects(**identity.clinic_filter())
    return query if identity.role in NOTE_READERS else query.exclude("decision_note")


def visible_referral(identity: Identity, referral_id: str) -> Referral | None:
    return visible_referrals(identity).filter(id=referral_id).first()


def referrals_with_status(identity: Identity, status: str | None, limit: int) -> list[Referral]:
    """The caller's referrals of one status (None: every status), newest first."""
    query = visible_referrals(identity)
    if status:
        query = query.filter(status=status)
    return list(query.order_by("-created_at", "id").limit(limit))


def referral_context(org_id: str, referrals: list[Referral]) -> dict:
    """What the referrals page shows beside the referrals: each client's counselor now, each candidate's
    directory entry, and which (client, counselor) pairs have scored sessions (so a link to the alliance
    trajectory leads to a chart rather than to a page saying there is none)."""
    client_ids = list({r.client_id for r in referrals})
    counselor_ids = list({c.counselor_id for r in referrals for c in r.candidates})
    clients = {c.id: c.counselor_id for c in ClientView.objects(id__in=client_ids, org_id=org_id).only("counselor_id")}
    directory = {c.id: c for c in CounselorView.objects(id__in=counselor_ids, org_id=org_id)}
    fit_keys = list({CounselorFit.key(org_id, r.current_counselor_id) for r in referrals if r.current_counselor_id})
    scored = {(record.client_id, fit.counselor_id)
              for fit in CounselorFit.objects(id__in=fit_keys).only("counselor_id", "clients")
              for record in fit.clients if record.sessions and record.client_id in client_ids}
    return {"client_counselors": clients, "directory": directory, "scored": scored}


def visible_intake(identity: Identity, intake_id: str) -> IntakeView | None:
    """An intake of the caller's clinics (admins: every clinic); for a counselor their own client's, in any
    clinic of the organisation (as visible_referrals)."""
    if identity.role != "counselor":
        return IntakeView.objects(id=intake_id, **identity.clinic_filter()).first()
    intake = IntakeView.objects(id=intake_id, org_id=identity.org_id).first()
    own = intake and ClientView.objects(id=intake.client_id, counselor_id=identity.staff_id).only("id").first()
    return intake if own else None


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


def directory(org_id: str, config: domain.MatchingConfig) -> domain.Directory:
    """The organisation's directory for a recommendation: the one this process keeps, after one `_id` look-up
    says it is still current (with the counselors changed since read again by `_id`), else built again by
    load_directory (adapters/directory_cache.py)."""
    return directory_cache.directory(org_id, config, load_directory, load_counselors)


def _counselor(d: dict) -> domain.Counselor:
    return domain.Counselor(
        counselor_id=d["_id"], org_id=d["org_id"], clinic_ids=frozenset(d.get("clinic_ids", ())),
        specialties=frozenset(d.get("specialties", ())), languages=frozenset(d.get("languages", ())),
        modalities=frozenset(d.get("modalities", ())), weekly_capacity=d.get("weekly_capacity", 0),
        caseload=d.get("caseload", 0), accepting_new_clients=d.get("accepting_new_clients", True),
        gender=d.get("gender"), active=d.get("active", True))


def load_counselors(org_id: str, counselor_ids: list[str]) -> list[domain.Counselor]:
    """These counselors' facts, one look-up by `_id` each (a plain `_id` equality is what FerretDB 1.24 surely
    answers from its index)."""
    found = (CounselorView.objects(id=counselor_id).as_pymongo().first() for counselor_id in counselor_ids)
    return [_counselor(d) for d in found if d is not None and d["org_id"] == org_id]


def load_directory(org_id: str, config: domain.MatchingConfig) -> domain.Directory:
    """Every counselor of the organisation with their clients' alliance records, as plain data for matching
    (the strengths are estimated over the whole organisation's records)."""
    counselors = [_counselor(d) for d in CounselorView.objects(org_id=org_id).as_pymongo()]
    alliances = {
        d["counselor_id"]: [domain.ClientAlliance(r["client_id"], tuple(r.get("concerns", ())), r["total"],
                                                  r["sessions"], sum_squares=r.get("sum_squares"))
                            for r in d.get("clients", ())]
        for d in CounselorFit.objects(org_id=org_id).only("counselor_id", "clients").as_pymongo()}
    return domain.Directory(counselors, alliances, config)


# --- learning from referrals (services/referral/outcomes.py) ----------------------------------------------

def dyad_alliance(org_id: str, counselor_id: str | None, client_id: str) -> ClientAllianceRecord | None:
    """The client's scored sessions with one counselor as the counselor's fit keeps them (sum of normalised
    totals, count, score ids), or None without any."""
    if not counselor_id:
        return None
    fit = CounselorFit.objects(id=CounselorFit.key(org_id, counselor_id), org_id=org_id).only("clients").first()
    record = next((r for r in fit.clients if r.client_id == client_id), None) if fit else None
    return record if record is not None and record.sessions else None


def outcome_rule() -> outcomes.OutcomeConfig:
    """How accepted referrals are judged (configuration), for the pages to say."""
    return outcome_config()


def referral_clinic_in_scope(identity: Identity, clinic_id: str) -> bool:
    """A clinic of the caller's organisation they may see, as far as referral can tell: named in the token,
    or holding referrals here. An admin sees every clinic of the organisation, but another organisation's
    clinic (or an id of none) answers 404 like anything else outside the caller's scope."""
    if not identity.can_access_clinic(identity.org_id, clinic_id):
        return False
    return clinic_id in identity.clinic_ids or Referral.objects(
        org_id=identity.org_id, clinic_id=clinic_id).only("id").first() is not None


_OUTCOME_FIELDS = ("clinic_id", "reason", "concerns", "counselor_id", "status")


def _outcome_facts(query) -> list[tuple[str, outcomes.SettledFacts]]:
    """(clinic, what the counts need) of each outcome the query finds."""
    return [(d["clinic_id"], outcomes.SettledFacts(d["reason"], tuple(d.get("concerns", ())), d["counselor_id"],
                                                   d["status"]))
            for d in query.only(*_OUTCOME_FIELDS).as_pymongo()]


def _clinic_report(clinic_id: str, facts: list[outcomes.SettledFacts]) -> dict:
    rule = outcome_config()
    return {"clinic_id": clinic_id, "sessions_compared": rule.sessions, "margin": rule.margin,
            **outcomes.clinic_report(facts)}


def referral_outcome_report(identity: Identity, clinic_id: str) -> dict | None:
    """How the clinic's accepted referrals worked out: counts overall, per reason and per concern (never per
    counselor); None if the clinic is not the caller's to see."""
    if not referral_clinic_in_scope(identity, clinic_id):
        return None
    found = _outcome_facts(ReferralOutcome.objects(org_id=identity.org_id, clinic_id=clinic_id))
    return _clinic_report(clinic_id, [facts for _, facts in found])


def referral_outcome_reports(identity: Identity) -> list[dict]:
    """The report of each clinic the caller oversees, by clinic id, for the referrals page: a supervisor's
    clinics (followed referrals or not), for an admin the organisation's clinics with followed referrals."""
    by_clinic: dict[str, list[outcomes.SettledFacts]] = {clinic_id: [] for clinic_id in identity.clinic_ids}
    for clinic_id, facts in _outcome_facts(ReferralOutcome.objects(**identity.clinic_filter())):
        by_clinic.setdefault(clinic_id, []).append(facts)
    return [_clinic_report(clinic_id, found) for clinic_id, found in sorted(by_clinic.items())]


def referral_track_record(org_id: str) -> dict[str, dict[str, tuple[int, int]]]:
    """{counselor_id: {concern: (settled referrals received, of which the alliance improved)}}: what the
    organisation learnt from its referrals about who helps clients of a kind that another counselor did not
    fit (outcomes.track_record), for the strength estimate to weigh in. Never shown as a table of counselors."""
    return outcomes.track_record(facts for _, facts in _outcome_facts(ReferralOutcome.objects(org_id=org_id)))
