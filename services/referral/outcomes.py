"""Learning from referrals: did an accepted referral improve the client's alliance?

When an accepted referral's reassignment lands, referral notes the client's alliance with the counselor they
left (the old dyad: the mean normalised total of their scored sessions, 0..1) and then follows the new dyad
over its first sessions. Once enough sessions are in, the outcome is settled: improved if the new dyad's mean
exceeds the old one's by a margin, not improved otherwise, or without a baseline when the client had no
scored sessions with anyone before (a new client's intake referral, say).

Plain rules, no storage: the handlers fold sessions in (fold_session, settle), queries read the counts per
clinic (clinic_report) and each counselor's record of received referrals per concern (track_record).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

# What an outcome is while and after it is followed (codes: the page reads them in words).
FOLLOWING = "following"          # the new dyad has fewer sessions than the rule needs
IMPROVED = "improved"
NOT_IMPROVED = "not_improved"
NO_BASELINE = "no_baseline"      # settled, but there is no earlier alliance to compare with
VERDICTS = (IMPROVED, NOT_IMPROVED, NO_BASELINE)
OUTCOME_STATUSES = (FOLLOWING,) + VERDICTS
REASONS = ("intake", "exit_interview", "alliance_decline")

# Differences this small are treated as equal: sums of floats must not decide a verdict by rounding.
_EPSILON = 1e-9


@dataclass(frozen=True)
class OutcomeConfig:
    """How an accepted referral is judged (RAPPORT_REFERRAL_OUTCOME_<FIELD> overrides, adapters/config.py)."""

    # The new dyad's first sessions that are compared with the old dyad. Three: the alliance of the first
    # sessions predicts the outcome of therapy, and by the third session it has mostly formed; waiting
    # longer would mix in the work of the therapy itself, and fewer would judge on one or two ratings.
    sessions: int = 3
    # How much higher (on the normalised 0..1 scale, i.e. a fraction of the instrument's range) the new dyad's
    # mean must be to count as improved: 0.05 is 1.5 points on a 30-point total. A smaller difference is
    # within the session-to-session wobble of one client's ratings, so calling it an improvement would credit
    # noise; alliance ratings also sit near the top of the scale, where a real gain is never large.
    margin: float = 0.05


@dataclass(frozen=True)
class OutcomeState:
    """One followed referral: the old dyad's mean (None if unknown) and the new dyad's sessions so far."""

    old_mean: float | None
    new_total: float = 0.0
    new_sessions: int = 0
    score_ids: tuple[str, ...] = field(default=())

    @property
    def new_mean(self) -> float | None:
        return self.new_total / self.new_sessions if self.new_sessions else None


def fold_session(state: OutcomeState, score_id: str, value: float, config: OutcomeConfig) -> OutcomeState | None:
    """The state with one more session of the new dyad; None if that score is counted already or the
    outcome has all the sessions it needs (later sessions are not the first ones)."""
    if score_id in state.score_ids or state.new_sessions >= config.sessions:
        return None
    return OutcomeState(state.old_mean, state.new_total + value, state.new_sessions + 1,
                        state.score_ids + (score_id,))


def settle(state: OutcomeState, config: OutcomeConfig) -> str:
    """FOLLOWING until the new dyad has `config.sessions` sessions; then IMPROVED if its mean exceeds the old
    dyad's by more than `config.margin`, NOT_IMPROVED if not, NO_BASELINE without an old dyad's mean."""
    if state.new_sessions < config.sessions:
        return FOLLOWING
    if state.old_mean is None:
        return NO_BASELINE
    return IMPROVED if state.new_mean - state.old_mean > config.margin + _EPSILON else NOT_IMPROVED


# --- what the clinic learns ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SettledFacts:
    """What the counts need of one outcome."""

    reason: str
    concerns: tuple[str, ...]
    counselor_id: str        # the counselor the client was referred to
    status: str              # one of OUTCOME_STATUSES


@dataclass(frozen=True)
class Tally:
    accepted: int = 0          # accepted referrals whose reassignment landed, followed since
    following: int = 0         # still in the new dyad's first sessions
    settled: int = 0           # compared: the new dyad's first sessions against the old dyad
    improved: int = 0
    without_baseline: int = 0  # all sessions in, but nothing earlier to compare with

    @property
    def share_improved(self) -> float | None:
        """Improved among the settled ones; None before any is settled (not 0: nothing is known yet)."""
        return self.improved / self.settled if self.settled else None

    def add(self, status: str) -> "Tally":
        return Tally(self.accepted + 1, self.following + (status == FOLLOWING),
                     self.settled + (status in (IMPROVED, NOT_IMPROVED)), self.improved + (status == IMPROVED),
                     self.without_baseline + (status == NO_BASELINE))

    def as_dict(self) -> dict:
        return {"accepted": self.accepted, "following": self.following, "settled": self.settled,
                "improved": self.improved, "without_baseline": self.without_baseline,
                "share_improved": self.share_improved}


def clinic_report(outcomes: Iterable[SettledFacts]) -> dict:
    """Counts over one clinic's followed referrals: overall, per reason (every reason, zeros included) and per
    concern (those that occur, in code order; a client with two concerns counts under both). Counts only:
    never per counselor, so the report cannot be read as a league table."""
    overall = Tally()
    by_reason = {reason: Tally() for reason in REASONS}
    by_concern: dict[str, Tally] = {}
    for outcome in outcomes:
        overall = overall.add(outcome.status)
        by_reason[outcome.reason] = by_reason.get(outcome.reason, Tally()).add(outcome.status)
        for concern in dict.fromkeys(outcome.concerns):
            by_concern[concern] = by_concern.get(concern, Tally()).add(outcome.status)
    return {"overall": overall.as_dict(),
            "by_reason": [{"reason": r, **t.as_dict()} for r, t in by_reason.items()],
            "by_concern": [{"concern": c, **by_concern[c].as_dict()} for c in sorted(by_concern)]}


def track_record(outcomes: Iterable[SettledFacts]) -> dict[str, dict[str, tuple[int, int]]]:
    """Per counselor and concern: how many settled referrals they received (clients who left another
    counselor, compared with that dyad) and in how many the alliance improved - the evidence that a counselor
    helps clients of a kind whom another did not fit. Outcomes still followed or without a baseline say
    nothing about that and are left out."""
    record: dict[str, dict[str, tuple[int, int]]] = {}
    for outcome in outcomes:
        if outcome.status not in (IMPROVED, NOT_IMPROVED):
            continue
        concerns = record.setdefault(outcome.counselor_id, {})
        for concern in dict.fromkeys(outcome.concerns):
            received, improved = concerns.get(concern, (0, 0))
            concerns[concern] = (received + 1, improved + (outcome.status == IMPROVED))
    return record
