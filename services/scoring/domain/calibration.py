"""The alert threshold k that gives a clinic its alert budget. Pure Python, deterministic.

A change alert fires when a session's standardized fall z (alerting.py) exceeds k. How many false alerts
a given k makes is not a textbook quantile: ratings are whole numbers close to a ceiling, clients differ in
how much they vary, baselines are short and sometimes hold a rupture. A normal quantile is off by a factor
of two to ten either way. So k is found the way one checks a control chart: simulate a caseload like the
clinic's - its dyads' levels and lengths, its noise and item correlation, with ruptures and slow trends at
the rates of the documented reference model below - run the very same rule over it, and read off the k at
which sessions without a rupture or decline alert at the budgeted rate. The simulation's noise is fitted
so that its pooled within-client SD equals the clinic's; before a clinic has enough sessions of its own,
the instrument's documented standard error of measurement and the reference levels stand in.

What this cannot know is how a clinic's caseload differs from the reference beyond its levels and noise.
On the project's simulated caseloads the realised false alerts came to 0.85-1.0 x the budget where the
rupture rate matched the reference, 1.0-1.4 x with half of it, 0.4-0.7 x with 1.8 times it, and 1.0-1.3 x
with heavy-tailed session moods. The back-test and the admin's preview report what a clinic's own data gives.
"""
from __future__ import annotations

import math
import random
import statistics
import zlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from services.scoring.domain.alerting import RUPTURE, AlertScale, standardized_fall
from services.scoring.domain.instruments import SUBSCALES, Instrument

WEEKS_PER_MONTH = 365.25 / 7 / 12
# Before a clinic's own figure is known: a counselor seeing twenty clients weekly.
DEFAULT_SESSIONS_PER_COUNSELOR_MONTH = 20 * WEEKS_PER_MONTH
# A clinic's own data replaces the instrument's documented values from this much on.
MIN_DYADS, MIN_SESSIONS = 30, 300
# Whole-point answers: a pooled SD below half a point would be a clinic whose clients never move.
MIN_POOLED_SD = 0.5
# Budgets are looked up in a table of per-session false-alert rates, log-spaced over this range.
ALPHA_RANGE, ALPHA_STEPS = (1e-4, 0.3), 48


@dataclass(frozen=True)
class ReferenceModel:
    """What a caseload holds besides noise, from the session-rating literature and the project's caseload
    tests: about one rupture per two clients over a course of 8-20 weekly sessions, of 2-3.5 of the client's
    own SDs, lasting 1-3 sessions, one dimension hit hardest; three clients in twenty growing slowly and
    three declining slowly. Used only to count false alerts; never to score a real session."""

    noise_spread: float = 0.45  # lognormal spread of the per-client noise around the fitted median
    rupture_rate: float = 0.05  # chance that a session from the third on starts a rupture
    rupture_size: tuple[float, float] = (2.0, 3.5)  # in the client's SDs of the total
    rupture_lengths: tuple[int, ...] = (1, 2, 2, 3)
    hardest_share: tuple[float, float] = (0.35, 0.55)  # of the fall, on the dimension hit hardest
    growth_share: float = 0.15
    decline_share: float = 0.15
    growth_per_session: tuple[float, float] = (0.004, 0.012)  # share of an item's range per session
    decline_per_session: tuple[float, float] = (0.008, 0.02)
    # Levels when a clinic has no data: item means near the top (share of the range), some clients lower.
    usual_level: tuple[float, float] = (0.9, 0.06)
    low_level: tuple[float, float] = (0.65, 0.08)
    low_share: float = 0.15
    reference_dyads: int = 400
    reference_sessions: tuple[int, int] = (8, 20)
    simulated_sessions: int = 40_000  # for k; about 0.5 % error on a 1 % rate
    fit_sessions: int = 8_000  # per step of the noise fit


REFERENCE = ReferenceModel()


@dataclass(frozen=True)
class DyadProfile:
    """One dyad as the simulation needs it: each item's usual value (share of its range, after reverse
    scoring) and how many sessions it had."""

    levels: tuple[float, ...]
    sessions: int


