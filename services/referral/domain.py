"""Counselor matching and the referral workflow rules. Pure Python: no web framework, broker or database.

Matching is a filter then a score. Hard constraints (same organisation, language, modality and clinic,
open to new clients with capacity left, not an excluded counselor) remove candidates; a weighted sum of
soft criteria ranks the rest. Measured fit (a counselor's mean alliance with past clients of the same
concern) is shrunk toward the organisation's average for that concern with `shrinkage_clients`
pseudo-clients, so one lucky client does not outrank twenty good ones (empirical Bayes).

Ranking must stay fast for large directories: a `Directory` precomputes what does not depend on the client
once, the loop over counselors touches plain attributes only, and reasons (strings) are built for the
top N alone.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from services.common.events import ExitInterviewSubmitted

SCORE_DIGITS = 6  # scores are rounded so that equal sums computed in another order still tie
MAX_REASON_LENGTH = 120


@dataclass(frozen=True)
class MatchingConfig:
    top_n: int = 5
    weight_specialty: float = 0.35
    weight_fit: float = 0.30
    weight_preference: float = 0.10
    weight_caseload: float = 0.15
    weight_same_clinic: float = 0.10
    # "Outside my counselor's expertise": specialties covering the concerns count this many times more.
    outside_expertise_factor: float = 2.0
    # k pseudo-clients at the organisation's average pulled into every counselor's measured fit.
    shrinkage_clients: float = 5.0
    # The prior when nobody in the organisation has measured alliance for a concern yet (0..1).
    default_fit_prior: float = 0.75
    # A shrunk fit this far above the prior earns the "strong alliance" reason.
    strong_fit_margin: float = 0.05
    # An exit-interview answer (1..5) at or below this says the fit is poor.
    poor_fit_max_answer: int = 2
    # alliance.dropped rules that ask for a review of the match: an alliance that stays below the cutoff, or
    # keeps falling (a single low session does not).
    review_rules: tuple[str, ...] = ("persistently_low", "sustained_decline", "reliable_drop")


@dataclass(frozen=True)
class Counselor:
    counselor_id: str
    org_id: str
    clinic_ids: frozenset[str]
    specialties: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    modalities: frozenset[str] = frozenset()
    weekly_capacity: int = 0
    caseload: int = 0
    accepting_new_clients: bool = True
    gender: str | None = None
    active: bool = True


@dataclass(frozen=True)
class FitStat:
    """A counselor's measured alliance with clients of one concern: the sum over clients of each client's
    mean normalised alliance (0..1), and how many clients that is."""

    total: float
    clients: int


@dataclass(frozen=True)
class ClientProfile:
    client_id: str
    org_id: str
    clinic_id: str
    concerns: tuple[str, ...]
    language: str | None = None
    modality: str = "either"
    counselor_gender: str | None = None


@dataclass(frozen=True)
class MatchRequest:
    client: ClientProfile
    exclude: frozenset[str] = frozenset()
    outside_expertise: bool = False


@dataclass(frozen=True)
class Candidate:
    counselor_id: str
    score: float
    reasons: tuple[str, ...]


class _Row:
    """What ranking reads per counselor, computed once per directory."""

    __slots__ = ("counselor", "open", "balance", "telehealth", "in_person", "fit")

    def __init__(self, counselor: Counselor, fit: Mapping[str, FitStat]):
        self.counselor = counselor
        self.open = (counselor.active and counselor.accepting_new_clients
                     and counselor.caseload < counselor.weekly_capacity)
        self.balance = (1.0 - counselor.caseload / counselor.weekly_capacity) if self.open else 0.0
        self.telehealth = "telehealth" in counselor.modalities
        self.in_person = "in_person" in counselor.modalities
        self.fit = fit


class Directory:
    """The counselors and their measured fit, ready to rank; priors are pooled over the whole directory."""

    def __init__(self, counselors: Iterable[Counselor], fit: Mapping[str, Mapping[str, FitStat]],
                 default_prior: float = MatchingConfig.default_fit_prior):
        # Sorted by id: iteration order, and so every tie, is the same whatever order the store returned.
        ordered = sorted(counselors, key=lambda c: c.counselor_id)
        self.rows = [_Row(c, fit.get(c.counselor_id, {})) for c in ordered]
        sums: dict[str, list[float]] = {}
        for row in self.rows:
            for concern, stat in row.fit.items():
                pooled = sums.setdefault(concern, [0.0, 0])
                pooled[0] += stat.total
                pooled[1] += stat.clients
        self.default_prior = default_prior
        self.priors = {c: total / n for c, (total, n) in sums.items() if n > 0}

    def prior(self, concern: str) -> float:
        return self.priors.get(concern, self.default_prior)


def shrunk_fit(stat: FitStat | None, prior: float, k: float) -> float:
    """(sum + k * prior) / (n + k): the mean of n clients pulled toward the prior by k pseudo-clients."""
    if stat is None:
        return prior
    return (stat.total + k * prior) / (stat.clients + k)


def rank(directory: Directory, request: MatchRequest, config: MatchingConfig) -> list[Candidate]:
    """The best `config.top_n` counselors for the client, best first; ties go to the smaller id."""
    client = request.client
    concerns = tuple(dict.fromkeys(client.concerns))
    concern_set = frozenset(concerns)
    k = config.shrinkage_clients
    priors = [directory.prior(c) for c in concerns]
    prior_fit = sum(priors) / len(priors) if priors else directory.default_prior
    w_specialty = config.weight_specialty * (config.outside_expertise_factor if request.outside_expertise else 1)
    w_specialty_per_concern = w_specialty / len(concerns) if concerns else 0.0
    w_fit, w_pref = config.weight_fit, config.weight_preference
    w_caseload, w_clinic = config.weight_caseload, config.weight_same_clinic
    org, clinic, language, modality = client.org_id, client.clinic_id, client.language, client.modality
    gender = client.counselor_gender
    exclude = request.exclude

    scored: list[tuple[float, str, _Row]] = []
    for row in directory.rows:
        c = row.counselor
        # Hard constraints first, cheapest first.
        if not row.open or c.org_id != org or c.counselor_id in exclude:
            continue
        if language and language not in c.languages:
            continue
        in_clinic = clinic in c.clinic_ids
        if modality == "in_person":
            if not (in_clinic and row.in_person):
                continue
        elif modality == "telehealth":
            if not row.telehealth:
                continue
        elif not (in_clinic or row.telehealth):  # "either": this clinic, or any clinic over telehealth
            continue
        score = (w_specialty_per_concern * len(concern_set & c.specialties) + w_caseload * row.balance
                 + (w_clinic if in_clinic else 0.0) + (w_pref if gender and c.gender == gender else 0.0))
        if row.fit:
            fit = 0.0
            for concern, prior in zip(concerns, priors):
                fit += shrunk_fit(row.fit.get(concern), prior, k)
            score += w_fit * (fit / len(concerns) if concerns else prior_fit)
        else:
            score += w_fit * prior_fit
        scored.append((-round(score, SCORE_DIGITS), c.counselor_id, row))
    best = heapq.nsmallest(config.top_n, scored, key=lambda item: (item[0], item[1]))
    return [Candidate(counselor_id, -negative, _reasons(row, request, directory, config))
            for negative, counselor_id, row in best]


def _reasons(row: _Row, request: MatchRequest, directory: Directory, config: MatchingConfig) -> tuple[str, ...]:
    """Why this counselor: statements about the counselor, never about the client."""
    c, client = row.counselor, request.client
    reasons = []
    covered = [concern for concern in client.concerns if concern in c.specialties]
    if covered:
        reasons.append(_limited("specialises in ", covered))
    if client.language:
        reasons.append(f"speaks {client.language}")
    for concern in client.concerns:
        stat = row.fit.get(concern)
        prior = directory.prior(concern)
        if stat and shrunk_fit(stat, prior, config.shrinkage_clients) >= prior + config.strong_fit_margin:
            reasons.append(f"strong alliance with {concern.replace('_', ' ')} clients (n={stat.clients})")
    if client.counselor_gender and c.gender == client.counselor_gender:
        reasons.append(f"{c.gender} counselor, as preferred")
    if client.clinic_id in c.clinic_ids:
        reasons.append("works at this clinic")
    elif row.telehealth:
        reasons.append("offers telehealth from another clinic")
    free = c.weekly_capacity - c.caseload
    reasons.append(f"{free} of {c.weekly_capacity} places free")
    return tuple(reasons)


def _limited(prefix: str, concerns: list[str], shown: int = 4) -> str:
    names = [c.replace("_", " ") for c in concerns]
    text = prefix + ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
    return text[:MAX_REASON_LENGTH]


# --- Triggers --------------------------------------------------------------------------------------------

EXIT_INTERVIEW_ANSWERS = ("comfortable", "style_fit", "confident_progress")


def exit_interview_shows_poor_fit(answers: ExitInterviewSubmitted, config: MatchingConfig) -> bool:
    """Low ratings, "outside my counselor's expertise" or "I want someone else"."""
    low = any(getattr(answers, name) <= config.poor_fit_max_answer for name in EXIT_INTERVIEW_ANSWERS)
    return low or answers.outside_expertise or answers.wants_someone_else


def asks_for_review(rules: Iterable[str], config: MatchingConfig) -> bool:
    return any(rule in config.review_rules for rule in rules)


# --- Measured fit ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstrumentRange:
    min_total: float
    max_total: float

    def normalise(self, total: float) -> float:
        """A session total on 0..1 (clamped), so that fits measured with different instruments compare."""
        span = self.max_total - self.min_total
        return min(1.0, max(0.0, (total - self.min_total) / span)) if span > 0 else 0.0


def instrument_range(definition: Mapping[str, Any]) -> InstrumentRange:
    """The total's range of a shipped instrument definition (Questionnaire-shaped JSON)."""
    items = [item["rapport"] for item in definition["item"]]
    return InstrumentRange(float(sum(i["min"] for i in items)), float(sum(i["max"] for i in items)))


