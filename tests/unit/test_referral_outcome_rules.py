"""Learning from referrals: the settle rule, the per-clinic counts and each counselor's track record."""
import pytest

from services.referral.adapters.config import load_outcome_config
from services.referral.outcomes import (FOLLOWING, IMPROVED, NO_BASELINE, NOT_IMPROVED, OutcomeConfig, OutcomeState,
                                        SettledFacts, clinic_report, fold_session, settle, track_record)

RULE = OutcomeConfig(sessions=3, margin=0.05)


def followed(old_mean, *values):
    state = OutcomeState(old_mean)
    for i, value in enumerate(values):
        state = fold_session(state, f"sc-{i}", value, RULE)
    return state


# --- the settle rule -----------------------------------------------------------------------------------

def test_an_outcome_is_followed_until_its_first_sessions_are_in():
    assert settle(followed(0.5), RULE) == FOLLOWING
    assert settle(followed(0.5, 0.9, 0.9), RULE) == FOLLOWING
    assert settle(followed(0.5, 0.9, 0.9, 0.9), RULE) == IMPROVED


def test_improved_means_higher_by_more_than_the_margin():
    assert settle(followed(0.60, 0.70, 0.70, 0.70), RULE) == IMPROVED
    # 0.05 higher is not more than the margin, however the sums round
    assert settle(followed(0.80, 0.85, 0.85, 0.85), RULE) == NOT_IMPROVED
    assert settle(followed(0.80, 0.86, 0.86, 0.86), RULE) == IMPROVED
    assert settle(followed(0.80, 0.84, 0.86, 0.84), RULE) == NOT_IMPROVED   # +0.047
    assert settle(followed(0.70, 0.60, 0.70, 0.80), RULE) == NOT_IMPROVED   # the same on average
    assert settle(followed(0.90, 0.50, 0.50, 0.50), RULE) == NOT_IMPROVED   # worse


def test_without_an_earlier_alliance_there_is_nothing_to_compare():
    assert settle(followed(None, 0.9, 0.9), RULE) == FOLLOWING
    assert settle(followed(None, 0.9, 0.9, 0.9), RULE) == NO_BASELINE


def test_a_score_counts_once_and_only_the_first_sessions_count():
    state = followed(0.5, 0.9)
    assert fold_session(state, "sc-0", 0.9, RULE) is None
    full = followed(0.5, 0.6, 0.6, 0.6)
    assert fold_session(full, "sc-late", 1.0, RULE) is None
    assert (full.new_sessions, full.new_mean) == (3, pytest.approx(0.6))


def test_the_rule_is_configurable_and_checked():
    assert load_outcome_config({}) == OutcomeConfig()
    config = load_outcome_config({"RAPPORT_REFERRAL_OUTCOME_SESSIONS": "5",
                                  "RAPPORT_REFERRAL_OUTCOME_MARGIN": "0.1"})
    assert (config.sessions, config.margin) == (5, 0.1)
    with pytest.raises(ValueError, match="RAPPORT_REFERRAL_OUTCOME_SESSIONS must be of type int"):
        load_outcome_config({"RAPPORT_REFERRAL_OUTCOME_SESSIONS": "three"})
    with pytest.raises(ValueError, match="at least 1"):
        load_outcome_config({"RAPPORT_REFERRAL_OUTCOME_SESSIONS": "0"})
    with pytest.raises(ValueError, match="fraction of the scale"):
        load_outcome_config({"RAPPORT_REFERRAL_OUTCOME_MARGIN": "5"})


# --- what the clinic and matching learn ------------------------------------------------------------------

OUTCOMES = [
    SettledFacts("exit_interview", ("trauma",), "co-a", IMPROVED),
    SettledFacts("exit_interview", ("trauma", "anxiety"), "co-a", IMPROVED),
    SettledFacts("alliance_decline", ("trauma",), "co-a", NOT_IMPROVED),
    SettledFacts("alliance_decline", ("anxiety",), "co-b", FOLLOWING),
    SettledFacts("intake", ("grief",), "co-b", NO_BASELINE),
]


def test_the_clinic_report_counts_overall_per_reason_and_per_concern():
    report = clinic_report(OUTCOMES)
    assert report["overall"] == {"accepted": 5, "following": 1, "settled": 3, "improved": 2,
                                 "without_baseline": 1, "share_improved": pytest.approx(2 / 3)}
    reasons = {r["reason"]: r for r in report["by_reason"]}
    assert list(reasons) == ["intake", "exit_interview", "alliance_decline"]
    assert (reasons["exit_interview"]["settled"], reasons["exit_interview"]["share_improved"]) == (2, 1.0)
    assert (reasons["alliance_decline"]["accepted"], reasons["alliance_decline"]["improved"]) == (2, 0)
    assert reasons["intake"]["share_improved"] is None  # nothing compared: not 0%
    concerns = {c["concern"]: c for c in report["by_concern"]}
    assert list(concerns) == ["anxiety", "grief", "trauma"]
    assert (concerns["trauma"]["accepted"], concerns["trauma"]["settled"], concerns["trauma"]["improved"]) == (3, 3, 2)
    assert (concerns["anxiety"]["accepted"], concerns["anxiety"]["following"]) == (2, 1)


def test_the_report_names_no_counselor():
    assert "co-a" not in repr(clinic_report(OUTCOMES)) and "co-b" not in repr(clinic_report(OUTCOMES))


def test_an_empty_clinic_reports_zeros_and_no_share():
    report = clinic_report([])
    assert report["overall"] == {"accepted": 0, "following": 0, "settled": 0, "improved": 0,
                                 "without_baseline": 0, "share_improved": None}
    assert report["by_concern"] == [] and all(r["accepted"] == 0 for r in report["by_reason"])


def test_the_track_record_counts_settled_referrals_received_per_concern():
    assert track_record(OUTCOMES) == {"co-a": {"trauma": (3, 2), "anxiety": (1, 1)}}


def test_every_outcome_status_reads_in_words():
    from services.common.vocabulary import WORDS
    from services.referral.outcomes import OUTCOME_STATUSES
    assert all(status in WORDS for status in OUTCOME_STATUSES)
