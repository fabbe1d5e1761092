import pytest
import yaml

from services.scoring.domain import EXIT_INTERVIEW_RULE, RULES
from services.scoring.instruments import shipped_instruments
from services.scoring.rules import RULES_FILE, parse_rule_defaults, rule_defaults
from services.scoring.schemas import AlertSettingsUpdateSchema, RuleSettingsSchema


def test_the_shipped_configuration_sets_every_rule_and_knows_only_shipped_instruments():
    defaults = rule_defaults()
    assert set(defaults.rules) == {*RULES, EXIT_INTERVIEW_RULE} == set(RuleSettingsSchema._declared_fields)
    assert set(defaults.instruments) <= set(shipped_instruments())
    assert all(params["enabled"] for params in defaults.rules.values())


def test_layers_apply_defaults_then_instrument_then_clinic():
    defaults = rule_defaults()
    raw = yaml.safe_load(RULES_FILE.read_text())
    default_drop = raw["rules"]["drop_vs_previous"]["min_drop"]
    rating_drop = raw["instruments"]["session-rating-4"]["drop_vs_previous"]["min_drop"]
    assert defaults.effective("unknown", None)["drop_vs_previous"]["min_drop"] == default_drop
    rating = defaults.effective("session-rating-4", None)
    assert rating["drop_vs_previous"]["min_drop"] == rating_drop
    clinic = defaults.effective("session-rating-4", {"drop_vs_previous": {"min_drop": 2},
                                                     "rupture": {"enabled": False}})
    assert clinic["drop_vs_previous"] == {**rating["drop_vs_previous"], "min_drop": 2}
    assert clinic["rupture"]["enabled"] is False and clinic["rupture"]["k"] == rating["rupture"]["k"]


def test_an_incomplete_or_invalid_configuration_is_refused():
    raw = yaml.safe_load(RULES_FILE.read_text())
    del raw["rules"]["rupture"]
    with pytest.raises(ValueError, match="rupture"):
        parse_rule_defaults(raw)
    raw = yaml.safe_load(RULES_FILE.read_text())
    raw["rules"]["rupture"]["k"] = 3  # k must lie between 1 and 2
    with pytest.raises(ValueError, match="k"):
        parse_rule_defaults(raw)


def test_clinic_overrides_may_be_partial_but_not_misspelt():
    loaded = AlertSettingsUpdateSchema().load({"rules": {"rupture": {"k": 2}}})
    assert loaded == {"rules": {"rupture": {"k": 2}}}
    with pytest.raises(Exception, match="kk"):
        AlertSettingsUpdateSchema().load({"rules": {"rupture": {"kk": 2}}})
    with pytest.raises(Exception, match="no_such_rule"):
        AlertSettingsUpdateSchema().load({"rules": {"no_such_rule": {}}})