@dataclass(frozen=True)
class ClientAlliance:
    """One client's sessions with one counselor: the sum of normalised totals and the session count."""

    client_id: str
    concerns: tuple[str, ...]
    total: float = 0.0
    sessions: int = 0
    score_ids: tuple[str, ...] = field(default=())

    @property
    def mean(self) -> float:
        return self.total / self.sessions if self.sessions else 0.0


def add_session(client: ClientAlliance | None, client_id: str, concerns: tuple[str, ...],
                stats: Mapping[str, FitStat], score_id: str, value: float,
                ) -> tuple[ClientAlliance, dict[str, FitStat]] | None:
    """Fold one scored session into a counselor's fit; None if that score was already counted.

    Each client counts once per concern, with the mean of their sessions: the concern totals move by the
    change of that client's mean. A client keeps the concerns they had at their first scored session.
    """
    if client is not None and score_id in client.score_ids:
        return None
    old_mean = client.mean if client else 0.0
    client = client or ClientAlliance(client_id, tuple(concerns))
    updated = ClientAlliance(client.client_id, client.concerns, client.total + value, client.sessions + 1,
                             client.score_ids + (score_id,))
    new_stats = dict(stats)
    for concern in updated.concerns:
        stat = new_stats.get(concern, FitStat(0.0, 0))
        new_clients = stat.clients + (0 if client.sessions else 1)
        new_stats[concern] = FitStat(stat.total + updated.mean - old_mean, new_clients)
    return updated, new_stats


