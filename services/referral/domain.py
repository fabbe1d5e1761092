"""Counselor matching and the referral workflow rules. Pure Python: no web framework, broker or database.

Matching is a filter then a score. Hard constraints (same organisation, language, modality and clinic,
open to new clients with capacity left, not an excluded counselor) remove candidates, counted per reason;
a weighted sum of soft criteria ranks the rest, and every candidate carries that sum's parts:

    specialty   weight_specialty (× outside_expertise_factor when the client said "outside my counselor's
                expertise") × the share of the client's concerns the counselor specialises in
    strength    weight_fit × the mean over the client's concerns of the counselor's measured strength,
                a standardised effect in [−1, 1] (see strengths.py: a two-level empirical-Bayes estimate;
                0 without enough evidence, so no data is neutral)
    preference  weight_preference if the counselor's gender is the one the client asked for
    capacity    weight_caseload × the share of the counselor's weekly places still free
    clinic      weight_same_clinic if the counselor works at the client's clinic

Ranking must stay fast for large directories: a `Directory` precomputes what does not depend on the client
once (strengths included), the loop over counselors touches plain attributes only, and reasons and parts
are built for the top N alone.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from services.common.events import ExitInterviewSubmitted
from services.referral.strengths import (ClientAlliance, ConcernPrior, Strength, StrengthModel,  # noqa: F401
                                         StrengthTable)

SCORE_DIGITS = 6  # scores are rounded so that equal sums computed in another order still tie
MAX_REASON_LENGTH = 120
# The parts of a score, in the order they are summed.
PARTS = ("specialty", "strength", "preference", "capacity", "clinic")
# Why a counselor was not a candidate (Recommendation.excluded).
EXCLUSIONS = ("current_counselor", "other_organisation", "inactive", "not_accepting", "no_capacity", "language",
              "modality")


@dataclass(frozen=True)
class MatchingConfig:
    top_n: int = 5
    weight_specialty: float = 0.35
    # The measured strength's weight: a clear, well-evidenced strength (effect 1) outweighs a gender
    # preference and the same clinic together.
    weight_fit: float = 0.40
    weight_preference: float = 0.10
    weight_caseload: float = 0.15
    weight_same_clinic: float = 0.10
    # "Outside my counselor's expertise": specialties covering the concerns count this many times more.
    outside_expertise_factor: float = 2.0
    # A strength is shown and weighs in only from this many clients of the concern on.
    min_strength_clients: int = 5
    # The usual level (0..1) for a concern nobody in the organisation has measured yet.
    default_fit_prior: float = 0.75
    # Stand-ins while the organisation has too little data to estimate them (0..1 scale): the SD of one
    # client's sessions, and of clients of one counselor.
    default_session_sd: float = 0.10
    default_client_sd: float = 0.10
    # The between-counselor SD per concern is never taken below this (so nobody is shrunk onto the mean).
    min_counselor_sd: float = 0.025
    # A strength with at least this effect (in [−1, 1]: half a between-counselor SD is 0.25) earns the
    # "strong alliance" reason.
    strong_effect: float = 0.25
    # An exit-interview answer (1..5) at or below this says the fit is poor.
    poor_fit_max_answer: int = 2
    # alliance.dropped rules that ask for a review of the match: an alliance that stays below the cutoff, or
    # keeps falling (a single low session does not).
    review_rules: tuple[str, ...] = ("persistently_low", "sustained_decline", "reliable_drop")

    def strength_model(self) -> StrengthModel:
        return StrengthModel(self.min_strength_clients, self.default_fit_prior, self.default_session_sd,
                             self.default_client_sd, self.min_counselor_sd)


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
    """A counselor's running sums for one concern: the sum over clients of each client's mean normalised
    alliance (0..1), and how many clients that is. Kept on the stored fit for reading at a glance; matching
    estimates strengths from the per-client records (ClientAlliance) instead."""

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
    """A counselor, the score, the reasons (statements about the counselor), the score's parts (PARTS: they
    sum to the score) and, per concern of the client, the strength evidence behind the strength part."""

    counselor_id: str
    score: float
    reasons: tuple[str, ...]
    parts: Mapping[str, float] = field(default_factory=dict)
    strengths: tuple[Strength, ...] = ()


@dataclass(frozen=True)
class Recommendation:
    """The candidates, how many counselors each hard constraint removed (EXCLUSIONS: only those that
    removed someone) and the weights that applied (PARTS; specialty already multiplied for outside
    expertise)."""

    candidates: list[Candidate]
    excluded: Mapping[str, int]
    weights: Mapping[str, float]
    outside_expertise: bool = False


class _Row:
    """What ranking reads per counselor, computed once per directory."""

    __slots__ = ("counselor", "closed", "balance", "telehealth", "in_person", "strengths", "effects")

    def __init__(self, counselor: Counselor, strengths: Mapping[str, Strength]):
        self.counselor = counselor
        self.closed = ("inactive" if not counselor.active else "not_accepting" if not counselor.accepting_new_clients
                       else "no_capacity" if counselor.caseload >= counselor.weekly_capacity else None)
        self.balance = (1.0 - counselor.caseload / counselor.weekly_capacity) if self.closed is None else 0.0
        self.telehealth = "telehealth" in counselor.modalities
        self.in_person = "in_person" in counselor.modalities
        self.strengths = strengths
        # Only the concerns where the strength weighs in (enough evidence, not exactly average).
        self.effects = {concern: s.effect for concern, s in strengths.items() if s.effect}


class Directory:
    """The counselors and their measured strengths, ready to rank. Built from the counselors and, per
    counselor, their clients' alliance records; the strengths are estimated over the whole directory."""

    def __init__(self, counselors: Iterable[Counselor], alliances: Mapping[str, Iterable[ClientAlliance]],
                 config: MatchingConfig | None = None):
        config = config or MatchingConfig()
        # Sorted by id: iteration order, and so every tie, is the same whatever order the store returned.
        ordered = sorted(counselors, key=lambda c: c.counselor_id)
        self.strengths = StrengthTable(alliances, config.strength_model())
        self.rows = [_Row(c, self.strengths.by_counselor.get(c.counselor_id, {})) for c in ordered]

    def with_counselors(self, changed: Iterable[Counselor]) -> "Directory":
        """This directory with some counselors' facts replaced (or added), every strength kept: a counselor's
        facts (capacity, clinics, whether accepting) move no strength, and estimating them again would read
        the whole organisation's records."""
        rows = {row.counselor.counselor_id: row for row in self.rows}
        for counselor in changed:
            rows[counselor.counselor_id] = _Row(counselor, self.strengths.by_counselor.get(counselor.counselor_id, {}))
        updated = object.__new__(Directory)
        updated.strengths = self.strengths
        updated.rows = [rows[counselor_id] for counselor_id in sorted(rows)]
        return updated

    def prior(self, concern: str) -> ConcernPrior:
        return self.strengths.prior(concern)

    def strength(self, counselor_id: str, concern: str) -> Strength:
        return self.strengths.strength(counselor_id, concern)


