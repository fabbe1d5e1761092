"""The instrument definitions shipped with Rapport, one JSON file each, loaded by id."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..domain import Instrument, parse_instrument

DEFINITIONS = Path(__file__).parent


@lru_cache(maxsize=None)
def shipped_instruments() -> dict[str, Instrument]:
    instruments = (parse_instrument(json.loads(p.read_text())) for p in sorted(DEFINITIONS.glob("*.json")))
    return {i.id: i for i in instruments}
