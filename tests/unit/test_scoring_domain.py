import math
import random
import statistics
from pathlib import Path

import pytest

from services.common.instruments import instrument_definitions
from services.scoring import domain
from services.scoring.instruments import shipped_instruments

# Rule settings for the boundary tests: explicit here, so that a change of the shipped defaults does not
# move the boundaries under test (the shipped defaults are checked in test_scoring_rules.py).
RULES = {
    "below_cutoff": {"enabled": True, "severity": "medium", "high_below_share": 0.5, "only_when_crossing": False},
    "drop_vs_previous": {"enabled": True, "severity": "medium", "min_drop": 3},
    "reliable_drop": {"enabled": True, "severity": "high", "z": 2.0, "min_baseline_sessions": 2},
    "rupture": {"enabled": True, "severity": "high", "k": 1.5, "min_baseline_sessions": 3, "min_sd": 1.0},
    "sustained_decline": {"enabled": True, "severity": "medium", "sessions": 3},
}


def only(*rules):
    return {r: ({**p, "enabled": True} if r in rules else {**p, "enabled": False}) for r, p in RULES.items()}


def instrument(cutoff=27.0, reverse=False, sd=2.0, reliability=0.5):
    # With z = 2, SD = 2 and r = .5 the reliable change index is exactly 2 x 2 x sqrt(2 x .5) = 4.
    return domain.Instrument(id="t", title="t", cutoff_total=cutoff, sd=sd, reliability=reliability, items=(
        domain.Item("g", "goal", 0, 10), domain.Item("t", "task", 0, 10, reverse=reverse),
        domain.Item("b", "bond", 0, 10)))


def score(total, goal=None, task=None, bond=None):
    """A session with the given total, spread evenly over the subscales unless given."""
    even = total / 3
    return domain.SessionScore(total=total, mean=even, subscales={
        "goal": even if goal is None else goal, "task": even if task is None else task,
        "bond": even if bond is None else bond})


def history(*totals):
    trajectory = domain.Trajectory()
    for number, total in enumerate(totals, start=1):
        trajectory = trajectory.advance(number, score(total))
    return trajectory


def fired(rules, total, before, **subscales):
    return [a.rule for a in domain.evaluate_alerts(instrument(), score(total, **subscales), rules, before)]


# --- Known answers per shipped instrument -----------------------------------------------------------------

def test_known_answer_for_the_shipped_default_instrument():
    default = shipped_instruments()["rapport-short"]
    result = domain.score_answers(default, {"goal-1": 8, "task-1": 6, "bond-1": 9})
    assert result.total == 23
    assert result.mean == pytest.approx(23 / 3)
    assert result.subscales == {"goal": 8, "task": 6, "bond": 9}
    assert default.cutoff_total == 27


def test_known_answer_for_the_wai_sr_key():
    wai = shipped_instruments()["wai-sr"]
    task_items = {1, 2, 10, 12}
    answers = {f"wai-{n}": (2 if n in task_items else 4) for n in range(1, 13)}
    answers["wai-3"] = 5  # a bond item
    result = domain.score_answers(wai, answers)
    assert result.total == 4 * 2 + 7 * 4 + 5 == 41
    assert result.mean == pytest.approx(41 / 12)
    assert result.subscales == {"task": 2, "goal": 4, "bond": pytest.approx(4.25)}
    assert (wai.min_total, wai.max_total) == (12, 60)


def test_wai_sr_subscales_follow_the_published_key_and_ship_no_item_text():
    definition = instrument_definitions()["wai-sr"]
    by_subscale = {}
    for item in definition["item"]:
        by_subscale.setdefault(item["rapport"]["subscale"], set()).add(int(item["linkId"].split("-")[1]))
        assert "text" not in item
    assert by_subscale == {"task": {1, 2, 10, 12}, "goal": {4, 6, 8, 11}, "bond": {3, 5, 7, 9}}


def test_known_answer_for_the_four_item_session_rating():
    rating = shipped_instruments()["session-rating-4"]
    result = domain.score_answers(rating, {"relationship": 9, "goals-topics": 8.5, "approach": 7, "overall": 8})
    assert result.total == 32.5
    assert result.mean == pytest.approx(32.5 / 4)
    # "overall" belongs to no dimension: it counts in the total only.
    assert result.subscales == {"bond": 9, "goal": 8.5, "task": 7}
    assert (rating.min_total, rating.max_total, rating.cutoff_total) == (0, 40, 36)
    assert all("text" not in item for item in instrument_definitions()["session-rating-4"]["item"])


def test_every_shipped_instrument_has_what_reliable_change_needs():
    for definition in instrument_definitions().values():
        parsed = domain.parse_instrument(definition)
        assert parsed.reliability is not None and parsed.sd is not None, parsed.id
        assert parsed.reliable_change_index > 0


def test_scoring_code_names_no_instrument():
    code = "\n".join(p.read_text() for p in (Path(domain.__file__).parent).glob("*.py"))
    for instrument_id in instrument_definitions():
        assert instrument_id not in code