# --- Workflow --------------------------------------------------------------------------------------------

OPEN, ACCEPTED, DECLINED, SUPERSEDED = "recommended", "accepted", "declined", "superseded"
STATUSES = (OPEN, ACCEPTED, DECLINED, SUPERSEDED)
DECLINE_REASONS = ("no_suitable_candidate", "client_declined", "clinical_judgement", "other")


class ReferralNotFound(LookupError):
    """No such referral among those the caller may see."""


class ReferralNotOpen(Exception):
    """The referral was decided (or superseded) already; `status` says which."""

    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


class NotACandidate(ValueError):
    """The chosen counselor is not one of the referral's candidates."""


class StaleReferral(Exception):
    """The referral was made while the client was with another counselor than the client's counselor now:
    accepting it would move the client on facts that no longer hold."""

    def __init__(self, decided_for: str | None, current: str | None):
        super().__init__(f"made for {decided_for}, the client's counselor is {current}")
        self.decided_for, self.current = decided_for, current


def check_accept(status: str, candidate_ids: Iterable[str], counselor_id: str, decided_for: str | None,
                 client_counselor_id: str | None) -> None:
    """An open referral, a candidate of it, and a client still with the counselor the referral was made for
    (`decided_for`, the referral's current counselor). A client whose counselor referral has not heard of
    (None) contradicts nothing: intake, which knows, checks again."""
    if status != OPEN:
        raise ReferralNotOpen(status)
    if counselor_id not in set(candidate_ids):
        raise NotACandidate(counselor_id)
    if client_counselor_id is not None and decided_for != client_counselor_id:
        raise StaleReferral(decided_for, client_counselor_id)


def check_decline(status: str) -> None:
    if status != OPEN:
        raise ReferralNotOpen(status)


def superseded_by_assignment(status: str, decided_for: str | None, client_counselor_id: str | None) -> bool:
    """An open referral is superseded once the client's counselor is no longer the one it was made for.

    Compared with the client's counselor after the assignment was applied (not with the assignment event's
    counselor): an older assignment delivered late changes neither, so it closes nothing. A referral made
    for the counselor the client has now (a review of the new match) stays open.
    """
    return status == OPEN and decided_for != client_counselor_id

