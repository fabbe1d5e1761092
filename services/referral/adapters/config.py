"""Matching configuration from the environment: `RAPPORT_REFERRAL_<FIELD>` overrides a MatchingConfig default,
e.g. RAPPORT_REFERRAL_WEIGHT_FIT=0.4, RAPPORT_REFERRAL_REVIEW_RULES=persistently_low,sustained_decline."""
from __future__ import annotations

import os
from dataclasses import fields, replace
from functools import lru_cache
from typing import Mapping

from services.referral.domain import MatchingConfig

PREFIX = "RAPPORT_REFERRAL_"


def load_matching_config(environ: Mapping[str, str]) -> MatchingConfig:
    defaults = MatchingConfig()
    values = {}
    for field in fields(MatchingConfig):
        raw = environ.get(f"{PREFIX}{field.name.upper()}")
        if raw is None:
            continue
        default = getattr(defaults, field.name)
        try:
            if isinstance(default, tuple):
                values[field.name] = tuple(part.strip() for part in raw.split(",") if part.strip())
            else:
                values[field.name] = type(default)(raw)
        except ValueError:
            raise ValueError(f"{PREFIX}{field.name.upper()} must be of type {type(default).__name__}") from None
    return replace(defaults, **values)


@lru_cache(maxsize=1)
def matching_config() -> MatchingConfig:
    return load_matching_config(os.environ)