class _Weights:
    __slots__ = ("specialty", "specialty_per_concern", "strength", "strength_per_concern", "preference",
                 "capacity", "clinic")

    def __init__(self, request: MatchRequest, concerns: tuple[str, ...], config: MatchingConfig):
        self.specialty = config.weight_specialty * (config.outside_expertise_factor if request.outside_expertise
                                                    else 1)
        self.specialty_per_concern = self.specialty / len(concerns) if concerns else 0.0
        self.strength = config.weight_fit
        self.strength_per_concern = self.strength / len(concerns) if concerns else 0.0
        self.preference, self.capacity = config.weight_preference, config.weight_caseload
        self.clinic = config.weight_same_clinic


def _parts(row: _Row, concerns: tuple[str, ...], concern_set: frozenset[str], clinic: str, gender: str | None,
           w: _Weights) -> tuple[float, float, float, float, float]:
    """The score's parts in PARTS order; ranking sums them in this order, so they add up to the score."""
    c = row.counselor
    strength = 0.0
    if row.effects:
        effects = row.effects
        for concern in concerns:
            strength += effects.get(concern, 0.0)
        strength *= w.strength_per_concern
    return (w.specialty_per_concern * len(concern_set & c.specialties), strength,
            w.preference if gender and c.gender == gender else 0.0, w.capacity * row.balance,
            w.clinic if clinic in c.clinic_ids else 0.0)


def recommend(directory: Directory, request: MatchRequest, config: MatchingConfig) -> Recommendation:
    """The best `config.top_n` counselors for the client, best first (ties go to the smaller id), with what
    the hard constraints removed and the weights applied."""
    client = request.client
    concerns = tuple(dict.fromkeys(client.concerns))
    concern_set = frozenset(concerns)
    w = _Weights(request, concerns, config)
    w_specialty, w_strength, w_preference = w.specialty_per_concern, w.strength_per_concern, w.preference
    w_capacity, w_clinic = w.capacity, w.clinic
    org, clinic, language, modality = client.org_id, client.clinic_id, client.language, client.modality
    gender = client.counselor_gender
    exclude = request.exclude
    excluded = dict.fromkeys(EXCLUSIONS, 0)

    scored: list[tuple[float, str, _Row]] = []
    for row in directory.rows:
        c = row.counselor
        # Hard constraints first, cheapest first.
        if c.org_id != org:
            excluded["other_organisation"] += 1
            continue
        if c.counselor_id in exclude:
            excluded["current_counselor"] += 1
            continue
        if row.closed is not None:
            excluded[row.closed] += 1
            continue
        if language and language not in c.languages:
            excluded["language"] += 1
            continue
        in_clinic = clinic in c.clinic_ids
        if modality == "in_person":
            admitted = in_clinic and row.in_person
        elif modality == "telehealth":
            admitted = row.telehealth
        else:  # "either": this clinic, or any clinic over telehealth
            admitted = in_clinic or row.telehealth
        if not admitted:
            excluded["modality"] += 1
            continue
        # _parts, inlined (this loop is the hot path): the same terms summed in the same order.
        strength = 0.0
        if row.effects:
            effects = row.effects
            for concern in concerns:
                strength += effects.get(concern, 0.0)
            strength *= w_strength
        score = (w_specialty * len(concern_set & c.specialties) + strength
                 + (w_preference if gender and c.gender == gender else 0.0) + w_capacity * row.balance
                 + (w_clinic if in_clinic else 0.0))
        scored.append((-round(score, SCORE_DIGITS), c.counselor_id, row))
    best = heapq.nsmallest(config.top_n, scored, key=lambda item: (item[0], item[1]))
    candidates = [_candidate(row, -negative, request, concerns, concern_set, w, directory, config)
                  for negative, _, row in best]
    weights = {"specialty": w.specialty, "strength": w.strength, "preference": w.preference,
               "capacity": w.capacity, "clinic": w.clinic}
    return Recommendation(candidates, {code: n for code, n in excluded.items() if n}, weights,
                          request.outside_expertise)


