"""When a session becomes an alert: pure Python, no web framework, broker or database here.

Two kinds of signal, kept apart because a counselor acts on them differently:

- **change** (an alert): the alliance fell against the client's own history with this counselor. The
  session's total is compared with the client's earlier sessions (a bounded window that leaves out the
  session just before, so a rupture cannot hide in the baseline of the session after it), in units of the
  client's own noise, shrunk toward the clinic's pooled within-client SD because 3-8 sessions say little
  about one client's spread. The threshold k is not a setting: it follows from the clinic's alert budget
  (see calibration.py).
- **level** (a flag, and rarely a notice): the session is below the instrument's cutoff. Every such session
  is flagged where the counselor looks at the client (what the feedback-informed literature asks: talk
  about it in the session), but only a dyad that stays below it gets one "persistently low alliance"
  notice per stretch, unless the clinic chooses to push every below-cutoff session.

Rules that fire on the same session make one alert listing them all, with the strongest severity. Every
alert names the dimension that fell most and carries its repair suggestion; the sessions after it tell
whether the alliance recovered.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from services.common.events import ExitInterviewSubmitted
from services.common.repair import repair_suggestion

from services.scoring.domain.instruments import SUBSCALES, Instrument, SessionScore

CHANGE, LEVEL, EXIT_INTERVIEW = "change", "level", "exit_interview"
SEVERITY_ORDER = ("low", "medium", "high")

# Change rules (an alliance-dropped alert) and level rules (a flag that may become a notice).
RUPTURE, SUSTAINED_DECLINE, RELIABLE_DROP, DROP_VS_PREVIOUS = (
    "rupture", "sustained_decline", "reliable_drop", "drop_vs_previous")
BELOW_CUTOFF, PERSISTENTLY_LOW = "below_cutoff", "persistently_low"
EXIT_INTERVIEW_RULE = "exit_interview_low_fit"
CHANGE_RULES = (RUPTURE, SUSTAINED_DECLINE, RELIABLE_DROP, DROP_VS_PREVIOUS)
LEVEL_RULES = (BELOW_CUTOFF, PERSISTENTLY_LOW)
RULES = (*CHANGE_RULES, *LEVEL_RULES)

# How many sessions after an alert tell whether the alliance recovered.
RECOVERY_SESSIONS = 2


# --- The client's own baseline --------------------------------------------------------------------------

@dataclass(frozen=True)
class Fall:
    """A session against the client's baseline: how far below it, in the client's (shrunk) noise."""

    baseline_mean: float
    baseline_sd: float  # the shrunk within-client SD
    sessions: int  # baseline sessions
    z: float  # (baseline mean - total) / predictive SD; positive when the session is lower

    @property
    def predictive_sd(self) -> float:
        # A new session differs from the baseline mean by its own noise and the mean's uncertainty.
        return self.baseline_sd * math.sqrt(1 + 1 / self.sessions)

    def threshold(self, k: float) -> float:
        """The total the session had to stay at or above for z to stay at or below k."""
        return self.baseline_mean - k * self.predictive_sd


def shrunk_sd(values: Sequence[float], pooled_sd: float, prior_weight: float) -> float:
    """The client's own SD, shrunk toward the pooled within-client SD (empirical Bayes: the pooled
    variance counts as `prior_weight` observations, the client's as n - 1)."""
    n = len(values)
    mean = sum(values) / n if n else 0.0
    # (n - 1) x the sample variance, written out: this runs for every simulated session of a calibration.
    squares = sum((v - mean) ** 2 for v in values)
    return math.sqrt((prior_weight * pooled_sd ** 2 + squares) / (prior_weight + n - 1))


def standardized_fall(baseline: Sequence[float], total: float, pooled_sd: float, prior_weight: float) -> Fall:
    sd = shrunk_sd(baseline, pooled_sd, prior_weight)
    mean = sum(baseline) / len(baseline)
    fall = Fall(baseline_mean=mean, baseline_sd=sd, sessions=len(baseline), z=0.0)
    return replace(fall, z=(mean - total) / fall.predictive_sd if fall.predictive_sd > 0 else 0.0)


