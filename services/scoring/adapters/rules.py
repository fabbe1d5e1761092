"""Alert settings: the documented defaults in alert_rules.yaml, layered with a clinic's overrides."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml
from marshmallow import ValidationError

from services.scoring.domain.alerting import merge_settings
from services.scoring.domain.settings import AlertSettingsUpdateSchema, BudgetSchema, RuleSettingsSchema

RULES_FILE = Path(__file__).parent / "alert_rules.yaml"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertDefaults:
    settings: dict[str, Any]  # {"budget": {...}, "rules": {rule: {...}}}

    def effective(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        """What applies to one clinic: the defaults with its overrides, value by value."""
        return merge_settings(self.settings, overrides)


def parse_alert_defaults(raw: Mapping[str, Any]) -> AlertDefaults:
    """Check a configuration: the budget and every rule complete."""
    try:
        budget = BudgetSchema().load(raw["budget"])
        rules = RuleSettingsSchema().load(raw["rules"])
        missing = set(RuleSettingsSchema._declared_fields) - set(rules)
        if missing:
            raise ValidationError({"rules": {rule: ["Missing rule."] for rule in sorted(missing)}})
    except (KeyError, ValidationError) as exc:
        raise ValueError(f"invalid alert rule configuration: {exc}") from None
    return AlertDefaults({"budget": budget, "rules": rules})


@lru_cache(maxsize=None)
def alert_defaults() -> AlertDefaults:
    return parse_alert_defaults(yaml.safe_load(RULES_FILE.read_text()))


def effective_settings(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The defaults with a clinic's (checked) overrides; ValidationError naming the field when together
    they cannot work."""
    effective = alert_defaults().effective(overrides)
    rupture = effective["rules"]["rupture"]
    if rupture["min_baseline_sessions"] > rupture["window"]:
        raise ValidationError({"rules": {"rupture": {"min_baseline_sessions": [
            f"May not exceed the window ({rupture['window']} sessions)."]}}})
    return effective


def stored_overrides(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """A clinic's stored overrides as they apply today. Values a later version no longer knows (a rule or a
    parameter since renamed) are left out, and said so in the log, rather than breaking the clinic's
    scoring; everything else the admin set stays in force."""
    raw = dict(raw or {})
    try:
        return AlertSettingsUpdateSchema().load(raw)
    except ValidationError as exc:
        kept = _without(raw, exc.messages)
        log.warning("alert settings: stored values no longer valid were ignored: %s", sorted(_paths(exc.messages)))
        try:
            return AlertSettingsUpdateSchema().load(kept)
        except ValidationError:
            return {}


def _without(data: Any, errors: Any) -> Any:
    if not isinstance(data, dict) or not isinstance(errors, dict):
        return data
    return {key: _without(value, errors.get(key)) for key, value in data.items()
            if key not in errors or isinstance(errors[key], dict)}


def _paths(errors: Any, prefix: str = "") -> list[str]:
    if not isinstance(errors, dict):
        return [prefix]
    return [p for key, value in errors.items() for p in _paths(value, f"{prefix}.{key}" if prefix else key)]
