"""Read models for the API and pages: trajectories, clinic summaries, FHIR export. Queries are narrowed by the
caller's scope (`Identity.client_filter`), so nothing here can show another clinic's or another counselor's clients."""
from __future__ import annotations

import logging
import statistics
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Mapping

from marshmallow import ValidationError

from services.common.auth import Identity
from services.common.mongo import utcnow

from services.scoring.domain import instruments as domain
from services.scoring.domain.backtest import AnsweredSession, run_backtest

from services.scoring.domain.alerting import RUPTURE, Budget, DyadHistory, baseline_window
from services.scoring.domain.calibration import Calibration
from services.scoring.adapters.instruments import shipped_instruments
from services.scoring.adapters.models import OUTCOMES, Alert, ClinicAlertSettings, ClinicCalibration, Dyad, ScoredSession
from services.scoring.adapters.rules import alert_defaults, effective_settings, stored_overrides

STAFF_ROLES = ("counselor", "supervisor", "admin")
log = logging.getLogger(__name__)


def clinic_settings(org_id: str, clinic_id: str) -> dict:
    """The alert settings in force for a clinic: the defaults with its admin's overrides."""
    try:
        return effective_settings(stored_overrides(ClinicAlertSettings.overrides_for(org_id, clinic_id)))
    except ValidationError as exc:  # stored values that today's defaults no longer fit: the defaults apply
        log.warning("alert settings of a clinic cannot apply (%s); the defaults do", exc.messages)
        return effective_settings(None)


def alert_settings(org_id: str, clinic_id: str) -> dict:
    """A clinic's alert settings as the settings API and page show them: the defaults, its overrides, what
    applies, and per instrument the threshold its budget gives."""
    stored = ClinicAlertSettings.objects(id=ClinicAlertSettings.key(org_id, clinic_id)).first()
    overrides = stored_overrides({"budget": stored.budget, "rules": stored.rules}) if stored else {}
    effective = clinic_settings(org_id, clinic_id)
    budget = Budget.of(effective).false_alerts_per_counselor_month
    calibrations = []
    for doc in ClinicCalibration.objects(org_id=org_id, clinic_id=clinic_id).order_by("instrument_id"):
        found = Calibration.from_dict(doc.calibration)
        calibrations.append({
            "instrument_id": doc.instrument_id, "source": found.source, "k": found.k_for(budget),
            "pooled_sd": found.pooled_sd, "sessions_per_counselor_month": found.sessions_per_counselor_month,
            "dyads": found.dyads, "sessions": found.sessions, "computed_at": doc.computed_at})
    return {"org_id": org_id, "clinic_id": clinic_id, "overrides": overrides,
            "defaults": alert_defaults().settings, "effective": effective, "calibrations": calibrations,
            "updated_by": stored.updated_by if stored else None, "updated_at": stored.updated_at if stored else None}


def narrowed(identity: Identity, **filters: Any) -> dict[str, Any] | None:
    """The caller's scope with the given filters (None values dropped), or None when they ask for what the
    scope excludes (a counselor asking for a colleague's clients)."""
    where = identity.client_filter()
    for key, value in filters.items():
        if value is None:
            continue
        if where.get(key, value) != value:
            return None
        where[key] = value
    return where


def scores(identity: Identity, **filters: Any):
    """Scored sessions in session order, within the caller's scope and the given filters."""
    where = narrowed(identity, **filters)
    return ScoredSession.objects.none() if where is None else \
        ScoredSession.objects(**where).order_by("session_number", "scored_at")


def score(identity: Identity, score_id: str) -> ScoredSession | None:
    return ScoredSession.objects(id=score_id, **identity.client_filter()).first()


def client_scores(identity: Identity, client_id: str) -> list[ScoredSession]:
    """A client's scored sessions with their answers, in session order (the FHIR export)."""
    return list(ScoredSession.objects(client_id=client_id, **identity.client_filter()).order_by("session_number", "submitted_at"))


def alerts(identity: Identity, rule: str | None = None, **filters: Any):
    """Alerts, newest first, within the caller's scope; `rule`: those on which that rule fired (an alert lists
    every rule that fired on its session)."""
    where = narrowed(identity, **filters)
    clinic_id = filters.get("clinic_id")
    if where is None or (clinic_id is not None and not identity.can_access_clinic(identity.org_id, clinic_id)):
        return Alert.objects.none()
    if rule is not None:
        where["rules"] = rule
    return Alert.objects(**where).order_by("-raised_at", "session_number")


