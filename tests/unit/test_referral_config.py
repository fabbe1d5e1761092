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


def test_a_malformed_number_names_the_variable():
    with pytest.raises(ValueError, match="RAPPORT_REFERRAL_TOP_N must be of type int"):
        load_matching_config({"RAPPORT_REFERRAL_TOP_N": "five"})
