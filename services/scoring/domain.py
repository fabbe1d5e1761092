"""Alliance scoring rules. Pure Python: no web framework, broker or database here.

An instrument is data (a FHIR Questionnaire-shaped JSON file); nothing below knows an instrument by name.
Alert thresholds are data too (alert_rules.yaml, per-clinic overrides); nothing below hard-codes one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

SUBSCALES = ("goal", "task", "bond")
RULES = ("below_cutoff", "drop_vs_previous", "reliable_drop", "rupture", "sustained_decline")
EXIT_INTERVIEW_RULE = "exit_interview_low_fit"

# What a counselor can do first when a dimension fell (Bordin; Safran & Muran on repairing ruptures).
REPAIR_SUGGESTIONS = {
    "goal": "Revisit the client's goals together and agree again on what you are working towards.",
    "task": "Agree together what you will do in sessions; start small and check it makes sense to the client.",
    "bond": "Be patient, show genuine empathy and take an interest in what matters to the client.",
}


class InvalidAnswers(ValueError):
    """The answers do not fit the instrument (missing, unknown or out-of-range items)."""


@dataclass(frozen=True)
class Item:
    link_id: str
    subscale: str | None  # None: the item counts in the total only
    minimum: float
    maximum: float
    reverse: bool = False

    def value(self, answer: float) -> float:
        return self.minimum + self.maximum - answer if self.reverse else answer


@dataclass(frozen=True)
class Instrument:
    id: str
    title: str
    items: tuple[Item, ...]
    cutoff_total: float | None
    # Reliability (r) and SD of the total, for the reliable change index; None if the definition has none.
    reliability: float | None = None
    sd: float | None = None

    @property
    def min_total(self) -> float:
        return sum(i.minimum for i in self.items)

    @property
    def max_total(self) -> float:
        return sum(i.maximum for i in self.items)

    def subscale_range(self, subscale: str) -> tuple[float, float] | None:
        """(min, max) of a subscale's mean item score, None if no item belongs to it."""
        items = [i for i in self.items if i.subscale == subscale]
        if not items:
            return None
        return sum(i.minimum for i in items) / len(items), sum(i.maximum for i in items) / len(items)

    @property
    def reliable_change_index(self) -> float | None:
        """Jacobson & Truax (1991): the smallest change of the total beyond measurement error (95 %)."""
        return reliable_change_index(self.sd, self.reliability)


def reliable_change_index(sd: float | None, reliability: float | None, z: float = 1.96) -> float | None:
    """z × SD × √(2 × (1 − r)): z times the standard error of the difference of two scores."""
    if sd is None or reliability is None:
        return None
    return z * sd * math.sqrt(2 * (1 - reliability))


def parse_instrument(definition: Mapping[str, Any]) -> Instrument:
    """Read an instrument from its Questionnaire-shaped definition."""
    items = []
    for raw in definition["item"]:
        extra = raw["rapport"]
        subscale = extra.get("subscale")
        if subscale is not None and subscale not in SUBSCALES:
            raise ValueError(f"item {raw['linkId']}: subscale must be one of {SUBSCALES} or null")
        items.append(Item(link_id=raw["linkId"], subscale=subscale, minimum=float(extra["min"]),
                          maximum=float(extra["max"]), reverse=bool(extra.get("reverse", False))))
    extra = definition.get("rapport", {})
    cutoff = extra.get("cutoff", {}).get("total")
    change = extra.get("reliableChange", {})
    reliability, sd = change.get("reliability"), change.get("sd")
    if reliability is not None and not 0 <= reliability < 1:
        raise ValueError(f"{definition['id']}: reliability must be in [0, 1)")
    return Instrument(id=definition["id"], title=definition.get("title", definition["id"]),
                      items=tuple(items), cutoff_total=None if cutoff is None else float(cutoff),
                      reliability=None if reliability is None else float(reliability),
                      sd=None if sd is None else float(sd))


@dataclass(frozen=True)
class SessionScore:
    total: float
    mean: float
    subscales: Mapping[str, float | None]


def score_answers(instrument: Instrument, answers: Mapping[str, float]) -> SessionScore:
    """Total, mean item score and mean item score per subscale, after reverse-scoring."""
    expected = {i.link_id for i in instrument.items}
    missing, unknown = expected - set(answers), set(answers) - expected
    if missing or unknown:
        raise InvalidAnswers(f"missing items {sorted(missing)}, unknown items {sorted(unknown)}")
    values: dict[str, list[float]] = {s: [] for s in SUBSCALES}
    total = 0.0
    for item in instrument.items:
        answer = float(answers[item.link_id])
        if not item.minimum <= answer <= item.maximum:
            raise InvalidAnswers(f"item {item.link_id} outside {item.minimum:g}-{item.maximum:g}")
        value = item.value(answer)
        if item.subscale is not None:
            values[item.subscale].append(value)
        total += value
    subscales = {s: (sum(v) / len(v) if v else None) for s, v in values.items()}
    return SessionScore(total=total, mean=total / len(instrument.items), subscales=subscales)


