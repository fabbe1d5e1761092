"""Matching configuration from the environment: `RAPPORT_REFERRAL_<FIELD>` overrides a MatchingConfig default,
e.g. RAPPORT_REFERRAL_WEIGHT_FIT=0.4 (the measured strength's weight), RAPPORT_REFERRAL_MIN_STRENGTH_CLIENTS=8,
RAPPORT_REFERRAL_REVIEW_RULES=persistently_low,sustained_decline; RAPPORT_REFERRAL_STRENGTH_REFRESH_S says how
long a process's cached strengths serve while sessions are scored (adapters/directory_cache.py)."""
from __future__ import annotations

import os
from dataclasses import fields, replace
from functools import lru_cache
from typing import Mapping

from services.referral.domain import MatchingConfig
from services.referral.outcomes import OutcomeConfig

PREFIX = "RAPPORT_REFERRAL_"
# What the strength estimate divides by or counts with: zero or less would break it (or show strengths from
# no evidence). Weights (weight_*) may be zero, never negative.
POSITIVE = ("min_strength_clients", "default_session_sd", "default_client_sd", "min_counselor_sd")


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
    config = replace(defaults, **values)
    for field in fields(MatchingConfig):
        value = getattr(config, field.name)
        if field.name in POSITIVE and value <= 0:
            raise ValueError(f"{PREFIX}{field.name.upper()} must be positive")
        if field.name.startswith("weight_") and value < 0:
            raise ValueError(f"{PREFIX}{field.name.upper()} must not be negative")
    return config


@lru_cache(maxsize=1)
def matching_config() -> MatchingConfig:
    return load_matching_config(os.environ)


STRENGTH_REFRESH = f"{PREFIX}STRENGTH_REFRESH_S"
DEFAULT_STRENGTH_REFRESH_S = 300.0


def load_strength_refresh_s(environ: Mapping[str, str]) -> float:
    """How old (seconds) a process's cached strengths may grow while sessions are scored before the directory
    is built again (adapters/directory_cache.py): RAPPORT_REFERRAL_STRENGTH_REFRESH_S, 300 by default; 0
    builds it again at the next recommendation after any scored session. A counselor's change never waits."""
    raw = environ.get(STRENGTH_REFRESH)
    if raw is None:
        return DEFAULT_STRENGTH_REFRESH_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{STRENGTH_REFRESH} must be a number of seconds") from None
    if not value >= 0:
        raise ValueError(f"{STRENGTH_REFRESH} must not be negative")
    return value


@lru_cache(maxsize=1)
def strength_refresh_s() -> float:
    return load_strength_refresh_s(os.environ)


OUTCOME_PREFIX = "RAPPORT_REFERRAL_OUTCOME_"


def load_outcome_config(environ: Mapping[str, str]) -> OutcomeConfig:
    """How accepted referrals are judged: RAPPORT_REFERRAL_OUTCOME_SESSIONS, RAPPORT_REFERRAL_OUTCOME_MARGIN."""
    defaults = OutcomeConfig()
    values = {}
    for field in fields(OutcomeConfig):
        raw = environ.get(f"{OUTCOME_PREFIX}{field.name.upper()}")
        if raw is None:
            continue
        try:
            values[field.name] = type(getattr(defaults, field.name))(raw)
        except ValueError:
            raise ValueError(f"{OUTCOME_PREFIX}{field.name.upper()} must be of type "
                             f"{type(getattr(defaults, field.name)).__name__}") from None
    config = replace(defaults, **values)
    if config.sessions < 1:
        raise ValueError(f"{OUTCOME_PREFIX}SESSIONS must be at least 1")
    if not 0 <= config.margin < 1:
        raise ValueError(f"{OUTCOME_PREFIX}MARGIN is a fraction of the scale, from 0 up to 1")
    return config


@lru_cache(maxsize=1)
def outcome_config() -> OutcomeConfig:
    return load_outcome_config(os.environ)