def test_reverse_scored_items_are_flipped_within_their_range():
    result = domain.score_answers(instrument(reverse=True), {"g": 10, "t": 2, "b": 10})
    assert result.subscales["task"] == 8
    assert result.total == 28


@pytest.mark.parametrize("answers, message", [
    ({"g": 1, "t": 1}, "missing items \\['b'\\]"),
    ({"g": 1, "t": 1, "b": 1, "x": 1}, "unknown items \\['x'\\]"),
    ({"g": 11, "t": 1, "b": 1}, "item g outside 0-10"),
])
def test_answers_that_do_not_fit_the_instrument_are_rejected(answers, message):
    with pytest.raises(domain.InvalidAnswers, match=message):
        domain.score_answers(instrument(), answers)


# --- Reliable change and the running baseline ---------------------------------------------------------------

def test_reliable_change_index_arithmetic():
    assert domain.reliable_change_index(2.0, 0.5, z=2.0) == pytest.approx(4.0)
    assert domain.reliable_change_index(4.5, 0.88) == pytest.approx(1.96 * 4.5 * math.sqrt(0.24))
    assert shipped_instruments()["session-rating-4"].reliable_change_index == pytest.approx(4.3209, abs=1e-4)
    assert domain.reliable_change_index(None, 0.8) is None


def test_running_stats_match_the_batch_formulas():
    values = [random.Random(7).uniform(10, 40) for _ in range(200)]
    stats = domain.RunningStats()
    for v in values:
        stats = stats.add(v)
    assert stats.n == 200
    assert stats.mean == pytest.approx(statistics.fmean(values))
    assert stats.sd == pytest.approx(statistics.stdev(values))
    assert domain.RunningStats().add(5).sd is None


def test_trajectory_keeps_what_the_rules_need_and_survives_storage():
    trajectory = history(28, 26, 30, 29, 27)
    assert (trajectory.total.n, trajectory.total.mean, trajectory.last_total) == (5, 28, 27)
    assert trajectory.falls_in_a_row == 2
    assert trajectory.subscales["goal"].mean == pytest.approx(28 / 3)
    assert domain.Trajectory.from_dict(trajectory.to_dict()) == trajectory
    assert trajectory.is_late(5) and not trajectory.is_late(6)


# --- Rule boundaries: just above / at / below -----------------------------------------------------------------

@pytest.mark.parametrize("answers, alerted", [
    ((9, 9, 10), False),   # 28: just above the cutoff
    ((9, 9, 9), False),    # 27: at the cutoff is not below it
    ((9, 9, 8), True),     # 26: just below
])
def test_below_cutoff_boundary(answers, alerted):
    inst = instrument()
    result = domain.score_answers(inst, dict(zip(("g", "t", "b"), answers)))
    assert [a.rule for a in domain.evaluate_alerts(inst, result, only("below_cutoff"))] == (
        ["below_cutoff"] if alerted else [])


@pytest.mark.parametrize("total, alerted", [(25.5, False), (25, True), (24.5, True)])
def test_drop_vs_previous_boundary(total, alerted):
    # previous 28, min_drop 3: a drop of 3 or more (a total of 25 or less) alerts.
    assert fired(only("drop_vs_previous"), total, history(28)) == (["drop_vs_previous"] if alerted else [])


@pytest.mark.parametrize("total, alerted", [(24.5, False), (24, False), (23.5, True)])
def test_reliable_drop_boundary(total, alerted):
    # baseline mean 28, RCI 4: a fall of more than 4 (a total below 24) alerts.
    assert fired(only("reliable_drop"), total, history(28, 28)) == (["reliable_drop"] if alerted else [])


def test_reliable_drop_waits_for_a_baseline():
    assert fired(only("reliable_drop"), 10, history(28)) == []


@pytest.mark.parametrize("total, alerted", [(25.5, False), (25, False), (24.5, True)])
def test_rupture_boundary(total, alerted):
    # baseline 28, 26, 30: mean 28, SD 2; k = 1.5 puts the line at 25.
    assert fired(only("rupture"), total, history(28, 26, 30)) == (["rupture"] if alerted else [])


def test_rupture_needs_enough_sessions_and_floors_a_zero_sd():
    assert fired(only("rupture"), 20, history(28, 26)) == []
    # Always at the ceiling (SD 0): the SD floor of 1 puts the line at 30 - 1.5 = 28.5.
    assert fired(only("rupture"), 29, history(30, 30, 30)) == []
    assert fired(only("rupture"), 28, history(30, 30, 30)) == ["rupture"]


@pytest.mark.parametrize("before, total, alerted", [
    ((30, 29), 28, False),        # two falls: one short of three
    ((30, 29, 28), 28, False),    # level at the third: the run is broken
    ((30, 29, 28), 27.5, True),   # the third fall in a row
])
def test_sustained_decline_boundary(before, total, alerted):
    assert fired(only("sustained_decline"), total, history(*before)) == (["sustained_decline"] if alerted else [])


