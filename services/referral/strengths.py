"""Measured strengths: how a counselor's clients of one concern rate the working alliance with them, as an
estimate with its uncertainty. Pure Python (no numpy): the bench runs it without the venv.

The model. Every session total is normalised to 0..1 (domain.InstrumentRange). For one concern,

    y[j,i,s] = m[j] + u[j,i] + e[j,i,s]

session s of client i with counselor j: e ~ (0, σ²) is the session-to-session noise within a client,
u ~ (0, τ²_client) how clients of one counselor differ, m[j] ~ (μ, τ²_counselor) how counselors differ
around the organisation's mean μ for that concern. Three levels, estimated in turn (empirical Bayes):

1. σ² (within-client variance) is pooled over every client of the organisation from the per-client sums of
   squares: Σ(Σy² − (Σy)²/n) / Σ(n − 1). Records stored before the sum of squares was kept, and clients with
   one session, say nothing about it and are left out of the pool; with no pool at all
   `default_session_sd` stands in.
2. τ²_client (between-client variance) by the method of moments, pooled over every (counselor, concern):
   the spread of client means around their counselor's mean, less the part σ²/n the sessions explain;
   floored at MIN_CLIENT_VAR, `default_client_sd` without two clients of one counselor anywhere.
3. A counselor's raw mean for the concern weighs each client by 1/(τ²_client + σ²/n_sessions), so a client
   seen 30 times counts more than one seen once, but no client weighs more than 1/τ²_client: many clients
   with few sessions beat one client with many. Its variance is 1 / Σ weights.
4. τ²_counselor per concern by the method of moments over the counselors with data: the spread of their
   raw means less their average sampling variance, floored at `min_counselor_sd`² (never zero: some
   counselors do differ, and a zero would shrink everyone onto the mean). μ is the precision-weighted mean
   of the raw means (`default_mean` when nobody has data for the concern). Counselors below the minimum
   evidence count here too, weighted by their (low) precision.
5. The posterior: estimate = μ + B (raw − μ) with B = τ²_counselor / (τ²_counselor + var(raw)), and its SD
   √(B var(raw)). No evidence gives μ with SD τ_counselor; evidence pulls it toward the raw mean and
   narrows it.

Ranking reads a standardised effect, (estimate − μ) / (2 τ_counselor), clamped to [−1, 1]: half the
number of between-counselor SDs the counselor sits above the usual for that concern. No data is 0 —
neutral, never a prior-sized bonus — and a counselor with fewer than `min_clients` clients of the concern
has no strength shown or weighed at all ("not enough data yet"): small caseloads are never ranked on noise.
With the default weight_fit 0.40, an effect of 1 (two between-counselor SDs above the usual) outweighs a
gender preference and the same clinic together (0.20), an effect of 0.5 ties them. The effect is symmetric:
a well-evidenced weak alliance with a concern counts against a counselor for clients of that concern.
Strengths are shown one counselor at a time, for the client's concerns, with their uncertainty and evidence
(the referral page, to supervisors): never as a table of counselors ordered by strength.

Trade-offs, stated: moments rather than REML (closed form, stable, O(records), fine for a ranking signal);
one σ² and one τ²_client for the whole organisation (enough data to estimate them; a counselor-specific
session noise would be over-fitted); the organisation's mean rather than the clinic's (counselors work at
several clinics and the per-client records do not say where a session took place); a client counts in each
of the concerns of their first scored session; the alliance level, not its change over the first sessions.
The estimates depend on the whole organisation's data, so they are computed for a whole directory at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

# Variance floors on the 0..1 scale: an SD of 0.01 between clients, 0.001 between sessions.
MIN_CLIENT_VAR = 0.01 ** 2
MIN_SESSION_VAR = 0.001 ** 2


@dataclass(frozen=True)
class ClientAlliance:
    """One client's sessions with one counselor: the sum of normalised totals, their sum of squares (None for
    records kept before it was: unknown, not zero) and the session count."""

    client_id: str
    concerns: tuple[str, ...]
    total: float = 0.0
    sessions: int = 0
    score_ids: tuple[str, ...] = field(default=())
    sum_squares: float | None = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.sessions if self.sessions else 0.0

    def within_variance(self) -> tuple[float, int] | None:
        """(Σ squared deviations from the client's mean, degrees of freedom), or None if unknown."""
        if self.sum_squares is None or self.sessions < 2:
            return None
        return max(0.0, self.sum_squares - self.total * self.total / self.sessions), self.sessions - 1


@dataclass(frozen=True)
class Strength:
    """A counselor's measured alliance with clients of one concern: the posterior estimate (0..1), its SD, the
    standardised effect ranking reads and the usual level. Below the minimum evidence those are None: only
    the counts are said ("not enough data yet")."""

    concern: str
    clients: int
    sessions: int
    estimate: float | None = None
    sd: float | None = None
    effect: float | None = None
    # The organisation's usual level for the concern, that the estimate was shrunk toward.
    usual: float | None = None

    @property
    def enough(self) -> bool:
        return self.estimate is not None


@dataclass(frozen=True)
class ConcernPrior:
    """The organisation's usual level for one concern: the mean, the between-counselor variance and how many
    counselors measured it."""

    mean: float
    counselor_var: float
    counselors: int

    @property
    def counselor_sd(self) -> float:
        return math.sqrt(self.counselor_var)


@dataclass(frozen=True)
class StrengthModel:
    """What the estimate needs besides the data (MatchingConfig carries these)."""

    min_clients: int = 5
    default_mean: float = 0.75
    default_session_sd: float = 0.10
    default_client_sd: float = 0.10
    min_counselor_sd: float = 0.025


def counselor_mean(clients: Iterable[tuple[float, int]], session_var: float, client_var: float,
                   ) -> tuple[float, float]:
    """The precision-weighted mean of (client mean, sessions) pairs and its variance; (0, inf) without clients."""
    weight_sum = weighted = 0.0
    for mean, sessions in clients:
        w = 1.0 / (client_var + session_var / sessions)
        weight_sum += w
        weighted += w * mean
    if weight_sum == 0:
        return 0.0, math.inf
    return weighted / weight_sum, 1.0 / weight_sum


def shrink(raw: float, raw_var: float, prior: ConcernPrior) -> tuple[float, float]:
    """The posterior mean and SD of a counselor's level given the raw mean and its sampling variance."""
    if math.isinf(raw_var):
        return prior.mean, prior.counselor_sd
    b = prior.counselor_var / (prior.counselor_var + raw_var)
    return prior.mean + b * (raw - prior.mean), math.sqrt(b * raw_var)


def effect(estimate: float, prior: ConcernPrior) -> float:
    """(estimate − μ) / (2 τ_counselor), clamped to [−1, 1]."""
    return max(-1.0, min(1.0, (estimate - prior.mean) / (2.0 * prior.counselor_sd)))


class StrengthTable:
    """Every counselor's strengths per concern, estimated together (the levels above share the data)."""

    def __init__(self, alliances: Mapping[str, Iterable[ClientAlliance]], model: StrengthModel = StrengthModel()):
        self.model = model
        records = {cid: [c for c in clients if c.sessions > 0] for cid, clients in alliances.items()}
        self.session_var = _pooled_session_var(records, model)
        groups: dict[tuple[str, str], list[ClientAlliance]] = {}
        for cid, clients in records.items():
            for client in clients:
                for concern in dict.fromkeys(client.concerns):
                    groups.setdefault((cid, concern), []).append(client)
        self.client_var = _client_var(groups.values(), self.session_var, model)
        raw: dict[str, dict[str, tuple[float, float, int, int]]] = {}
        for (cid, concern), clients in groups.items():
            mean, var = counselor_mean(((c.mean, c.sessions) for c in clients), self.session_var, self.client_var)
            raw.setdefault(concern, {})[cid] = (mean, var, len(clients), sum(c.sessions for c in clients))
        self.priors = {concern: _prior(list(by_counselor.values()), model) for concern, by_counselor in raw.items()}
        self.by_counselor: dict[str, dict[str, Strength]] = {}
        for concern, by_counselor in raw.items():
            prior = self.priors[concern]
            for cid, (mean, var, n_clients, n_sessions) in by_counselor.items():
                if n_clients < model.min_clients:
                    strength = Strength(concern, n_clients, n_sessions)
                else:
                    estimate, sd = shrink(mean, var, prior)
                    strength = Strength(concern, n_clients, n_sessions, estimate, sd, effect(estimate, prior),
                                        prior.mean)
                self.by_counselor.setdefault(cid, {})[concern] = strength

    def prior(self, concern: str) -> ConcernPrior:
        return self.priors.get(concern) or ConcernPrior(self.model.default_mean, self.model.min_counselor_sd ** 2, 0)

    def strength(self, counselor_id: str, concern: str) -> Strength:
        return self.by_counselor.get(counselor_id, {}).get(concern) or Strength(concern, 0, 0)


def _pooled_session_var(records: Mapping[str, list[ClientAlliance]], model: StrengthModel) -> float:
    squares = dof = 0.0
    for clients in records.values():
        for client in clients:
            within = client.within_variance()
            if within is not None:
                squares += within[0]
                dof += within[1]
    return max(MIN_SESSION_VAR, squares / dof) if dof else model.default_session_sd ** 2


def _client_var(groups: Iterable[list[ClientAlliance]], session_var: float, model: StrengthModel) -> float:
    squares = noise = 0.0
    dof = clients_counted = 0
    for clients in groups:
        if len(clients) < 2:
            continue
        mean = sum(c.mean for c in clients) / len(clients)
        squares += sum((c.mean - mean) ** 2 for c in clients)
        dof += len(clients) - 1
        noise += sum(session_var / c.sessions for c in clients)
        clients_counted += len(clients)
    if not dof:
        return model.default_client_sd ** 2
    return max(MIN_CLIENT_VAR, squares / dof - noise / clients_counted)


def _prior(raw: list[tuple[float, float, int, int]], model: StrengthModel) -> ConcernPrior:
    floor = model.min_counselor_sd ** 2
    k = len(raw)
    if k >= 2:
        plain = sum(mean for mean, *_ in raw) / k
        spread = sum((mean - plain) ** 2 for mean, *_ in raw) / (k - 1)
        counselor_var = max(floor, spread - sum(var for _, var, *_ in raw) / k)
    else:
        counselor_var = floor
    weights = [1.0 / (counselor_var + var) for _, var, *_ in raw]
    mean = sum(w * m for w, (m, *_) in zip(weights, raw)) / sum(weights)
    return ConcernPrior(mean, counselor_var, k)
