"""Alert rule settings: the documented defaults in alert_rules.yaml, layered with per-clinic overrides."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml
from marshmallow import ValidationError

from .domain import merge_rule_settings
from .schemas import RuleSettingsSchema

RULES_FILE = Path(__file__).parent / "alert_rules.yaml"

RuleSettings = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class RuleDefaults:
    rules: RuleSettings
    instruments: Mapping[str, RuleSettings]

    def effective(self, instrument_id: str | None, clinic_overrides: Mapping[str, Any] | None) -> RuleSettings:
        """What applies to one clinic's sessions on one instrument: defaults < instrument < clinic."""
        return merge_rule_settings(self.rules, self.instruments.get(instrument_id or "", {}), clinic_overrides)


def parse_rule_defaults(raw: Mapping[str, Any]) -> RuleDefaults:
    """Check a configuration: every rule complete at the top, partial layers per instrument."""
    try:
        rules = RuleSettingsSchema().load(raw["rules"])
        missing = set(RuleSettingsSchema._declared_fields) - set(rules)
        if missing:
            raise ValidationError({"rules": {rule: ["Missing rule."] for rule in sorted(missing)}})
        instruments = {instrument_id: RuleSettingsSchema(partial=True).load(layer)
                       for instrument_id, layer in (raw.get("instruments") or {}).items()}
    except (KeyError, ValidationError) as exc:
        raise ValueError(f"invalid alert rule configuration: {exc}") from None
    return RuleDefaults(rules=rules, instruments=instruments)


@lru_cache(maxsize=None)
def rule_defaults() -> RuleDefaults:
    return parse_rule_defaults(yaml.safe_load(RULES_FILE.read_text()))
