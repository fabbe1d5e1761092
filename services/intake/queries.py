"""Intake's read side: every look-up the API, the pages and the handlers make, narrowed by the caller.

What is outside the caller's organisation and clinics (and, for a counselor, outside their own clients) does
not exist for them: the scoped look-ups raise domain.NotFound, the lists leave it out.
"""
from __future__ import annotations

from datetime import date, datetime, time, timezone

from mongoengine import Q

from services.common.auth import Identity
from services.common.instruments import instrument_definitions

from services.intake import domain
from services.intake.adapters.models import (Client, Clinic, CounselorProfile, ExitInterview, FeedbackRequest,
                                             FeedbackSubmission, LinkDelivery, Organisation, Session, Staff)

RECENT_CLIENTS = 20


# --- clinics and staff ---

def clinics(identity: Identity):
    """The clinics the caller works in (admins: all of the organisation's), by name."""
    if identity.is_admin:
        return Clinic.objects(org_id=identity.org_id).order_by("name")
    return Clinic.objects(org_id=identity.org_id, id__in=list(identity.clinic_ids)).order_by("name")


def clinic_names(identity: Identity) -> dict[str, str]:
    return {c.id: c.name for c in Clinic.objects(org_id=identity.org_id).only("id", "name")}


def scoped_clinic(actor: Identity, clinic_id: str) -> Clinic:
    clinic = Clinic.objects(id=clinic_id, org_id=actor.org_id).first()
    if clinic is None or not actor.can_access_clinic(clinic.org_id, clinic.id):
        raise domain.NotFound("clinic")
    return clinic


def _staff_filter(actor: Identity) -> dict:
    """Staff of the caller's organisation; non-admins see colleagues of their own clinics."""
    if actor.is_admin:
        return {"org_id": actor.org_id}
    return {"org_id": actor.org_id, "clinic_ids__in": list(actor.clinic_ids)}


def staff_members(actor: Identity):
    return Staff.objects(**_staff_filter(actor)).order_by("display_name")


def scoped_staff(actor: Identity, staff_id: str) -> Staff:
    staff = Staff.objects(id=staff_id, **_staff_filter(actor)).first()
    if staff is None:
        raise domain.NotFound("staff")
    return staff


# --- the counselor directory ---

def search_counselors(identity: Identity, clinic_id: str | None = None, specialty: str | None = None,
                      language: str | None = None, modality: str | None = None, accepting: bool | None = None):
    query = Staff.objects(role="counselor", **_staff_filter(identity))
    if clinic_id:
        query = query.filter(clinic_ids=clinic_id)
    if specialty:
        query = query.filter(counselor__specialties=specialty)
    if language:
        query = query.filter(counselor__languages=language)
    if modality:
        query = query.filter(counselor__modalities=modality)
    if accepting is not None:
        query = query.filter(counselor__accepting_new_clients=accepting)
    return query.order_by("display_name")


def caseload(counselor_id: str) -> int:
    """Derived from assignments: the clients whose current counselor this is."""
    return Client.objects(counselor_id=counselor_id).count()


def caseloads(counselor_ids: list[str]) -> dict[str, int]:
    """Clients per counselor in one query (a single accumulator: FerretDB 1.24 computes only the first)."""
    rows = Client._get_collection().aggregate([
        {"$match": {"counselor_id": {"$in": list(counselor_ids)}}},
        {"$group": {"_id": "$counselor_id", "n": {"$sum": 1}}},
    ])
    return {row["_id"]: row["n"] for row in rows}


def counselor_views(staff: list[Staff]) -> list[dict]:
    counts = caseloads([s.id for s in staff])
    views = []
    for member in staff:
        profile = member.counselor or CounselorProfile()
        views.append({
            "id": member.id, "display_name": member.display_name, "clinic_ids": list(member.clinic_ids),
            "supervisor_id": member.supervisor_id, "active": member.active,
            "specialties": list(profile.specialties), "languages": list(profile.languages),
            "modalities": list(profile.modalities), "gender": profile.gender, "style_notes": profile.style_notes,
            "weekly_capacity": profile.weekly_capacity, "accepting_new_clients": profile.accepting_new_clients,
            "caseload": counts.get(member.id, 0),
        })
    return views