def alert(identity: Identity, alert_id: str) -> Alert | None:
    return Alert.objects(id=alert_id, **identity.client_filter()).first()


def alliance_overview(identity: Identity, recent_alerts: int, max_dyads: int) -> tuple[list[Alert], list[Dyad]]:
    """The caller's recent alerts, and their dyads with those whose last session was below the cutoff
    first."""
    where = identity.client_filter()
    return (list(Alert.objects(**where).order_by("-raised_at")[:recent_alerts]),
            list(Dyad.objects(**where).order_by("-below_cutoff", "client_id")[:max_dyads]))


def clinic_overrides(org_id: str, clinic_id: str) -> dict:
    """A clinic's own overrides as they apply today (see rules.stored_overrides)."""
    return stored_overrides(ClinicAlertSettings.overrides_for(org_id, clinic_id))


def clinic_in_scope(identity: Identity, clinic_id: str) -> bool:
    """A clinic of the caller's organisation they may see, as far as scoring can tell: named in the token, or
    holding scores or settings here. An admin may see every clinic of the organisation, but a clinic id of
    another organisation (or of none) must answer 404 like anything else outside the caller's scope."""
    if not identity.can_access_clinic(identity.org_id, clinic_id):
        return False
    where = {"org_id": identity.org_id, "clinic_id": clinic_id}
    return clinic_id in identity.clinic_ids or any(
        model.objects(**where).only("id").first() is not None for model in (Dyad, ScoredSession, ClinicAlertSettings))


def trajectory(identity: Identity, client_id: str, counselor_id: str | None) -> dict[str, Any] | None:
    """A client's scored sessions in order (all counselors, or one dyad), or None if the caller sees none."""
    where = narrowed(identity, client_id=client_id, counselor_id=counselor_id, late=False)
    if where is None:
        return None
    scores = list(ScoredSession.objects(**where).only(
        "session_number", "counselor_id", "clinic_id", "org_id", "instrument_id", "total", "subscales", "alert",
        "below_cutoff", "submitted_at").order_by("session_number", "submitted_at"))
    if not scores:
        return None
    instrument_ids = sorted({s.instrument_id for s in scores})
    instruments = shipped_instruments()
    cutoffs = {instruments[i].cutoff_total for i in instrument_ids if i in instruments}
    baseline = None
    if counselor_id:
        last = scores[-1]
        dyad = Dyad.objects(id=Dyad.key(last.org_id, last.clinic_id, client_id, counselor_id)).first()
        baseline = _next_baseline(DyadHistory.from_dict(dyad.trajectory if dyad else None))
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
                    "below_cutoff": bool(s.below_cutoff),
                    "alert_kind": s.alert.kind if s.alert else None,
                    "alerts": list(s.alert.rules) if s.alert else []} for s in scores],
    }


def _next_baseline(history: DyadHistory) -> dict[str, Any]:
    """What the dyad's next session will be compared with (the alert rules' window)."""
    window = effective_settings(None)["rules"][RUPTURE]["window"]
    totals = [p.total for p in baseline_window(history.recent, window)]
    return {"sessions": len(totals), "mean": statistics.fmean(totals) if totals else None,
            "sd": statistics.stdev(totals) if len(totals) > 1 else None}


