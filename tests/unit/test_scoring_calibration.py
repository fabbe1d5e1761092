"""The calibration: from a budget to k, by simulating a caseload like the clinic's."""
import random
import statistics

import pytest

from services.scoring.domain import calibration
from services.scoring.domain.alerting import standardized_fall
from services.scoring.domain.calibration import (REFERENCE, Calibration, calibrate, robust_within_sd,
                                          sessions_per_counselor_month_dated, sessions_per_counselor_month_weekly)
from services.scoring.adapters.instruments import shipped_instruments
from services.scoring.adapters.rules import effective_settings

RULES = effective_settings(None)["rules"]
SR4 = shipped_instruments()["session-rating-4"]


def test_the_robust_within_client_sd_ignores_trends_and_a_few_large_falls():
    rng = random.Random(3)
    steady = [[30 + rng.gauss(0, 1.5) for _ in range(12)] for _ in range(200)]
    assert robust_within_sd(steady) == pytest.approx(1.5, rel=0.1)
    trending = [[x + 0.5 * i for i, x in enumerate(s)] for s in steady]
    ruptured = [s[:5] + [s[5] - 10] + s[6:] for s in steady[:20]] + steady[20:]
    plain = statistics.fmean(statistics.stdev(s) for s in trending)
    assert plain > 2.0  # a plain SD counts the trend as noise
    assert robust_within_sd(trending) == pytest.approx(1.5, rel=0.1)
    assert robust_within_sd(ruptured) == pytest.approx(1.5, rel=0.15)
    assert robust_within_sd([[30]]) is None


def test_k_follows_the_budget_and_the_caseload():
    documented = calibrate(SR4, [], RULES)
    assert documented.source == "instrument" and documented.pooled_sd == SR4.documented_noise
    assert documented.sessions_per_counselor_month == pytest.approx(20 * 365.25 / 7 / 12)
    ks = [documented.k_for(b) for b in (0.25, 0.5, 1, 2, 4, 8)]
    assert ks == sorted(ks, reverse=True) and ks[0] > ks[-1]  # more alerts allowed: a lower threshold
    busier = Calibration.from_dict({**documented.to_dict(), "sessions_per_counselor_month": 150})
    # A counselor seeing more sessions a month gets the same number of false alerts from a rarer rate.
    assert busier.k_for(1) > documented.k_for(1)
    assert Calibration.from_dict(documented.to_dict()) == documented
    assert documented.fits(RULES) and not documented.fits({**RULES, "rupture": {**RULES["rupture"], "window": 5}})


def test_the_same_sessions_give_the_same_calibration():
    assert calibrate(SR4, [], RULES) == calibrate(SR4, [], RULES)


def test_on_a_caseload_of_the_reference_model_the_budget_is_what_it_gets():
    """Self-consistency: a caseload drawn from the reference model itself (other random numbers), with
    noise unknown to the calibration, alerts on its stable sessions at about the budgeted rate."""
    rng = random.Random(11)
    profiles = calibration.reference_profiles(SR4, REFERENCE, rng) * 3
    caseload = calibration.simulate(SR4, profiles, 0.03, 0.5, REFERENCE, rng)
    dyads = [[_answers(total) for total in s.totals] for s in caseload]
    found = calibrate(SR4, dyads, RULES, calibration.DEFAULT_SESSIONS_PER_COUNSELOR_MONTH)
    assert found.source == "clinic"
    sessions = sum(len(s.totals) for s in caseload)
    for budget in (1, 4):
        k = found.k_for(budget)
        false = sum(1 for s in caseload for i, (total, null) in enumerate(zip(s.totals, s.null))
                    if null and i >= 3 and standardized_fall(s.totals[:i - 1][-8:], total, found.pooled_sd, 16).z > k)
        expected = budget / calibration.DEFAULT_SESSIONS_PER_COUNSELOR_MONTH * sessions
        print(f"\nbudget {budget}: {false} false alerts where {expected:.0f} were budgeted (k {k:.2f})")
        assert 0.6 * expected <= false <= 1.5 * expected


def _answers(total):
    """Some answers of session-rating-4 with this total (the calibration reads totals and item spreads)."""
    per_item = [min(10, max(0, round(total / 4)))] * 4
    per_item[3] += int(total) - sum(per_item)
    return dict(zip(("relationship", "goals-topics", "approach", "overall"), per_item))


def test_sessions_per_counselor_month():
    # Without dates: a counselor's clients seen weekly.
    assert sessions_per_counselor_month_weekly({"a": 20, "b": 10}, {"a": 280, "b": 140}) == pytest.approx(
        (280 + 140) / (280 / (20 * 4.348) + 140 / (10 * 4.348)), rel=1e-3)
    # With dates: sessions over the months from each counselor's first to their last, at least one.
    assert sessions_per_counselor_month_dated([(60, 365.25 / 12 * 3), (10, 3)]) == pytest.approx(70 / 4)