@dataclass(frozen=True)
class Calibration:
    instrument_id: str
    source: str  # "clinic": fitted to the clinic's sessions; "instrument": documented values
    pooled_sd: float  # robust within-client SD of the total
    dimension_sd: float
    item_noise: float  # fitted median latent noise per item, share of its range
    item_correlation: float
    sessions_per_counselor_month: float
    dyads: int
    sessions: int
    detector: tuple[int, float, int]  # (window, prior weight, minimum baseline sessions) it was made for
    k_table: tuple[tuple[float, float], ...]  # (false alerts per session, k), alpha ascending

    def k_for(self, false_alerts_per_counselor_month: float) -> float:
        """k at which sessions without rupture or decline alert at the budgeted rate (log-interpolated)."""
        alpha = false_alerts_per_counselor_month / self.sessions_per_counselor_month
        table = self.k_table
        if alpha <= table[0][0]:
            return table[0][1]
        for (a0, k0), (a1, k1) in zip(table, table[1:]):
            if alpha <= a1:
                share = (math.log(alpha) - math.log(a0)) / (math.log(a1) - math.log(a0))
                return k0 + share * (k1 - k0)
        return table[-1][1]

    def scale_for(self, false_alerts_per_counselor_month: float) -> AlertScale:
        return AlertScale(k=self.k_for(false_alerts_per_counselor_month), pooled_sd=self.pooled_sd,
                          dimension_sd=self.dimension_sd)

    def fits(self, rules: Mapping[str, Mapping[str, Any]]) -> bool:
        return self.detector == detector_params(rules)

    def to_dict(self) -> dict[str, Any]:
        # No arrays in arrays: FerretDB 1.24 stores none.
        return {"instrument_id": self.instrument_id, "source": self.source, "pooled_sd": self.pooled_sd,
                "dimension_sd": self.dimension_sd, "item_noise": self.item_noise,
                "item_correlation": self.item_correlation,
                "sessions_per_counselor_month": self.sessions_per_counselor_month, "dyads": self.dyads,
                "sessions": self.sessions, "detector": list(self.detector),
                "alphas": [a for a, _ in self.k_table], "ks": [k for _, k in self.k_table]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        fields = {k: v for k, v in data.items() if k not in ("alphas", "ks")}
        return cls(**{**fields, "detector": tuple(data["detector"]),
                      "k_table": tuple(zip(data["alphas"], data["ks"]))})


def detector_params(rules: Mapping[str, Mapping[str, Any]]) -> tuple[int, float, int]:
    p = rules[RUPTURE]
    return int(p["window"]), float(p["prior_weight"]), int(p["min_baseline_sessions"])


# --- What the data says ---------------------------------------------------------------------------------

def robust_within_sd(series: Iterable[Sequence[float]], clip: float = 2.0, rounds: int = 5) -> float | None:
    """Pooled within-client SD from successive differences, winsorized at `clip` SDs.

    Successive differences leave out slow trends (growth, decline) that a plain pooled SD would count as
    noise, and winsorizing keeps the few large falls of ruptures from inflating it. None without two
    sessions of one dyad.
    """
    diffs = [b - a for s in series for a, b in zip(s, s[1:])]
    if not diffs:
        return None
    sd = math.sqrt(sum(d * d for d in diffs) / (2 * len(diffs)))
    for _ in range(rounds):
        cap = clip * math.sqrt(2) * sd
        sd = math.sqrt(sum(min(abs(d), cap) ** 2 for d in diffs) / (2 * len(diffs)))
    return sd


def item_correlation(instrument: Instrument, dyads: Sequence[Sequence[Mapping[str, float]]]) -> float | None:
    """Pooled within-dyad correlation between items (how much one session's mood moves them together)."""
    values = [[[item.value(float(answers[item.link_id])) for item in instrument.items] for answers in dyad]
              for dyad in dyads if len(dyad) >= 3]
    squares = cross = 0.0
    count = 0
    for dyad in values:
        means = [statistics.fmean(column) for column in zip(*dyad)]
        for row in dyad:
            deviations = [v - m for v, m in zip(row, means)]
            own = sum(d * d for d in deviations)
            squares += own
            cross += sum(deviations) ** 2 - own
            count += 1
    items = len(instrument.items)
    if not count or items < 2 or squares == 0:
        return None
    correlation = (cross / (items * (items - 1))) / (squares / items)
    return min(0.95, max(0.0, correlation))


def profiles_from(instrument: Instrument, dyads: Sequence[Sequence[Mapping[str, float]]],
                  pooled_sd: float) -> list[DyadProfile]:
    """Each dyad's usual level per item: the mean over its sessions, leaving out those more than two pooled
    SDs below its median total (a rupture is not the client's usual level)."""
    profiles = []
    for dyad in dyads:
        values = [[item.value(float(answers[item.link_id])) for item in instrument.items] for answers in dyad]
        totals = [sum(row) for row in values]
        floor = statistics.median(totals) - 2 * pooled_sd
        usual = [row for row, total in zip(values, totals) if total >= floor] or values
        levels = tuple((statistics.fmean(column) - item.minimum) / (item.maximum - item.minimum)
                       for column, item in zip(zip(*usual), instrument.items))
        profiles.append(DyadProfile(levels, len(dyad)))
    return profiles


def reference_profiles(instrument: Instrument, model: ReferenceModel, rng: random.Random) -> list[DyadProfile]:
    profiles = []
    for _ in range(model.reference_dyads):
        mean, sd = model.low_level if rng.random() < model.low_share else model.usual_level
        base = rng.gauss(mean, sd)
        levels = tuple(min(1.0, max(0.0, base + rng.gauss(0, 0.04))) for _ in instrument.items)
        profiles.append(DyadProfile(levels, rng.randint(*model.reference_sessions)))
    return profiles


# --- The simulation -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Series:
    totals: list[float]
    null: list[bool]  # no rupture under way and not in a decline: where an alert would be false


def simulate(instrument: Instrument, profiles: Sequence[DyadProfile], noise: float, correlation: float,
             model: ReferenceModel, rng: random.Random) -> list[_Series]:
    """One pass over the profiles: whole-point values, clamped to each item's range, after a latent level
    plus per-client noise (a shared session factor and an item part), slow trends and ruptures."""
    items = instrument.items
    spans = [item.maximum - item.minimum for item in items]
    dimensions = sorted({item.subscale for item in items if item.subscale})
    shared_weight, own_weight = math.sqrt(correlation), math.sqrt(1 - correlation)
    series = []
    for profile in profiles:
        sigma = noise * math.exp(rng.gauss(0, model.noise_spread))
        n = profile.sessions
        draw = rng.random()
        slope, start = 0.0, n + 1
        if draw < model.growth_share:
            slope, start = rng.uniform(*model.growth_per_session), 1
        elif draw < model.growth_share + model.decline_share:
            slope, start = -rng.uniform(*model.decline_per_session), rng.randint(2, max(2, n - 5))
        # The client's SD of the total (in points), the unit of a rupture's size; at least half a point.
        total_sd = max(0.5, sigma * math.sqrt(sum(a * b * (1 if i == j else correlation)
                                                  for i, a in enumerate(spans) for j, b in enumerate(spans))))
        totals, null = [], []
        left, decay, falls = 0, 1.0, [0.0] * len(items)
        for number in range(1, n + 1):
            if left == 0 and number >= 3 and rng.random() < model.rupture_rate:
                left, decay = rng.choice(model.rupture_lengths), 1.0
                falls = _rupture(items, dimensions, rng.uniform(*model.rupture_size) * total_sd, model, rng)
            shift = slope * (number - start) if number > start else 0.0
            shared = rng.gauss(0, 1)
            total = 0.0
            for item, span, level, fall in zip(items, spans, profile.levels, falls):
                latent = min(1.0, level + shift) * span + sigma * span * (
                    shared_weight * shared + own_weight * rng.gauss(0, 1)) - (fall * decay if left else 0.0)
                total += item.minimum + max(0.0, min(span, round(latent)))
            totals.append(total)
            null.append(left == 0 and not (slope < 0 and number > start))
            if left:
                left -= 1
                decay *= rng.uniform(0.5, 0.9)
        series.append(_Series(totals, null))
    return series


def _rupture(items, dimensions, size: float, model: ReferenceModel, rng: random.Random) -> list[float]:
    """How a rupture of `size` points spreads over the items: a share on the dimension hit hardest."""
    hit = rng.choice(dimensions) if dimensions else None
    hardest = [i for i, item in enumerate(items) if item.subscale == hit] or [rng.randrange(len(items))]
    rest = [i for i in range(len(items)) if i not in hardest]
    share = rng.uniform(*model.hardest_share) if rest else 1.0
    falls = [0.0] * len(items)
    for i in hardest:
        falls[i] = share * size / len(hardest)
    for i in rest:
        falls[i] = (1 - share) * size / len(rest)
    return falls


def _replicated(profiles: Sequence[DyadProfile], sessions: int) -> list[DyadProfile]:
    per_pass = sum(p.sessions for p in profiles) or 1
    return list(profiles) * max(1, math.ceil(sessions / per_pass))


def fit_noise(instrument: Instrument, profiles: Sequence[DyadProfile], target_sd: float, correlation: float,
              model: ReferenceModel, seed: int) -> float:
    """The median per-item noise (share of the range) whose simulated caseload has `target_sd` as its
    robust pooled within-client SD. Bisection in log space; the same random numbers at every step keep the
    search monotone."""
    fitted = _replicated(profiles, model.fit_sessions)
    low, high = 0.002, 0.3
    for _ in range(10):
        middle = math.sqrt(low * high)
        sd = robust_within_sd(s.totals for s in simulate(instrument, fitted, middle, correlation, model,
                                                          random.Random(seed)))
        if sd is not None and sd < target_sd:
            low = middle
        else:
            high = middle
    return math.sqrt(low * high)


def false_alert_thresholds(instrument: Instrument, series: Sequence[_Series], pooled_sd: float,
                           detector: tuple[int, float, int]) -> tuple[tuple[float, float], ...]:
    """(alpha, k) pairs: k at which the given share of all sessions would be false alerts."""
    window, prior_weight, min_baseline = detector
    null_z = []
    sessions = 0
    for s in series:
        sessions += len(s.totals)
        for i, (total, null) in enumerate(zip(s.totals, s.null)):
            baseline = s.totals[:max(0, i - 1)][-window:]
            if null and len(baseline) >= min_baseline:
                null_z.append(standardized_fall(baseline, total, pooled_sd, prior_weight).z)
    null_z.sort(reverse=True)
    low, high = (math.log(a) for a in ALPHA_RANGE)
    table = []
    for step in range(ALPHA_STEPS):
        alpha = math.exp(low + (high - low) * step / (ALPHA_STEPS - 1))
        index = int(alpha * sessions)
        table.append((alpha, null_z[index] if index < len(null_z) else (null_z[-1] if null_z else 0.0)))
    return tuple(table)


def has_enough_data(dyads: Sequence[Sequence[Any]]) -> bool:
    """Whether a clinic's sessions are enough to replace the instrument's documented values."""
    return sum(len(d) >= 4 for d in dyads) >= MIN_DYADS and sum(len(d) for d in dyads) >= MIN_SESSIONS


def calibrate(instrument: Instrument, dyads: Sequence[Sequence[Mapping[str, float]]],
              rules: Mapping[str, Mapping[str, Any]],
              sessions_per_counselor_month: float | None = None,
              model: ReferenceModel = REFERENCE) -> Calibration:
    """The calibration for one instrument in one clinic from its dyads' answered sessions (each dyad's
    answers in session order) and its sessions per counselor-month; the instrument's documented values and
    the reference counselor's twenty weekly clients when there are too few sessions."""
    dyads = [d for d in dyads if d]
    sessions = sum(len(d) for d in dyads)
    seed = zlib.crc32(instrument.id.encode())
    if established := has_enough_data(dyads):
        totals = [[sum(item.value(float(a[item.link_id])) for item in instrument.items) for a in d] for d in dyads]
        pooled_sd = max(MIN_POOLED_SD, robust_within_sd(totals) or 0.0)
        correlation = item_correlation(instrument, dyads)
        correlation = 0.5 if correlation is None else correlation
        profiles = profiles_from(instrument, dyads, pooled_sd)
    else:
        pooled_sd, correlation = instrument.documented_noise, 0.5
        profiles = reference_profiles(instrument, model, random.Random(seed))
        # A caseload measured on so few sessions says little either: the reference counselor stands in.
        sessions_per_counselor_month = None
    detector = detector_params(rules)
    noise = fit_noise(instrument, profiles, pooled_sd, correlation, model, seed)
    series = simulate(instrument, _replicated(profiles, model.simulated_sessions), noise, correlation, model,
                      random.Random(seed + 1))
    return Calibration(
        instrument_id=instrument.id, source="clinic" if established else "instrument", pooled_sd=pooled_sd,
        dimension_sd=_dimension_sd(instrument, pooled_sd, correlation), item_noise=noise,
        item_correlation=correlation,
        sessions_per_counselor_month=sessions_per_counselor_month or DEFAULT_SESSIONS_PER_COUNSELOR_MONTH,
        dyads=len(dyads), sessions=sessions, detector=detector,
        k_table=false_alert_thresholds(instrument, series, pooled_sd, detector))


def _dimension_sd(instrument: Instrument, pooled_sd: float, correlation: float) -> float:
    """The within-client SD of one dimension's mean item score implied by the total's, with equally
    correlated items: an item's SD is the total's over sqrt(n (1 + (n - 1) r))."""
    n = len(instrument.items)
    item_sd = pooled_sd / math.sqrt(n * (1 + (n - 1) * correlation))
    per_dimension = [sum(1 for i in instrument.items if i.subscale == s) for s in SUBSCALES]
    m = statistics.fmean([c for c in per_dimension if c] or [1])
    return item_sd * math.sqrt((1 + (m - 1) * correlation) / m)


# --- Exposure: sessions per counselor-month -------------------------------------------------------------

def sessions_per_counselor_month_weekly(clients_by_counselor: Mapping[str, int],
                                        sessions_by_counselor: Mapping[str, int]) -> float | None:
    """Without dates: as if every client of a counselor were seen weekly, so that a counselor with c clients
    holds c x 4.35 sessions a month; their months are their sessions over that."""
    months = sum(sessions_by_counselor[c] / (clients * WEEKS_PER_MONTH)
                 for c, clients in clients_by_counselor.items() if clients)
    sessions = sum(sessions_by_counselor.values())
    return sessions / months if months else None


def sessions_per_counselor_month_dated(spans: Iterable[tuple[int, float]]) -> float | None:
    """From dated sessions: each counselor's (sessions, days from their first to their last session, at
    least a month) over the period looked at."""
    sessions = months = 0.0
    for count, days in spans:
        sessions += count
        months += max(1.0, days / (365.25 / 12))
    return sessions / months if months else None
