import math
from pathlib import Path

import pytest

from services.common.instruments import instrument_definitions
from services.scoring.domain import instruments as domain
from services.scoring.adapters.instruments import shipped_instruments


def instrument(cutoff=27.0, reverse=False, sd=2.0, reliability=0.5):
    # With z = 2, SD = 2 and r = .5 the reliable change index is exactly 2 x 2 x sqrt(2 x .5) = 4.
    return domain.Instrument(id="t", title="t", cutoff_total=cutoff, sd=sd, reliability=reliability, items=(
        domain.Item("g", "goal", 0, 10), domain.Item("t", "task", 0, 10, reverse=reverse),
        domain.Item("b", "bond", 0, 10)))


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
        assert parsed.reliable_change_index() > 0


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


# --- Reliable change and documented noise ----------------------------------------------------------------

def test_reliable_change_index_arithmetic():
    assert domain.reliable_change_index(2.0, 0.5, z=2.0) == pytest.approx(4.0)
    assert domain.reliable_change_index(4.5, 0.88) == pytest.approx(1.96 * 4.5 * math.sqrt(0.24))
    assert shipped_instruments()["session-rating-4"].reliable_change_index() == pytest.approx(4.3209, abs=1e-4)
    assert domain.reliable_change_index(None, 0.8) is None


def test_documented_noise_is_the_standard_error_of_measurement_or_a_share_of_the_range():
    rating = shipped_instruments()["session-rating-4"]
    assert rating.documented_noise == pytest.approx(4.5 * math.sqrt(1 - 0.88))
    undocumented = instrument(sd=None, reliability=None)
    assert undocumented.documented_noise == pytest.approx(0.04 * 30)
