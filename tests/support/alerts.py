"""What scoring sends when the alliance falls (alliance.dropped), for tests of its consumers."""
from __future__ import annotations

from typing import Any

from services.common.events import new_id


def alliance_dropped(client_id: str, counselor_id: str, **values: Any) -> dict[str, Any]:
    """A payload of one alert: a persistently low alliance at session 2 unless told otherwise."""
    rules = values.pop("rules", ["persistently_low"])
    return {"alert_id": new_id(), "source_event_id": new_id(), "client_id": client_id,
            "counselor_id": counselor_id, "session_number": 2, "instrument_id": "rapport-short",
            "kind": "change" if "rupture" in rules else "level", "rules": rules, "dimension": "task",
            "severity": "high", "total": 24, "threshold": 27, **values}
