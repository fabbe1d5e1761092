"""Alliance instrument definitions: data shared by the service that shows them (intake, to clients) and the
one that scores them (scoring). One FHIR Questionnaire-shaped JSON file per instrument; no code here knows
an instrument by name."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFINITIONS = Path(__file__).parent


@lru_cache(maxsize=None)
def instrument_definitions() -> dict[str, dict[str, Any]]:
    """Every shipped definition, by id."""
    definitions = (json.loads(p.read_text()) for p in sorted(DEFINITIONS.glob("*.json")))
    return {d["id"]: d for d in definitions}
