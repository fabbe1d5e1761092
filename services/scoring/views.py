"""Read models for the API and pages: trajectories, clinic summaries, FHIR export. Queries are narrowed by the
caller's scope (see `scope`), so nothing here can show another clinic's or another counselor's clients."""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timezone
from typing import Any, Mapping

from services.common.auth import Identity

from .domain import Trajectory
from .instruments import shipped_instruments
from .models import Alert, Dyad, SessionScore

STAFF_ROLES = ("counselor", "supervisor", "admin")


def scope(identity: Identity) -> dict[str, Any]:
    """The query filter for what a caller may see: their clinics, and a counselor only their own clients."""
    narrowed = identity.clinic_filter()
    if identity.role == "counselor":
        narrowed["counselor_id"] = identity.staff_id
    return narrowed


def narrowed(identity: Identity, **filters: Any) -> dict[str, Any] | None:
    """The caller's scope with the given filters (None values dropped), or None when they ask for what the
    scope excludes (a counselor asking for a colleague's clients)."""
    where = scope(identity)
    for key, value in filters.items():
        if value is None:
            continue
        if where.get(key, value) != value:
            return None
        where[key] = value
    return where


def trajectory(identity: Identity, client_id: str, counselor_id: str | None) -> dict[str, Any] | None:
    """A client's scored sessions in order (all counselors, or one dyad), or None if the caller sees none."""
    where = narrowed(identity, client_id=client_id, counselor_id=counselor_id, late=False)
    if where is None:
        return None
    scores = list(SessionScore.objects(**where).only(
        "session_number", "counselor_id", "clinic_id", "org_id", "instrument_id", "total", "subscales", "alerts",
        "submitted_at").order_by("session_number", "submitted_at"))
    if not scores:
        return None
    instrument_ids = sorted({s.instrument_id for s in scores})
    instruments = shipped_instruments()
    cutoffs = {instruments[i].cutoff_total for i in instrument_ids if i in instruments}
    baseline = None
    if counselor_id:
        last = scores[-1]
        dyad = Dyad.objects(id=Dyad.key(last.org_id, last.clinic_id, client_id, counselor_id)).first()
        stats = Trajectory.from_dict(dyad.trajectory if dyad else None).total
        baseline = {"sessions": stats.n, "mean": stats.mean if stats.n else None, "sd": stats.sd}
    last_instrument = instruments.get(scores[-1].instrument_id)
    return {
        "client_id": client_id, "counselor_id": counselor_id, "instrument_ids": instrument_ids,
        # One cutoff line only when every session used the same scale.
        "cutoff_total": cutoffs.pop() if len(cutoffs) == 1 else None,
        "scale": (last_instrument.min_total, last_instrument.max_total) if last_instrument else None,
        "subscale_scale": _subscale_scale(last_instrument),
        "baseline": baseline,
        "points": [{"session_number": s.session_number, "counselor_id": s.counselor_id,
                    "instrument_id": s.instrument_id, "total": s.total, "subscales": dict(s.subscales),
                    "alerts": [a.rule for a in s.alerts]} for s in scores],
    }


def _subscale_scale(instrument) -> tuple[float, float] | None:
    ranges = [r for s in ("goal", "task", "bond") if instrument and (r := instrument.subscale_range(s))]
    return (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None


def clinic_summary(identity: Identity, clinic_id: str, since: date) -> dict[str, Any]:
    """Share of sessions below cutoff and alerts per counselor per month. Counted in Python: FerretDB's
    $group computes only its first accumulator."""
    start = datetime.combine(since, time.min, tzinfo=timezone.utc)
    where = {"org_id": identity.org_id, "clinic_id": clinic_id}
    sessions = SessionScore.objects(**where, submitted_at__gte=start).count()
    below = SessionScore.objects(**where, submitted_at__gte=start, below_cutoff=True).count()
    per_month: Counter = Counter()
    by_rule: Counter = Counter()
    by_dimension: Counter = Counter()
    for alert in Alert.objects(**where, raised_at__gte=start).only("counselor_id", "raised_at", "rule", "dimension"):
        per_month[(alert.counselor_id, alert.raised_at.strftime("%Y-%m"))] += 1
        by_rule[alert.rule] += 1
        by_dimension[alert.dimension or "none"] += 1
    return {
        "clinic_id": clinic_id, "since": since, "sessions": sessions, "sessions_below_cutoff": below,
        "share_below_cutoff": below / sessions if sessions else None,
        "alerts_per_counselor_month": [{"counselor_id": c, "month": m, "alerts": n}
                                       for (c, m), n in sorted(per_month.items())],
        "alerts_by_rule": dict(by_rule), "alerts_by_dimension": dict(by_dimension),
    }


def questionnaire_responses(scores: list[SessionScore], questionnaires_url: str, scores_url: str) -> dict[str, Any]:
    """A FHIR R4 Bundle (collection) of QuestionnaireResponse resources, one per scored session; each refers
    to its Questionnaire at `<questionnaires_url>/<instrument id>` and is found at `<scores_url>/<id>`."""
    instruments = shipped_instruments()
    entries = []
    for s in scores:
        instrument = instruments.get(s.instrument_id)
        order = [i.link_id for i in instrument.items] if instrument else sorted(s.answers)
        resource = {
            "resourceType": "QuestionnaireResponse", "id": s.id,
            "questionnaire": f"{questionnaires_url}/{s.instrument_id}", "status": "completed",
            "subject": {"identifier": {"system": "urn:rapport:client", "value": s.client_id}},
            "author": {"identifier": {"system": "urn:rapport:client", "value": s.client_id}},
            "authored": s.submitted_at.isoformat(),
            "extension": [{"url": "urn:rapport:session-number", "valueInteger": s.session_number},
                          {"url": "urn:rapport:counselor", "valueString": s.counselor_id}],
            "item": [{"linkId": link_id, "answer": [_fhir_answer(s.answers[link_id])]}
                     for link_id in order if link_id in s.answers],
        }
        entries.append({"fullUrl": f"{scores_url}/{s.id}", "resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "total": len(entries), "entry": entries}


def _fhir_answer(value: float) -> Mapping[str, Any]:
    return {"valueInteger": int(value)} if float(value).is_integer() else {"valueDecimal": float(value)}
