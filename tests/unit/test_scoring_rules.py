import logging

import pytest
import yaml
from marshmallow import ValidationError

from services.scoring.domain.alerting import EXIT_INTERVIEW_RULE, RULES
from services.scoring.adapters.rules import (RULES_FILE, alert_defaults, effective_settings, parse_alert_defaults,
                                    stored_overrides)
from services.scoring.domain.settings import AlertSettingsUpdateSchema, RuleSettingsSchema


def test_the_shipped_configuration_sets_a_budget_and_every_rule_and_no_instrument_layers():
    defaults = alert_defaults().settings
    assert set(defaults["rules"]) == {*RULES, EXIT_INTERVIEW_RULE} == set(RuleSettingsSchema._declared_fields)
    assert defaults["budget"] == {"false_alerts_per_counselor_month": 1.0}
    # No per-instrument hand-tuned values: what depends on the scale comes from the instrument and the data.
    assert "instruments" not in yaml.safe_load(RULES_FILE.read_text())
    # By default the change rule alerts, a level flag is not pushed but a lasting one gets a notice.
    rules = defaults["rules"]
    assert rules["rupture"]["enabled"] and rules["persistently_low"]["enabled"]
    assert rules["below_cutoff"]["push"] is False
    assert not any(rules[r]["enabled"] for r in ("sustained_decline", "reliable_drop", "drop_vs_previous"))


def test_a_clinic_overrides_value_by_value():
    effective = effective_settings({"budget": {"false_alerts_per_counselor_month": 2},
                                    "rules": {"rupture": {"window": 6}, "below_cutoff": {"push": True}}})
    defaults = alert_defaults().settings
    assert effective["budget"]["false_alerts_per_counselor_month"] == 2
    assert effective["rules"]["rupture"] == {**defaults["rules"]["rupture"], "window": 6}
    assert effective["rules"]["below_cutoff"]["push"] is True
    assert effective["rules"]["persistently_low"] == defaults["rules"]["persistently_low"]
    assert effective_settings({}) == effective_settings(None) == {"budget": defaults["budget"],
                                                                  "rules": defaults["rules"]}


def test_an_incomplete_or_invalid_configuration_is_refused():
    raw = yaml.safe_load(RULES_FILE.read_text())
    del raw["rules"]["rupture"]
    with pytest.raises(ValueError, match="rupture"):
        parse_alert_defaults(raw)
    raw = yaml.safe_load(RULES_FILE.read_text())
    raw["budget"]["false_alerts_per_counselor_month"] = 0
    with pytest.raises(ValueError, match="false_alerts_per_counselor_month"):
        parse_alert_defaults(raw)


def test_clinic_overrides_may_be_partial_but_not_misspelt_or_contradictory():
    loaded = AlertSettingsUpdateSchema().load({"rules": {"rupture": {"window": 5}}})
    assert loaded == {"rules": {"rupture": {"window": 5}}}
    with pytest.raises(ValidationError, match="windw"):
        AlertSettingsUpdateSchema().load({"rules": {"rupture": {"windw": 5}}})
    with pytest.raises(ValidationError, match="no_such_rule"):
        AlertSettingsUpdateSchema().load({"rules": {"no_such_rule": {}}})
    with pytest.raises(ValidationError) as refused:
        effective_settings({"rules": {"rupture": {"min_baseline_sessions": 9}}})  # more than the window of 8
    assert "min_baseline_sessions" in refused.value.messages["rules"]["rupture"]


def test_stored_overrides_of_an_earlier_version_keep_what_still_applies(caplog):
    # Before the budget, a clinic could set the rupture rule's k and per-instrument drops: those are gone.
    stored = {"budget": {}, "rules": {"rupture": {"k": 2.0, "enabled": False}, "below_cutoff": {"push": True}}}
    with caplog.at_level(logging.WARNING):
        kept = stored_overrides(stored)
    assert kept == {"budget": {}, "rules": {"rupture": {"enabled": False}, "below_cutoff": {"push": True}}}
    assert "rules.rupture.k" in caplog.text