# --- The client's own baseline, kept incrementally -----------------------------------------------------

@dataclass(frozen=True)
class RunningStats:
    """Welford's running mean and sum of squared deviations: O(1) per added value, numerically stable."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> "RunningStats":
        n = self.n + 1
        delta = value - self.mean
        mean = self.mean + delta / n
        return RunningStats(n=n, mean=mean, m2=self.m2 + delta * (value - mean))

    @property
    def sd(self) -> float | None:
        """Sample SD (n − 1); None below two values."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n >= 2 else None


@dataclass(frozen=True)
class Trajectory:
    """What a client–counselor dyad remembers of its earlier sessions: enough for every rule, in O(1)."""

    total: RunningStats = field(default_factory=RunningStats)
    subscales: Mapping[str, RunningStats] = field(default_factory=lambda: {s: RunningStats() for s in SUBSCALES})
    last_session_number: int = 0
    last_total: float | None = None
    last_subscales: Mapping[str, float | None] = field(default_factory=dict)
    # How many sessions in a row ended lower than the one before (0 after a rise or a level session).
    falls_in_a_row: int = 0

    def is_late(self, session_number: int) -> bool:
        """A session at or before the last one applied arrived late (or was submitted twice)."""
        return session_number <= self.last_session_number

    def advance(self, session_number: int, score: SessionScore) -> "Trajectory":
        fell = self.last_total is not None and score.total < self.last_total
        subscales = {s: (stats.add(score.subscales[s]) if score.subscales.get(s) is not None else stats)
                     for s, stats in self.subscales.items()}
        return Trajectory(total=self.total.add(score.total), subscales=subscales,
                          last_session_number=session_number, last_total=score.total,
                          last_subscales=dict(score.subscales),
                          falls_in_a_row=self.falls_in_a_row + 1 if fell else 0)

    def to_dict(self) -> dict[str, Any]:
        return {"total": _stats_dict(self.total),
                "subscales": {s: _stats_dict(v) for s, v in self.subscales.items()},
                "last_session_number": self.last_session_number, "last_total": self.last_total,
                "last_subscales": dict(self.last_subscales), "falls_in_a_row": self.falls_in_a_row}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Trajectory":
        if not data:
            return cls()
        return cls(total=RunningStats(**data["total"]),
                   subscales={s: RunningStats(**data["subscales"].get(s, {})) for s in SUBSCALES},
                   last_session_number=data["last_session_number"], last_total=data["last_total"],
                   last_subscales=dict(data.get("last_subscales") or {}), falls_in_a_row=data["falls_in_a_row"])


def _stats_dict(stats: RunningStats) -> dict[str, Any]:
    return {"n": stats.n, "mean": stats.mean, "m2": stats.m2}


# --- Alert rules --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Alert:
    rule: str
    dimension: str | None
    severity: str
    # The total the session had to stay at or above for the rule to keep quiet (for exit interviews: the
    # fit score), so every alert reads the same way: "total X, threshold Y".
    threshold: float

    @property
    def suggestion(self) -> str | None:
        return repair_suggestion(self.dimension)


def repair_suggestion(dimension: str | None) -> str | None:
    return REPAIR_SUGGESTIONS.get(dimension) if dimension else None