def assignable_counselors(identity: Identity, client: Client) -> list[dict]:
    """The counselor picker on a client's record: the active counselors the caller sees whom the client may be
    given (domain.check_assignment: at the client's clinic, or offering telehealth), each with what fits the
    client (`matches`: the client's concerns among their specialties; `speaks`: the preferred language), those
    accepting and fitting best first, then the freest. The order suggests; the person at the desk chooses."""
    staff = Staff.objects(Q(clinic_ids=client.clinic_id) | Q(counselor__modalities="telehealth"), role="counselor",
                          active=True, **_staff_filter(identity))
    language = (client.preferences or {}).get("language")
    views = counselor_views(list(staff))
    for view in views:
        view["matches"] = [c for c in client.concerns if c in view["specialties"]]
        view["speaks"] = bool(language) and language in view["languages"]
        view["at_clinic"] = client.clinic_id in view["clinic_ids"]
    return sorted(views, key=lambda v: (not v["accepting_new_clients"], -len(v["matches"]), not v["speaks"],
                                        v["caseload"] / max(v["weekly_capacity"] or 1, 1), v["display_name"]))


def staff_names(identity: Identity, staff_ids) -> dict[str, str]:
    """Display names of staff of the caller's organisation by id: the counselors a client's record names,
    wherever they work (a telehealth counselor may be at another clinic)."""
    ids = [i for i in set(staff_ids) if i]
    return {s.id: s.display_name for s in Staff.objects(org_id=identity.org_id, id__in=ids).only("id", "display_name")}


# --- clients and what belongs to them ---

def clients(identity: Identity, clinic_id: str | None = None, counselor_id: str | None = None,
            since: date | None = None):
    """Clients the caller may see, newest first."""
    found = Client.objects(**identity.client_filter())
    if clinic_id:
        found = found.filter(clinic_id=clinic_id)
    if counselor_id:
        found = found.filter(counselor_id=counselor_id)
    if since:
        found = found.filter(created_at__gte=datetime.combine(since, time(), timezone.utc))
    return found.order_by("-created_at")


def front_desk_day(identity: Identity, today: date) -> tuple[list[Client], list[Client]]:
    """Clients registered today, and the most recent ones before."""
    start_of_day = datetime.combine(today, time(), timezone.utc)
    scoped = Client.objects(**identity.client_filter())
    return (list(scoped.filter(created_at__gte=start_of_day).order_by("-created_at")),
            list(scoped.filter(created_at__lt=start_of_day).order_by("-created_at")[:RECENT_CLIENTS]))


def scoped_client(actor: Identity, client_id: str) -> Client:
    client = Client.objects(id=client_id, **actor.client_filter()).first()
    if client is None:
        raise domain.NotFound("client")
    return client


def sessions_of(client: Client):
    return Session.objects(client_id=client.id).order_by("number")


def feedback_requests_of(client: Client) -> list[FeedbackRequest]:
    return list(FeedbackRequest.objects(client_id=client.id).order_by("-created_at"))


def scoped_request(actor: Identity, request_id: str) -> tuple[FeedbackRequest, Client]:
    """A client's link and the client, if the caller may see that client (NotFound otherwise)."""
    request = FeedbackRequest.objects(id=request_id, org_id=actor.org_id).first()
    if request is None:
        raise domain.NotFound("link")
    return request, scoped_client(actor, request.client_id)


def deliveries_of(request: FeedbackRequest) -> list[LinkDelivery]:
    return list(LinkDelivery.objects(request_id=request.id).order_by("at"))


def contact_facts(client: Client) -> domain.ContactFacts:
    """The client's latest recorded consent per channel, with their addresses."""
    consent = client.consents[-1] if client.consents else None
    return domain.ContactFacts(email_consent=bool(consent and consent.email), sms_consent=bool(consent and consent.sms),
                               email=client.email, phone=client.phone)


def session_answered(client_id: str, session_number: int, kind: str) -> bool:
    """Whether the client answered this session already: rated (by any link, or entered by staff), or, for the
    exit interview, answered one."""
    if kind == "feedback":
        return FeedbackSubmission.objects(client_id=client_id, session_number=session_number).first() is not None
    return ExitInterview.objects(client_id=client_id, session_number=session_number).first() is not None


