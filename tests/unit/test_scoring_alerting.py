"""The alert rules on hand-made histories: boundaries, one alert per session, flags, notices, recovery."""
import math

import pytest

from services.common.events import ExitInterviewSubmitted
from services.common.repair import repair_suggestion
from services.scoring.domain import alerting, instruments as domain
from services.scoring.adapters.rules import effective_settings

# Explicit scale: k 2 in SDs, a pooled within-client SD of 2 points, 0.7 per dimension.
SCALE = alerting.AlertScale(k=2.0, pooled_sd=2.0, dimension_sd=0.7)


def instrument(cutoff=27.0):
    return domain.Instrument(id="t", title="t", cutoff_total=cutoff, sd=2.0, reliability=0.5, items=(
        domain.Item("g", "goal", 0, 10), domain.Item("t", "task", 0, 10), domain.Item("b", "bond", 0, 10)))


def rules(**overrides):
    """The shipped rules with some values changed: {"rule": {param: value}}."""
    return effective_settings({"rules": overrides})["rules"]


def score(total, goal=None, task=None, bond=None):
    even = total / 3
    return domain.SessionScore(total=total, mean=even, subscales={
        "goal": even if goal is None else goal, "task": even if task is None else task,
        "bond": even if bond is None else bond})


def run(*sessions, settings=None, scale=SCALE, inst=None):
    """Sessions 1..n through assess; each a total or a SessionScore. Returns every Assessment."""
    settings, inst = settings or rules(), inst or instrument()
    dyad, results = alerting.DyadRun(), []
    for number, s in enumerate(sessions, start=1):
        results.append(dyad.apply(inst, s if isinstance(s, domain.SessionScore) else score(s), number, settings,
                                  scale))
    return results


# --- The client's own baseline -------------------------------------------------------------------------

def test_standardized_fall_shrinks_the_clients_sd_toward_the_pooled_one():
    # Baseline 28, 30, 32: mean 30, own variance 4 (squares 8); pooled SD 2 weighs as 16 observations:
    # sqrt((16 x 4 + 8) / 18) = 2; a new session's SD adds the mean's: 2 x sqrt(1 + 1/3).
    fall = alerting.standardized_fall([28, 30, 32], 25, 2.0, 16)
    assert fall.baseline_mean == 30 and fall.baseline_sd == pytest.approx(2.0) and fall.sessions == 3
    assert fall.predictive_sd == pytest.approx(2 * math.sqrt(4 / 3))
    assert fall.z == pytest.approx(5 / (2 * math.sqrt(4 / 3)))
    assert fall.threshold(fall.z) == pytest.approx(25)
    # A client who never moves (SD 0) keeps most of the pooled noise: one dip is not infinitely unusual.
    assert alerting.shrunk_sd([30, 30, 30], 2.0, 16) == pytest.approx(2 * math.sqrt(16 / 18))


def test_the_baseline_leaves_out_the_previous_session_and_keeps_a_window():
    settings = rules(rupture={"window": 3})
    results = run(20, 24, 26, 28, 10, 27, settings=settings)
    # Session 6 is compared with sessions 2-4 (window 3), not with session 5 just before it.
    assert results[5].fall.baseline_mean == pytest.approx((24 + 26 + 28) / 3)
    assert results[5].fall.sessions == 3
    # Session 3 has only session 1 before its previous one: below the two baseline sessions needed.
    assert results[2].fall is None and results[3].fall.sessions == 2


def test_a_rupture_does_not_hide_in_the_baseline_of_the_session_after_it():
    results = run(30, 30, 30, 30, 22, 22)
    assert results[4].alert is not None and results[5].alert is not None
    assert results[5].fall.baseline_mean == 30


@pytest.mark.parametrize("offset, alerted", [(0.01, False), (0.0, False), (-0.01, True)])
def test_rupture_boundary(offset, alerted):
    # Baseline 30, 30, 30 (sessions 1-3; session 4 is the previous one); k = 2 puts the line 2 predictive
    # SDs below 30: just above it, at it, just below it.
    line = alerting.standardized_fall([30, 30, 30], 0, 2.0, 16).threshold(2.0)
    result = run(30, 30, 30, 30, line + offset)[4]
    assert (result.alert is not None) == alerted
    if alerted:
        assert result.alert.kind == alerting.CHANGE and result.alert.rules == ("rupture",)
        assert result.alert.threshold == pytest.approx(line)


def test_severity_rises_with_how_far_beyond_the_threshold():
    medium = run(30, 30, 30, 30, 24)[4].alert  # z about 2.6: beyond k = 2 by less than one SD
    high = run(30, 30, 30, 30, 20)[4].alert
    assert (medium.severity, high.severity) == ("medium", "high")