def test_below_cutoff_can_be_limited_to_crossing_the_cutoff():
    crossing = {"below_cutoff": {**RULES["below_cutoff"], "only_when_crossing": True}}
    assert fired(crossing, 26, history(28)) == ["below_cutoff"]      # from above to below: alert
    assert fired(crossing, 25, history(28, 26)) == []                # still below: no repeat
    assert fired(crossing, 26, history(26, 27)) == ["below_cutoff"]  # back at the cutoff, then below again
    assert fired(crossing, 26, domain.Trajectory()) == ["below_cutoff"]  # a first session below


def test_disabled_rules_stay_quiet_and_late_sessions_meet_only_the_cutoff():
    assert domain.evaluate_alerts(instrument(), score(5), only(), history(30, 30, 30)) == []
    late = domain.evaluate_alerts(instrument(), score(5), RULES, history(30, 30, 30), late=True)
    assert [a.rule for a in late] == ["below_cutoff"]


def test_a_severe_fall_names_every_rule_it_breaks():
    rules = [a.rule for a in domain.evaluate_alerts(instrument(), score(18), RULES, history(30, 29, 28))]
    assert rules == ["below_cutoff", "drop_vs_previous", "reliable_drop", "rupture", "sustained_decline"]


# --- Attribution and severity ------------------------------------------------------------------------------

def test_the_dimension_that_fell_most_is_named_with_its_repair_suggestion():
    before = domain.Trajectory().advance(1, score(27, goal=9, task=9, bond=9))
    [alert] = domain.evaluate_alerts(instrument(), score(23, goal=8.5, task=6, bond=8.5), only("drop_vs_previous"),
                                     before)
    assert alert.dimension == "task"
    assert "start small" in alert.suggestion


def test_attribution_compares_with_the_baseline_not_the_current_level():
    # Bond is the lowest now, but it was always low; goal is what fell.
    before = history()
    for number in (1, 2, 3):
        before = before.advance(number, score(24, goal=9, task=9, bond=6))
    [alert] = domain.evaluate_alerts(instrument(), score(18, goal=6, task=7, bond=5), only("rupture"), before)
    assert alert.dimension == "goal"
    assert domain.weakest_dimension(instrument(), score(18, goal=6, task=7, bond=5)) == "bond"


def test_repair_suggestions_cover_every_dimension():
    assert "goals" in domain.repair_suggestion("goal")
    assert "empathy" in domain.repair_suggestion("bond")
    assert domain.repair_suggestion(None) is None


def test_below_cutoff_names_the_weakest_dimension_and_grades_severity():
    inst = instrument()
    [medium] = domain.evaluate_alerts(inst, domain.score_answers(inst, {"g": 9, "t": 6, "b": 9}), RULES)
    assert medium.dimension == "task" and medium.severity == "medium"
    [high] = domain.evaluate_alerts(inst, domain.score_answers(inst, {"g": 5, "t": 5, "b": 2}), RULES)
    assert high.dimension == "bond" and high.severity == "high"


def test_weakest_dimension_ties_resolve_in_bordin_order():
    inst = instrument()
    assert domain.weakest_dimension(inst, domain.score_answers(inst, {"g": 5, "t": 5, "b": 5})) == "goal"


def test_no_cutoff_means_no_cutoff_alert():
    inst = instrument(cutoff=None)
    assert domain.evaluate_alerts(inst, domain.score_answers(inst, {"g": 0, "t": 0, "b": 0}), RULES) == []


# --- Exit interviews -------------------------------------------------------------------------------------

EXIT = {"enabled": True, "severity": "high", "below": 3, "when_wants_someone_else": True}


def exit_answers(comfortable, style_fit, confident_progress, wants_someone_else=False):
    return {"comfortable": comfortable, "style_fit": style_fit, "confident_progress": confident_progress,
            "wants_someone_else": wants_someone_else, "outside_expertise": False}


@pytest.mark.parametrize("ratings, alerted", [((4, 3, 3), False), ((3, 3, 3), False), ((3, 3, 2), True)])
def test_exit_interview_low_fit_boundary(ratings, alerted):
    alert = domain.evaluate_exit_interview(domain.score_exit_interview(exit_answers(*ratings)), EXIT)
    assert (alert is not None) == alerted
    if alert:
        assert alert.rule == "exit_interview_low_fit" and alert.dimension == "goal"  # confident_progress


def test_exit_interview_wish_for_someone_else_alerts_only_when_configured():
    score_ = domain.score_exit_interview(exit_answers(5, 4, 5, wants_someone_else=True))
    assert domain.evaluate_exit_interview(score_, EXIT).dimension == "task"
    assert domain.evaluate_exit_interview(score_, {**EXIT, "when_wants_someone_else": False}) is None
    assert domain.evaluate_exit_interview(score_, {**EXIT, "enabled": False}) is None
