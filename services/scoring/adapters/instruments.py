"""The shipped instrument definitions, parsed for scoring."""
from __future__ import annotations

from functools import lru_cache

from services.common.instruments import instrument_definitions

from services.scoring.domain.instruments import Instrument, parse_instrument


@lru_cache(maxsize=None)
def shipped_instruments() -> dict[str, Instrument]:
    return {id_: parse_instrument(d) for id_, d in instrument_definitions().items()}
