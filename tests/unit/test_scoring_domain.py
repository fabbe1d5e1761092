import pytest

from services.scoring import domain
from services.scoring.instruments import shipped_instruments


def instrument(cutoff=27.0, reverse=False):
    return domain.Instrument(id="t", title="t", cutoff_total=cutoff, items=(
        domain.Item("g", "goal", 0, 10), domain.Item("t", "task", 0, 10, reverse=reverse),
        domain.Item("b", "bond", 0, 10)))


def test_known_answer_for_the_shipped_default_instrument():
    default = shipped_instruments()["rapport-short"]
    score = domain.score_answers(default, {"goal-1": 8, "task-1": 6, "bond-1": 9})
    assert score.total == 23
    assert score.mean == pytest.approx(23 / 3)
    assert score.subscales == {"goal": 8, "task": 6, "bond": 9}
    assert default.cutoff_total == 27


def test_reverse_scored_items_are_flipped_within_their_range():
    score = domain.score_answers(instrument(reverse=True), {"g": 10, "t": 2, "b": 10})
    assert score.subscales["task"] == 8
    assert score.total == 28


@pytest.mark.parametrize("answers, message", [
    ({"g": 1, "t": 1}, "missing items \\['b'\\]"),
    ({"g": 1, "t": 1, "b": 1, "x": 1}, "unknown items \\['x'\\]"),
    ({"g": 11, "t": 1, "b": 1}, "item g outside 0-10"),
])
def test_answers_that_do_not_fit_the_instrument_are_rejected(answers, message):
    with pytest.raises(domain.InvalidAnswers, match=message):
        domain.score_answers(instrument(), answers)


@pytest.mark.parametrize("total_answers, alerted", [
    ((9, 9, 10), False),   # 28: just above the cutoff
    ((9, 9, 9), False),    # 27: at the cutoff is not below it
    ((9, 9, 8), True),     # 26: just below
])
def test_below_cutoff_boundary(total_answers, alerted):
    inst = instrument()
    score = domain.score_answers(inst, dict(zip(("g", "t", "b"), total_answers)))
    alerts = domain.evaluate_alerts(inst, score)
    assert [a.rule for a in alerts] == (["below_cutoff"] if alerted else [])


def test_alert_names_the_weakest_dimension_and_grades_severity():
    inst = instrument()
    medium = domain.evaluate_alerts(inst, domain.score_answers(inst, {"g": 9, "t": 6, "b": 9}))
    assert medium[0].dimension == "task" and medium[0].severity == "medium"
    high = domain.evaluate_alerts(inst, domain.score_answers(inst, {"g": 5, "t": 5, "b": 2}))
    assert high[0].dimension == "bond" and high[0].severity == "high"


def test_weakest_dimension_ties_resolve_in_bordin_order():
    inst = instrument()
    assert domain.weakest_dimension(inst, domain.score_answers(inst, {"g": 5, "t": 5, "b": 5})) == "goal"


def test_no_cutoff_means_no_cutoff_alert():
    inst = instrument(cutoff=None)
    assert domain.evaluate_alerts(inst, domain.score_answers(inst, {"g": 0, "t": 0, "b": 0})) == []
