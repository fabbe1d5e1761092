import pytest

from services.referral.adapters.config import load_matching_config
from services.referral.domain import MatchingConfig


def test_defaults_without_environment():
    assert load_matching_config({}) == MatchingConfig()


def test_environment_overrides_weights_numbers_and_rule_lists():
    config = load_matching_config({"RAPPORT_REFERRAL_WEIGHT_FIT": "0.5", "RAPPORT_REFERRAL_TOP_N": "3",
                                   "RAPPORT_REFERRAL_REVIEW_RULES": "rupture, sustained_decline"})
    assert (config.weight_fit, config.top_n) == (0.5, 3)
    assert config.review_rules == ("rupture", "sustained_decline")
    assert config.weight_specialty == MatchingConfig().weight_specialty


def test_the_measured_strength_settings_load_from_the_environment():
    config = load_matching_config({"RAPPORT_REFERRAL_MIN_STRENGTH_CLIENTS": "8",
                                   "RAPPORT_REFERRAL_MIN_COUNSELOR_SD": "0.04"})
    assert (config.min_strength_clients, config.min_counselor_sd) == (8, 0.04)
    assert config.strength_model().min_clients == 8


def test_a_clear_strength_outweighs_a_preference_and_the_same_clinic_by_default():
    defaults = MatchingConfig()
    assert defaults.weight_fit > defaults.weight_preference + defaults.weight_same_clinic


@pytest.mark.parametrize("name, value", [("MIN_STRENGTH_CLIENTS", "0"), ("MIN_COUNSELOR_SD", "0"),
                                         ("DEFAULT_SESSION_SD", "-0.1"), ("WEIGHT_FIT", "-1")])
def test_settings_that_would_break_the_estimate_are_refused(name, value):
    with pytest.raises(ValueError, match=f"RAPPORT_REFERRAL_{name}"):
        load_matching_config({f"RAPPORT_REFERRAL_{name}": value})


def test_a_malformed_number_names_the_variable():
    with pytest.raises(ValueError, match="RAPPORT_REFERRAL_TOP_N must be of type int"):
        load_matching_config({"RAPPORT_REFERRAL_TOP_N": "five"})
