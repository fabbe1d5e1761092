"""What staff ask scoring to do; built by the HTTP entrypoints (API and pages) from validated input.

Scoring's other writes come from events (feedback, exit interviews, acknowledgements): see EVENT_HANDLERS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from services.common.auth import Identity


@dataclass(frozen=True)
class UpdateAlertSettings:
    """Replace a clinic's overrides of the default alert settings; `{}` returns it to the defaults."""

    identity: Identity
    clinic_id: str
    overrides: Mapping[str, Any]