def test_a_larger_k_alerts_less():
    assert run(30, 30, 30, 30, 24)[4].alert is not None
    assert run(30, 30, 30, 30, 24, scale=alerting.AlertScale(3.0, 2.0, 0.7))[4].alert is None


# --- One alert per session ------------------------------------------------------------------------------

def test_rules_that_fire_on_one_session_make_one_alert_listing_them_all():
    settings = rules(sustained_decline={"enabled": True, "sessions": 2},
                     drop_vs_previous={"enabled": True, "min_drop_sd": 1}, reliable_drop={"enabled": True})
    alert = run(30, 30, 30, 29, 20, settings=settings)[4].alert
    assert alert.kind == alerting.CHANGE
    assert alert.rules == ("rupture", "sustained_decline", "reliable_drop", "drop_vs_previous")
    assert alert.severity == "high"  # the strongest of them


def test_a_fall_into_a_lasting_low_is_one_change_alert_that_also_names_the_level():
    # Goes below the cutoff of 27 at session 3 and stays: the third session below is also a fall.
    results = run(29, 29, 26, 26, 18)
    assert [r.alert for r in results[:4]] == [None] * 4
    last = results[4].alert
    assert last.kind == alerting.CHANGE and last.rules == ("rupture", "persistently_low")


# --- Level: a flag, rarely a notice ---------------------------------------------------------------------

def test_below_the_cutoff_is_flagged_but_not_pushed_by_default():
    results = run(29, 26, 29, 26)
    assert [r.below_cutoff for r in results] == [False, True, False, True]
    assert all(r.alert is None for r in results)


def test_a_clinic_may_push_every_session_below_the_cutoff():
    settings = rules(below_cutoff={"push": True})
    results = run(29, 26, 10, settings=settings)
    assert results[1].alert.kind == alerting.LEVEL and results[1].alert.rules == ("below_cutoff",)
    assert results[1].alert.severity == "medium" and results[1].alert.dimension == "goal"  # a tie: Bordin's order
    assert results[2].alert.severity == "high"  # in the lower half of the scale


def test_a_dyad_below_the_cutoff_from_its_first_sessions_gets_one_notice_per_stretch():
    results = run(25, 25, 25, 25, 25, 28, 25, 25, 25, 25)
    notices = [i + 1 for i, r in enumerate(results) if r.alert is not None]
    assert notices == [3, 9]  # the third session of each stretch below the cutoff
    assert results[2].alert.kind == alerting.LEVEL and results[2].alert.rules == ("persistently_low",)
    assert results[2].alert.threshold == 27


def test_late_sessions_are_flagged_but_compared_with_nothing():
    dyad = alerting.DyadRun()
    settings = rules()
    for number, total in enumerate((30, 30, 30, 30), start=1):
        dyad.apply(instrument(), score(total), number, settings, SCALE)
    before = dyad.history
    late = dyad.apply(instrument(), score(10), 2, settings, SCALE)
    assert late.late and late.below_cutoff and late.alert is None and late.fall is None
    assert dyad.history == before


# --- The dimension and the repair ----------------------------------------------------------------------

def test_the_dimension_that_fell_most_against_its_own_baseline_is_named_with_its_repair():
    # Bond is the lowest now, but it always was; goal is what fell.
    usual = score(24, goal=9, task=9, bond=6)
    alert = run(usual, usual, usual, usual, score(18, goal=6, task=7, bond=5))[4].alert
    assert alert.dimension == "goal"
    assert alert.suggestion == repair_suggestion("goal") and "goals" in alert.suggestion
    assert alerting.weakest_dimension(instrument(), score(18, goal=6, task=7, bond=5)) == "bond"


def test_an_equal_fall_is_told_apart_by_each_dimensions_own_noise():
    # Against sessions 1-4, goal and task both fall 3 points; goal always moved a lot, task never did, so
    # task's fall is the unusual one (a fixed order would have said goal, the first).
    history = [score(16 + g, goal=g, task=8, bond=8) for g in (5, 6, 8, 3, 5)]
    goal_baseline = (5 + 6 + 8 + 3) / 4
    alert = run(*history, score(13 + goal_baseline - 3, goal=goal_baseline - 3, task=5, bond=8))[5].alert
    assert alert is not None and alert.dimension == "task"


def test_a_rupture_that_began_a_session_earlier_is_named_from_both_sessions():
    usual = score(27, goal=9, task=9, bond=9)
    # Session 5 fell mostly on task, session 6 mostly on bond, but task more over the two.
    results = run(usual, usual, usual, usual, score(20, goal=8, task=4, bond=8), score(20, goal=8, task=6.5, bond=5.5))
    assert results[5].alert.dimension == "task"


# --- Did the alliance recover? -------------------------------------------------------------------------