def baseline_window(earlier: Sequence[Any], window: int) -> Sequence[Any]:
    """What a session is compared with: up to `window` sessions before the previous one."""
    return earlier[:-1][-window:]


# --- What a dyad remembers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One applied session, as the baseline needs it."""

    session_number: int
    total: float
    subscales: Mapping[str, float | None]


@dataclass(frozen=True)
class Watch:
    """An alert waiting for the next sessions to tell whether the alliance recovered."""

    session_number: int  # the alerting session (the alert's id derives from it)
    recover_at: float  # a later total at or above this is a recovery
    sessions_left: int


@dataclass(frozen=True)
class Outcome:
    session_number: int  # of the alert
    recovered: bool
    at_session: int  # the session that decided it


@dataclass(frozen=True)
class DyadHistory:
    """What a client-counselor dyad remembers of its earlier sessions: a bounded window, O(window)."""

    recent: tuple[Point, ...] = ()
    last_session_number: int = 0
    falls_in_a_row: int = 0
    below_run: int = 0  # sessions in a row below the cutoff, ending with the last one
    low_notice_sent: bool = False  # a persistently-low notice went out in the current stretch below it
    watching: tuple[Watch, ...] = ()

    def is_late(self, session_number: int) -> bool:
        """A session at or before the last one applied arrived late (or was submitted twice)."""
        return session_number <= self.last_session_number

    @property
    def previous(self) -> Point | None:
        return self.recent[-1] if self.recent else None

    def to_dict(self) -> dict[str, Any]:
        # Objects in arrays, never arrays in arrays: FerretDB 1.24 stores none.
        return {"recent": [{"session_number": p.session_number, "total": p.total, "subscales": dict(p.subscales)}
                           for p in self.recent],
                "last_session_number": self.last_session_number, "falls_in_a_row": self.falls_in_a_row,
                "below_run": self.below_run, "low_notice_sent": self.low_notice_sent,
                "watching": [{"session_number": w.session_number, "recover_at": w.recover_at,
                              "sessions_left": w.sessions_left} for w in self.watching]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "DyadHistory":
        if not data or "recent" not in data:
            return cls()
        return cls(recent=tuple(Point(p["session_number"], p["total"], p["subscales"]) for p in data["recent"]),
                   last_session_number=data["last_session_number"], falls_in_a_row=data["falls_in_a_row"],
                   below_run=data["below_run"], low_notice_sent=data["low_notice_sent"],
                   watching=tuple(Watch(**w) for w in data["watching"]))


# --- Decisions ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlertScale:
    """What calibration gives the rules: k for the clinic's budget and the noise it is measured in."""

    k: float
    pooled_sd: float  # within-client SD of the total
    dimension_sd: float  # within-client SD of one dimension's mean item score (for ties between dimensions)


@dataclass(frozen=True)
class AlertDecision:
    kind: str  # change | level | exit_interview
    rules: tuple[str, ...]
    dimension: str | None
    severity: str
    # The total the session had to stay at or above (for exit interviews: the fit it had to reach).
    threshold: float
    fall: Fall | None = None
    recover_at: float | None = None
    # The client's usual level of each subscale: its mean over the baseline sessions the total's fall was
    # measured against (None for a subscale with no values there); empty without a baseline (and for exit
    # interviews), so that "agreement on goals 4 against a usual 8" can be said.
    usual_subscales: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def suggestion(self) -> str | None:
        return repair_suggestion(self.dimension)


@dataclass(frozen=True)
class Assessment:
    below_cutoff: bool
    late: bool
    fall: Fall | None
    alert: AlertDecision | None
    outcomes: tuple[Outcome, ...]
    after: DyadHistory


def _strongest(*severities: str) -> str:
    return max(severities, key=SEVERITY_ORDER.index)


def assess(instrument: Instrument, score: SessionScore, session_number: int, history: DyadHistory,
           rules: Mapping[str, Mapping[str, Any]], scale: AlertScale) -> Assessment:
    """Everything one session means for its dyad: the level flag, at most one alert, what it tells about
    earlier alerts, and the dyad's history after it. The same function serves the worker, the back-test
    and an admin's preview, so what a clinic previews is what it gets."""
    cutoff = instrument.cutoff_total
    below = cutoff is not None and score.total < cutoff
    if history.is_late(session_number):
        # A late session is scored and flagged, but comparing it with the sessions around it would compare
        # it with the wrong ones; the dyad's history stays as it is.
        return Assessment(below, True, None, None, (), history)

    earlier = history.recent
    baseline = baseline_window(earlier, rules[RUPTURE]["window"])
    fall = (standardized_fall([p.total for p in baseline], score.total, scale.pooled_sd,
                              rules[RUPTURE]["prior_weight"])
            if len(baseline) >= rules[RUPTURE]["min_baseline_sessions"] else None)
    previous = history.previous
    change = _change_rules(instrument, score, history, fall, rules, scale)
    below_run = history.below_run + 1 if below else 0
    notice_due = bool(on(rules, PERSISTENTLY_LOW) and below_run >= rules[PERSISTENTLY_LOW]["sessions"]
                      and not history.low_notice_sent)
    level = _level_rules(instrument, score, below, notice_due, rules)

    alert = None
    if change:
        threshold = fall.threshold(scale.k) if fall is not None else (previous.total if previous else score.total)
        alert = AlertDecision(
            CHANGE, tuple(r for r, _ in change + level),
            _fallen_dimension(instrument, score, previous, baseline or earlier, fall, rules, scale),
            _strongest(*(s for _, s in change + level)), threshold, fall,
            recover_at=(fall.baseline_mean - fall.predictive_sd) if fall is not None else threshold,
            usual_subscales=baseline_subscale_means(baseline) if fall is not None else {})
    elif level:
        alert = AlertDecision(LEVEL, tuple(r for r, _ in level), weakest_dimension(instrument, score),
                              _strongest(*(s for _, s in level)), cutoff, fall, recover_at=cutoff,
                              usual_subscales=baseline_subscale_means(baseline) if fall is not None else {})

    outcomes, watching = _follow_up(history.watching, score.total, session_number)
    if alert is not None:
        watching = (*watching, Watch(session_number, alert.recover_at, RECOVERY_SESSIONS))
    window = rules[RUPTURE]["window"]
    after = DyadHistory(
        recent=(*earlier, Point(session_number, score.total, dict(score.subscales)))[-(window + 1):],
        last_session_number=session_number, falls_in_a_row=_falls_in_a_row(history, score),
        below_run=below_run,
        # A notice counts for the whole stretch below the cutoff; back at or above it, the next stretch
        # may have one again.
        low_notice_sent=below and (history.low_notice_sent or notice_due),
        watching=watching)
    return Assessment(below, False, fall, alert, outcomes, after)


def _fallen_dimension(instrument: Instrument, score: SessionScore, previous: Point | None,
                      baseline: Sequence[Point], fall: Fall | None, rules: Mapping[str, Mapping[str, Any]],
                      scale: AlertScale) -> str | None:
    # A rupture that began at the session before (which the baseline leaves out) shows in both: their falls
    # together name the dimension better than this session's alone.
    began_before = (fall is not None and previous is not None
                    and fall.baseline_mean - previous.total > scale.k * fall.predictive_sd)
    lows = [dict(score.subscales), *([previous.subscales] if began_before else [])]
    return (largest_fall(instrument, lows, baseline, scale.dimension_sd, rules[RUPTURE]["prior_weight"])
            or weakest_dimension(instrument, score))


def _falls_in_a_row(history: DyadHistory, score: SessionScore) -> int:
    previous = history.previous
    return history.falls_in_a_row + 1 if previous is not None and score.total < previous.total else 0


def _change_rules(instrument: Instrument, score: SessionScore, history: DyadHistory, fall: Fall | None,
                  rules: Mapping[str, Mapping[str, Any]], scale: AlertScale) -> list[tuple[str, str]]:
    """(rule, severity) of every change rule the session breaks."""
    fired = []
    if (p := on(rules, RUPTURE)) and fall is not None and fall.z > scale.k:
        fired.append((RUPTURE, "high" if fall.z > scale.k + p["high_beyond"] else p["severity"]))
    if (p := on(rules, SUSTAINED_DECLINE)) and _falls_in_a_row(history, score) >= p["sessions"]:
        fired.append((SUSTAINED_DECLINE, p["severity"]))
    if (p := on(rules, RELIABLE_DROP)) and fall is not None:
        rci = instrument.reliable_change_index(p["z"])
        if rci is not None and fall.baseline_mean - score.total > rci:
            fired.append((RELIABLE_DROP, p["severity"]))
    previous = history.previous
    if (p := on(rules, DROP_VS_PREVIOUS)) and previous is not None:
        if previous.total - score.total >= p["min_drop_sd"] * scale.pooled_sd:
            fired.append((DROP_VS_PREVIOUS, p["severity"]))
    return fired


def _level_rules(instrument: Instrument, score: SessionScore, below: bool, notice_due: bool,
                 rules: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(rule, severity) of the level rules that send the session to the inbox."""
    fired = []
    severity = _level_severity(instrument, score, rules[BELOW_CUTOFF])
    if below and rules[BELOW_CUTOFF]["push"]:
        fired.append((BELOW_CUTOFF, severity))
    if notice_due:
        fired.append((PERSISTENTLY_LOW, _strongest(severity, rules[PERSISTENTLY_LOW]["severity"])))
    return fired


def _follow_up(watching: Iterable[Watch], total: float,
               session_number: int) -> tuple[tuple[Outcome, ...], tuple[Watch, ...]]:
    outcomes, still = [], []
    for watch in watching:
        if total >= watch.recover_at:
            outcomes.append(Outcome(watch.session_number, True, session_number))
        elif watch.sessions_left <= 1:
            outcomes.append(Outcome(watch.session_number, False, session_number))
        else:
            still.append(replace(watch, sessions_left=watch.sessions_left - 1))
    return tuple(outcomes), tuple(still)


def on(rules: Mapping[str, Mapping[str, Any]], rule: str) -> Mapping[str, Any] | None:
    params = rules.get(rule)
    return params if params and params.get("enabled", False) else None


def _level_severity(instrument: Instrument, score: SessionScore, params: Mapping[str, Any]) -> str:
    span = instrument.max_total - instrument.min_total
    # Far below the cutoff (in the lower part of the scale) is a rupture-level signal.
    low = span > 0 and (score.total - instrument.min_total) / span < params["high_below_share"]
    return "high" if low else params["severity"]


# --- Which dimension ------------------------------------------------------------------------------------

def _position(instrument: Instrument, subscale: str, value: float) -> float | None:
    bounds = instrument.subscale_range(subscale)
    if bounds is None or bounds[1] == bounds[0]:
        return None
    return (value - bounds[0]) / (bounds[1] - bounds[0])


def weakest_dimension(instrument: Instrument, score: SessionScore) -> str | None:
    """The subscale lowest within its own range: where a low alliance needs attention first. Ties go to
    Bordin's order (goal, task, bond) so that the answer is stable."""
    positions = {s: p for s, v in score.subscales.items()
                 if v is not None and (p := _position(instrument, s, v)) is not None}
    return min(positions, key=lambda s: (positions[s], SUBSCALES.index(s))) if positions else None


def baseline_subscale_means(baseline: Sequence[Point]) -> dict[str, float | None]:
    """The client's usual level of each subscale: its mean over the baseline sessions (the same sessions as
    the total's baseline mean); None for a subscale none of them has a value of."""
    usual = {}
    for s in SUBSCALES:
        values = [p.subscales[s] for p in baseline if p.subscales.get(s) is not None]
        usual[s] = statistics.fmean(values) if values else None
    return usual


def largest_fall(instrument: Instrument, lows: Sequence[Mapping[str, float | None]], baseline: Sequence[Point],
                 dimension_sd: float, prior_weight: float) -> str | None:
    """The dimension whose items fell most against that dimension's own baseline (in item points, averaged
    over the low sessions given), ties broken by the fall over the dimension's shrunk SD; None if no
    dimension fell. Items of no dimension count in the total only."""
    falls = {}
    for s in SUBSCALES:
        now = [low[s] for low in lows if low.get(s) is not None]
        before = [p.subscales[s] for p in baseline if p.subscales.get(s) is not None]
        if not now or not before:
            continue
        fall = statistics.fmean(before) - statistics.fmean(now)
        falls[s] = (round(fall, 9), fall / shrunk_sd(before, dimension_sd, prior_weight))
    if not falls or max(f for f, _ in falls.values()) <= 0:
        return None
    return max(falls, key=lambda s: falls[s])


# --- Exit interviews ------------------------------------------------------------------------------------

# Which Bordin dimension each exit-interview question speaks to.
EXIT_INTERVIEW_DIMENSIONS = {"comfortable": "bond", "style_fit": "task", "confident_progress": "goal"}


@dataclass(frozen=True)
class ExitInterviewScore:
    fit: float  # mean of the three 1-5 ratings
    ratings: Mapping[str, int]
    wants_someone_else: bool


def score_exit_interview(answers: ExitInterviewSubmitted) -> ExitInterviewScore:
    ratings = {q: int(getattr(answers, q)) for q in EXIT_INTERVIEW_DIMENSIONS}
    return ExitInterviewScore(fit=sum(ratings.values()) / len(ratings), ratings=ratings,
                              wants_someone_else=answers.wants_someone_else)


def evaluate_exit_interview(score: ExitInterviewScore, params: Mapping[str, Any] | None) -> AlertDecision | None:
    """A low fit (or, if configured, a wish for someone else) raises an alert naming the lowest dimension."""
    if not params or not params.get("enabled", False):
        return None
    low = score.fit < params["below"]
    if not low and not (params["when_wants_someone_else"] and score.wants_someone_else):
        return None
    order = list(EXIT_INTERVIEW_DIMENSIONS)
    question = min(order, key=lambda q: (score.ratings[q], order.index(q)))
    return AlertDecision(EXIT_INTERVIEW, (EXIT_INTERVIEW_RULE,), EXIT_INTERVIEW_DIMENSIONS[question],
                         params["severity"], params["below"])


# --- Settings -------------------------------------------------------------------------------------------

def merge_settings(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Later layers override earlier ones value by value: {"budget": {...}, "rules": {rule: {...}}}."""
    merged: dict[str, Any] = {"budget": {}, "rules": {}}
    for layer in layers:
        merged["budget"].update((layer or {}).get("budget") or {})
        for rule, params in ((layer or {}).get("rules") or {}).items():
            merged["rules"].setdefault(rule, {}).update(params)
    return merged


@dataclass(frozen=True)
class Budget:
    """How many false change alerts a counselor can act on in a month (the clinic's choice)."""

    false_alerts_per_counselor_month: float

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> "Budget":
        return cls(float(settings["budget"]["false_alerts_per_counselor_month"]))


@dataclass
class DyadRun:
    """A dyad's sessions run through `assess` in order: the back-test's and the preview's loop."""

    history: DyadHistory = field(default_factory=DyadHistory)

    def apply(self, instrument: Instrument, score: SessionScore, session_number: int,
              rules: Mapping[str, Mapping[str, Any]], scale: AlertScale) -> Assessment:
        result = assess(instrument, score, session_number, self.history, rules, scale)
        self.history = result.after
        return result