def session_raters(client: Client) -> dict[int, str]:
    """Each rated session's number and the counselor it was with (one scan of the client's ratings)."""
    return {r.session_number: r.counselor_id
            for r in FeedbackSubmission.objects(client_id=client.id).only("session_number", "counselor_id")}


def exit_interviews(identity: Identity, client: Client):
    """A client's exit interviews; the client's own words (comment) are not for the front desk."""
    found = ExitInterview.objects(client_id=client.id).order_by("session_number")
    return found.exclude("comment") if identity.role not in domain.COMMENT_READERS else found


def feedback(identity: Identity, client_id: str):
    return FeedbackSubmission.objects(client_id=client_id, **identity.client_filter()) \
        .order_by("session_number", "created_at")


def feedback_entry(identity: Identity, feedback_id: str) -> FeedbackSubmission | None:
    return FeedbackSubmission.objects(id=feedback_id, **identity.client_filter()).first()


# --- the client's links ---

def questionnaire(org_id: str, instrument_id: str) -> list[domain.FormItem]:
    """The instrument's items as the client sees them (with the organisation's own wording, if any)."""
    definition = instrument_definitions().get(instrument_id)
    if definition is None:
        raise domain.Refused("instrument_id", "No such instrument.")
    organisation = Organisation.objects(id=org_id).first()
    supplied = (organisation.item_texts.get(instrument_id, {}) if organisation else {})
    return domain.instrument_form(definition, supplied)


def open_request(request_id: str, kind: str, now: datetime) -> FeedbackRequest:
    """The request behind a link, if it can still be answered; LinkClosed or NotFound otherwise."""
    request = FeedbackRequest.objects(id=request_id, kind=kind).first()
    if request is None:
        raise domain.NotFound("link")
    state = domain.link_state(request.expires_at, request.answered_at is not None, now)
    if state != "open":
        raise domain.LinkClosed(state)
    return request


# --- names for other services' pages ---

# What telling a counselor's current and former clients apart reads of a client, besides the name.
_NAMED_WITH_HISTORY = ("id", "first_name", "last_name", "counselor_id", "assignments")


def former_client(identity: Identity, client_id: str) -> Client | None:
    """A client a counselor counseled before a reassignment (not theirs now), or None: what their pages may
    still say of the client is the name and where the client went, never the record."""
    if identity.role != "counselor":
        return None
    client = Client.objects(id=client_id, org_id=identity.org_id).only(*_NAMED_WITH_HISTORY).first()
    return client if client and _ever_counseled(identity, client) else None


def _ever_counseled(identity: Identity, client: Client) -> bool:
    """Whether the counselor is this client's counselor or was before a reassignment."""
    return client.counselor_id == identity.staff_id or domain.counseled_before(
        identity.staff_id, [(a.counselor_id, a.previous_counselor_id) for a in client.assignments])


def people_names(identity: Identity, client_ids: list[str], staff_ids: list[str],
                 clinic_ids: list[str] = ()) -> dict[str, dict[str, str]]:
    """Display names of the given ids that the caller may see: clients through the same scoped list the
    client pages read (so whatever widens or narrows a caller's clients applies here too), staff and clinics
    of the caller's organisation (a counselor of another clinic still appears on a referral or a history).
    Ids not found or not visible are left out, never reported as such.

    A counselor also names the clients they counseled before a reassignment: their own earlier alerts,
    sessions and the referral that moved the client stay on their pages, and a stand-in there would hide
    whom they are about. The name only - the record itself follows the current assignment."""
    wanted = list(client_ids)
    if identity.role == "counselor":
        # One read of the page's ids (bounded by the API) in the caller's organisation, current and former
        # clients told apart here: FerretDB would scan for a match on the history the same way.
        named = [c for c in Client.objects(org_id=identity.org_id, id__in=wanted).only(*_NAMED_WITH_HISTORY)
                 if _ever_counseled(identity, c)]
    else:
        named = clients(identity).filter(id__in=wanted).only("id", "first_name", "last_name")
    clinics_named = Clinic.objects(org_id=identity.org_id, id__in=list(clinic_ids)).only("id", "name") \
        if clinic_ids else []
    return {"clients": {c.id: f"{c.first_name} {c.last_name}" for c in named},
            "staff": staff_names(identity, staff_ids) if staff_ids else {},
            "clinics": {c.id: c.name for c in clinics_named}}