def test_the_next_two_sessions_tell_whether_the_alliance_recovered():
    recovered = run(30, 30, 30, 30, 20, 29.5)
    assert recovered[5].outcomes == (alerting.Outcome(5, True, 6),)
    stayed = run(30, 30, 30, 30, 20, 24, 24)
    assert stayed[5].outcomes == () and stayed[6].outcomes == (alerting.Outcome(5, False, 7),)


def test_a_history_survives_storage_and_an_earlier_format_starts_afresh():
    results = run(30, 30, 30, 30, 20, 25, 25)
    history = results[-1].after
    assert alerting.DyadHistory.from_dict(history.to_dict()) == history
    assert alerting.DyadHistory.from_dict({"total": {"n": 3, "mean": 1, "m2": 0}}) == alerting.DyadHistory()


# --- Exit interviews -----------------------------------------------------------------------------------

EXIT = {"enabled": True, "severity": "high", "below": 3, "when_wants_someone_else": True}


def exit_answers(comfortable, style_fit, confident_progress, wants_someone_else=False):
    return ExitInterviewSubmitted(exit_interview_id="x-1", client_id="cl-1", counselor_id="co-1", session_number=3,
                                  comfortable=comfortable, style_fit=style_fit,
                                  confident_progress=confident_progress, wants_someone_else=wants_someone_else,
                                  outside_expertise=False)


@pytest.mark.parametrize("ratings, alerted", [((4, 3, 3), False), ((3, 3, 3), False), ((3, 3, 2), True)])
def test_exit_interview_low_fit_boundary(ratings, alerted):
    alert = alerting.evaluate_exit_interview(alerting.score_exit_interview(exit_answers(*ratings)), EXIT)
    assert (alert is not None) == alerted
    if alert:
        assert alert.rules == ("exit_interview_low_fit",) and alert.kind == alerting.EXIT_INTERVIEW
        assert alert.dimension == "goal"  # confident_progress


def test_exit_interview_wish_for_someone_else_alerts_only_when_configured():
    score_ = alerting.score_exit_interview(exit_answers(5, 4, 5, wants_someone_else=True))
    assert alerting.evaluate_exit_interview(score_, EXIT).dimension == "task"
    assert alerting.evaluate_exit_interview(score_, {**EXIT, "when_wants_someone_else": False}) is None
    assert alerting.evaluate_exit_interview(score_, {**EXIT, "enabled": False}) is None


# --- The usual level of each dimension ------------------------------------------------------------------

def test_an_alert_carries_each_dimensions_usual_level_over_the_same_baseline_as_the_total():
    # Sessions 1-3 are the baseline of session 5; session 4 (the previous one) is left out of both.
    baseline = [score(27, goal=9, task=8, bond=10), score(27, goal=7, task=8, bond=10),
                score(27, goal=8, task=6, bond=9)]
    results = run(*baseline, score(27, goal=2, task=12, bond=13), score(17, goal=4, task=6, bond=7))
    alert = results[4].alert
    assert alert.kind == alerting.CHANGE and alert.fall.baseline_mean == 27
    assert alert.usual_subscales == pytest.approx({"goal": 8, "task": 22 / 3, "bond": 29 / 3})
    # "agreement on goals 4 against a usual 8": the dimension named is the one that fell most against it.
    assert alert.dimension == "goal" and alert.usual_subscales["goal"] - 4 == pytest.approx(4)


def test_a_level_alert_with_a_baseline_carries_the_usual_levels_too():
    results = run(29, 29, 26, 26, 26)  # the third session below the cutoff, with sessions 1-3 as the baseline
    alert = results[4].alert
    assert alert.kind == alerting.LEVEL and alert.fall is not None
    assert alert.usual_subscales == pytest.approx({s: (29 + 29 + 26) / 9 for s in ("goal", "task", "bond")})


def test_no_usual_levels_without_a_baseline_or_for_exit_interviews():
    # Persistently low from the first session: at session 3 one baseline session is too few.
    level = run(25, 25, 25)[2].alert
    assert level.kind == alerting.LEVEL and level.fall is None and level.usual_subscales == {}
    # A drop against the previous session, before there is a baseline.
    change = run(30, 20, settings=rules(drop_vs_previous={"enabled": True, "min_drop_sd": 1}))[1].alert
    assert change.kind == alerting.CHANGE and change.fall is None and change.usual_subscales == {}
    exit_alert = alerting.evaluate_exit_interview(alerting.score_exit_interview(exit_answers(2, 2, 2)), EXIT)
    assert exit_alert.usual_subscales == {}


def test_a_dimension_with_no_values_in_the_baseline_has_no_usual_level():
    points = [alerting.Point(1, 20, {"goal": 6, "task": 7, "bond": None}),
              alerting.Point(2, 22, {"goal": 8, "task": None})]
    assert alerting.baseline_subscale_means(points) == {"goal": 7, "task": 7, "bond": None}
    assert alerting.baseline_subscale_means([]) == {"goal": None, "task": None, "bond": None}