def _subscale_scale(instrument) -> tuple[float, float] | None:
    ranges = [r for s in ("goal", "task", "bond") if instrument and (r := instrument.subscale_range(s))]
    return (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else None


def clinic_summary(identity: Identity, clinic_id: str, since: date) -> dict[str, Any]:
    """Share of sessions below the cutoff, alerts per counselor per month, and the repair loop: how many
    alerts were followed by recovery, per rule, per counselor and per what the counselor did. Counted in
    Python: FerretDB's $group computes only its first accumulator."""
    start = datetime.combine(since, time.min, tzinfo=timezone.utc)
    where = {"org_id": identity.org_id, "clinic_id": clinic_id}
    sessions = ScoredSession.objects(**where, submitted_at__gte=start).count()
    below = ScoredSession.objects(**where, submitted_at__gte=start, below_cutoff=True).count()
    per_month: Counter = Counter()
    by_rule: Counter = Counter()
    by_kind: Counter = Counter()
    by_dimension: Counter = Counter()
    recovery: dict[str, dict[str, Counter]] = {"rule": {}, "counselor": {}, "action": {}}
    for alert in Alert.objects(**where, raised_at__gte=start).only(
            "counselor_id", "raised_at", "kind", "rules", "dimension", "outcome", "action"):
        per_month[(alert.counselor_id, alert.raised_at.strftime("%Y-%m"))] += 1
        by_rule.update(alert.rules)
        by_kind[alert.kind] += 1
        by_dimension[alert.dimension or "none"] += 1
        for group, keys in (("rule", alert.rules), ("counselor", [alert.counselor_id]),
                            ("action", [alert.action or "not_acknowledged"])):
            for key in keys:
                counts = recovery[group].setdefault(key, Counter())
                counts["alerts"] += 1
                counts[alert.outcome or "pending"] += 1
    return {
        "clinic_id": clinic_id, "since": since, "sessions": sessions, "sessions_below_cutoff": below,
        "share_below_cutoff": below / sessions if sessions else None,
        "alerts_per_counselor_month": [{"counselor_id": c, "month": m, "alerts": n}
                                       for (c, m), n in sorted(per_month.items())],
        "alerts_by_rule": dict(by_rule), "alerts_by_kind": dict(by_kind), "alerts_by_dimension": dict(by_dimension),
        **{f"recovery_by_{group}": {key: {"alerts": c["alerts"], **{o: c[o] for o in OUTCOMES}}
                                    for key, c in sorted(counts.items())}
           for group, counts in recovery.items()},
    }


def alert_preview(identity: Identity, clinic_id: str, proposed: Mapping[str, Any], months: int) -> dict[str, Any]:
    """The back-test over the clinic's stored sessions of the last `months`: with the settings in force and
    with the proposed ones."""
    since = utcnow() - timedelta(days=months * 365.25 / 12)
    instruments = shipped_instruments()
    sessions = []
    for s in ScoredSession.objects(org_id=identity.org_id, clinic_id=clinic_id, submitted_at__gte=since).only(
            "client_id", "counselor_id", "session_number", "instrument_id", "answers", "submitted_at").as_pymongo():
        instrument = instruments.get(s["instrument_id"])
        if instrument is None:
            continue
        sessions.append(AnsweredSession(clinic_id, s["client_id"], s["counselor_id"], s["session_number"],
                                        instrument, s["answers"], domain.score_answers(instrument, s["answers"]),
                                        s["submitted_at"].date()))
    current = run_backtest(sessions, clinic_settings(identity.org_id, clinic_id))
    result = run_backtest(sessions, proposed, current.calibrations)
    figures = {name: {"change_alerts": r.count("change"), "level_notices": r.count("level"),
                      "change_alerts_per_counselor_month": r.per_counselor_month("change"),
                      "level_notices_per_counselor_month": r.per_counselor_month("level")}
               for name, r in (("current", current), ("proposed", result))}
    return {"clinic_id": clinic_id, "months": months, "sessions": result.sessions,
            "counselor_months": result.counselor_months, **figures,
            "summary": _preview_sentence(months, result.sessions, figures)}


def _preview_sentence(months: int, sessions: int, figures: Mapping[str, Mapping[str, Any]]) -> str:
    if not sessions:
        return f"The clinic has no scored sessions in the last {months} months to try the settings on."
    proposed, current = figures["proposed"], figures["current"]
    return (f"With these settings your clinic would have had {proposed['change_alerts_per_counselor_month']:.1f} "
            f"alerts per counselor-month over the last {months} months (now "
            f"{current['change_alerts_per_counselor_month']:.1f}), and "
            f"{proposed['level_notices_per_counselor_month']:.1f} persistently-low notices per counselor-month "
            f"(now {current['level_notices_per_counselor_month']:.1f}), from {sessions} sessions.")


def questionnaire_responses(scores: list[ScoredSession], questionnaires_url: str, scores_url: str) -> dict[str, Any]:
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