def merge_rule_settings(*layers: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Later layers override earlier ones parameter by parameter (defaults < instrument < clinic)."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for rule, params in (layer or {}).items():
            merged.setdefault(rule, {}).update(params)
    return merged


def _position(instrument: Instrument, subscale: str, value: float) -> float | None:
    bounds = instrument.subscale_range(subscale)
    if bounds is None or bounds[1] == bounds[0]:
        return None
    return (value - bounds[0]) / (bounds[1] - bounds[0])


def weakest_dimension(instrument: Instrument, score: SessionScore) -> str | None:
    """The subscale lowest within its own range: where the alliance needs repair first."""
    positions = {s: p for s, v in score.subscales.items()
                 if v is not None and (p := _position(instrument, s, v)) is not None}
    # Ties go to the first in Bordin's order (goal, task, bond), so the result is stable.
    return min(positions, key=lambda s: (positions[s], SUBSCALES.index(s))) if positions else None


def largest_fall(instrument: Instrument, score: SessionScore, reference: Mapping[str, float | None]) -> str | None:
    """The subscale that fell most from `reference` (as a share of its range); the weakest if none fell."""
    falls = {}
    for s in SUBSCALES:
        now, before = score.subscales.get(s), reference.get(s)
        if now is None or before is None:
            continue
        p_now, p_before = _position(instrument, s, now), _position(instrument, s, before)
        if p_now is not None and p_before is not None and p_before - p_now > 0:
            falls[s] = p_before - p_now
    if not falls:
        return weakest_dimension(instrument, score)
    return max(falls, key=lambda s: (falls[s], -SUBSCALES.index(s)))


def evaluate_alerts(instrument: Instrument, score: SessionScore, rules: Mapping[str, Mapping[str, Any]],
                    before: Trajectory | None = None, late: bool = False) -> list[Alert]:
    """Every enabled rule the session breaks, given the dyad's trajectory before it.

    A late session (one arriving after a later one was applied) is checked against the cutoff only: the
    rules comparing with the previous session or the baseline would compare with the wrong sessions.
    """
    before = before or Trajectory()
    alerts = []

    def on(rule: str) -> Mapping[str, Any] | None:
        params = rules.get(rule)
        return params if params and params.get("enabled", False) else None

    cutoff = instrument.cutoff_total
    # Optionally only when the dyad crosses the cutoff: a client who always rates a little below it would
    # otherwise raise the same alert every week.
    was_below = not late and before.last_total is not None and cutoff is not None and before.last_total < cutoff
    if ((p := on("below_cutoff")) and cutoff is not None and score.total < cutoff
            and not (p["only_when_crossing"] and was_below)):
        span = instrument.max_total - instrument.min_total
        # Far below the cutoff (in the lower part of the scale) is a rupture-level signal.
        low = span > 0 and (score.total - instrument.min_total) / span < p["high_below_share"]
        alerts.append(Alert("below_cutoff", weakest_dimension(instrument, score),
                            "high" if low else p["severity"], cutoff))
    if late:
        return alerts

    if (p := on("drop_vs_previous")) and before.last_total is not None:
        threshold = before.last_total - p["min_drop"]
        if score.total <= threshold:
            alerts.append(Alert("drop_vs_previous", largest_fall(instrument, score, before.last_subscales),
                                p["severity"], threshold))

    baseline_means = {s: (v.mean if v.n else None) for s, v in before.subscales.items()}
    if (p := on("reliable_drop")) and before.total.n >= p["min_baseline_sessions"]:
        rci = reliable_change_index(instrument.sd, instrument.reliability, p["z"])
        if rci is not None and before.total.mean - score.total > rci:
            alerts.append(Alert("reliable_drop", largest_fall(instrument, score, baseline_means),
                                p["severity"], before.total.mean - rci))

    if (p := on("rupture")) and before.total.n >= p["min_baseline_sessions"] and before.total.sd is not None:
        # An SD floor: a client who always answers at the ceiling has SD 0, and any dip would be "infinite".
        sd = max(before.total.sd, p["min_sd"])
        threshold = before.total.mean - p["k"] * sd
        if score.total < threshold:
            alerts.append(Alert("rupture", largest_fall(instrument, score, baseline_means), p["severity"],
                                threshold))

    if (p := on("sustained_decline")) and before.last_total is not None and score.total < before.last_total:
        if before.falls_in_a_row + 1 >= p["sessions"]:
            alerts.append(Alert("sustained_decline", largest_fall(instrument, score, baseline_means),
                                p["severity"], before.last_total))
    return alerts


# --- Exit interviews ---------------------------------------------------------------------------------

# Which Bordin dimension each exit-interview question speaks to.
EXIT_INTERVIEW_DIMENSIONS = {"comfortable": "bond", "style_fit": "task", "confident_progress": "goal"}


@dataclass(frozen=True)
class ExitInterviewScore:
    fit: float  # mean of the three 1-5 ratings
    ratings: Mapping[str, int]
    wants_someone_else: bool


def score_exit_interview(answers: Mapping[str, Any]) -> ExitInterviewScore:
    ratings = {q: int(answers[q]) for q in EXIT_INTERVIEW_DIMENSIONS}
    return ExitInterviewScore(fit=sum(ratings.values()) / len(ratings), ratings=ratings,
                              wants_someone_else=bool(answers["wants_someone_else"]))


def evaluate_exit_interview(score: ExitInterviewScore, params: Mapping[str, Any] | None) -> Alert | None:
    """A low fit (or, if configured, a wish for someone else) raises an alert naming the lowest dimension."""
    if not params or not params.get("enabled", False):
        return None
    low = score.fit < params["below"]
    if not low and not (params["when_wants_someone_else"] and score.wants_someone_else):
        return None
    order = list(EXIT_INTERVIEW_DIMENSIONS)
    question = min(order, key=lambda q: (score.ratings[q], order.index(q)))
    return Alert(EXIT_INTERVIEW_RULE, EXIT_INTERVIEW_DIMENSIONS[question], params["severity"], params["below"])