def rank(directory: Directory, request: MatchRequest, config: MatchingConfig) -> list[Candidate]:
    """The best `config.top_n` counselors for the client, best first; ties go to the smaller id."""
    return recommend(directory, request, config).candidates


def _candidate(row: _Row, score: float, request: MatchRequest, concerns: tuple[str, ...],
               concern_set: frozenset[str], w: _Weights, directory: Directory, config: MatchingConfig) -> Candidate:
    client = request.client
    parts = dict(zip(PARTS, (round(p, SCORE_DIGITS) for p in _parts(row, concerns, concern_set, client.clinic_id,
                                                                    client.counselor_gender, w))))
    strengths = tuple(row.strengths.get(concern) or Strength(concern, 0, 0) for concern in concerns)
    return Candidate(row.counselor.counselor_id, score, _reasons(row, request, strengths, config), parts, strengths)


def wire_parts(candidate: Candidate) -> dict[str, float]:
    """The parts as numbers for the `referral.recommended` event: each part by name, and per concern
    `strength.<concern>.clients` and `.sessions`, with `.estimate`, `.sd`, `.effect` and `.usual` only when
    there is enough evidence to show a strength."""
    wire = dict(candidate.parts)
    for s in candidate.strengths:
        prefix = f"strength.{s.concern}."
        wire[prefix + "clients"], wire[prefix + "sessions"] = float(s.clients), float(s.sessions)
        if s.enough:
            wire[prefix + "estimate"] = round(s.estimate, 4)
            wire[prefix + "sd"] = round(s.sd, 4)
            wire[prefix + "effect"] = round(s.effect, 4)
            wire[prefix + "usual"] = round(s.usual, 4)
    return wire


def _reasons(row: _Row, request: MatchRequest, strengths: tuple[Strength, ...],
             config: MatchingConfig) -> tuple[str, ...]:
    """Why this counselor: statements about the counselor, never about the client."""
    c, client = row.counselor, request.client
    reasons = []
    covered = [concern for concern in client.concerns if concern in c.specialties]
    if covered:
        reasons.append(_limited("specialises in ", covered))
    if client.language:
        reasons.append(f"speaks {client.language}")
    for s in strengths:
        name = s.concern.replace("_", " ")
        if s.enough and s.effect >= config.strong_effect:
            reasons.append(f"strong alliance with {name} clients ({_count(s.clients, 'client')}, "
                           f"{_count(s.sessions, 'session')})"[:MAX_REASON_LENGTH])
        elif 0 < s.clients < config.min_strength_clients:
            reasons.append(f"alliance with {name} clients: not enough data yet ({_count(s.clients, 'client')})"
                           [:MAX_REASON_LENGTH])
    if client.counselor_gender and c.gender == client.counselor_gender:
        reasons.append(f"{c.gender} counselor, as preferred")
    if client.clinic_id in c.clinic_ids:
        reasons.append("works at this clinic")
    elif row.telehealth:
        reasons.append("offers telehealth from another clinic")
    free = c.weekly_capacity - c.caseload
    reasons.append(f"{free} of {c.weekly_capacity} places free")
    return tuple(reasons)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


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


def add_session(client: ClientAlliance | None, client_id: str, concerns: tuple[str, ...],
                stats: Mapping[str, FitStat], score_id: str, value: float,
                ) -> tuple[ClientAlliance, dict[str, FitStat]] | None:
    """Fold one scored session into a counselor's fit; None if that score was already counted.

    The client's record sums the session's value and its square (for the within-client variance). Each
    client counts once per concern in the running sums, with the mean of their sessions: the concern totals
    move by the change of that client's mean. A client keeps the concerns they had at their first scored
    session.
    """
    if client is not None and score_id in client.score_ids:
        return None
    old_mean = client.mean if client else 0.0
    client = client or ClientAlliance(client_id, tuple(concerns))
    # A record kept before squares were summed stays without them: its sum of squares is unknown.
    squares = None if client.sum_squares is None else client.sum_squares + value * value
    updated = ClientAlliance(client.client_id, client.concerns, client.total + value, client.sessions + 1,
                             client.score_ids + (score_id,), squares)
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

