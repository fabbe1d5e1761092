"""The counselor directory: search with filters, and the view with the caseload derived from assignments."""
from __future__ import annotations

from services.common.auth import Identity

from services.intake.handlers import staff_filter
from services.intake.adapters.models import Client, CounselorProfile, Staff


def search_counselors(identity: Identity, clinic_id: str | None = None, specialty: str | None = None,
                      language: str | None = None, modality: str | None = None, accepting: bool | None = None):
    query = Staff.objects(role="counselor", **staff_filter(identity))
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
