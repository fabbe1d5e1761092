"""Each clinic's alert calibration per instrument (calibration.py), kept in the database and refreshed from
the clinic's stored sessions once a day; in process memory for a few minutes, so that a batch of feedback
costs no extra round trip."""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Mapping

from services.common.mongo import utcnow

from services.scoring.domain.calibration import (Calibration, calibrate, detector_params, has_enough_data,
                          sessions_per_counselor_month_dated)
from services.scoring.domain.instruments import Instrument
from services.scoring.adapters.models import ClinicCalibration, ScoredSession

REFRESH_AFTER = timedelta(hours=24)
# The clinic's last year of sessions: enough for the noise and the exposure, bounded in size.
LOOK_BACK = timedelta(days=365)
MAX_SESSIONS = 50_000
MEMORY_S = 300.0

_memory: dict[str, tuple[float, Calibration]] = {}
_memory_lock = threading.Lock()


def calibration_for(org_id: str, clinic_id: str, instrument: Instrument, rules: Mapping[str, Mapping[str, Any]],
                    now: datetime | None = None) -> Calibration:
    """The clinic's calibration for the instrument, as fitted to its sessions (or the instrument's documented
    values while it has too few); computed again when a day old or made for other detector settings."""
    key = ClinicCalibration.key(org_id, clinic_id, instrument.id)
    with _memory_lock:
        remembered = _memory.get(key)
    if remembered and time.monotonic() - remembered[0] < MEMORY_S and remembered[1].fits(rules):
        return remembered[1]
    now = now or utcnow()
    stored = ClinicCalibration.objects(id=key).first()
    if stored is not None and now - stored.computed_at.replace(tzinfo=now.tzinfo) < REFRESH_AFTER:
        found = Calibration.from_dict(stored.calibration)
        if found.fits(rules):
            return _remember(key, found)
    found = refresh(org_id, clinic_id, instrument, rules, now)
    return _remember(key, found)


def refresh(org_id: str, clinic_id: str, instrument: Instrument, rules: Mapping[str, Mapping[str, Any]],
            now: datetime) -> Calibration:
    dyads, spans = clinic_sessions(org_id, clinic_id, instrument.id, now - LOOK_BACK)
    if has_enough_data(dyads):
        found = calibrate(instrument, dyads, rules, sessions_per_counselor_month_dated(spans))
    else:
        found = documented_calibration(instrument, detector_params(rules))
    ClinicCalibration.objects(id=ClinicCalibration.key(org_id, clinic_id, instrument.id)).update_one(
        upsert=True, set__org_id=org_id, set__clinic_id=clinic_id, set__instrument_id=instrument.id,
        set__calibration=found.to_dict(), set__computed_at=now)
    return found


def clinic_sessions(org_id: str, clinic_id: str, instrument_id: str,
                    since: datetime) -> tuple[list[list[Mapping[str, float]]], list[tuple[int, float]]]:
    """The clinic's answered sessions on the instrument since `since`: each dyad's answers in session order,
    and per counselor (sessions, days from their first to their last)."""
    found = (ScoredSession.objects(org_id=org_id, clinic_id=clinic_id, instrument_id=instrument_id, late=False,
                                  submitted_at__gte=since)
             .only("client_id", "counselor_id", "session_number", "answers", "submitted_at")
             .limit(MAX_SESSIONS).as_pymongo())
    by_dyad: dict[tuple[str, str], list[tuple[int, dict]]] = defaultdict(list)
    dates: dict[str, list[datetime]] = defaultdict(list)
    for s in found:
        by_dyad[(s["client_id"], s["counselor_id"])].append((s["session_number"], s["answers"]))
        dates[s["counselor_id"]].append(s["submitted_at"])
    # Dyads in a fixed order: the calibration's simulation follows them, and the database's order may vary.
    dyads = [[answers for _, answers in sorted(sessions, key=lambda p: p[0])]
             for _, sessions in sorted(by_dyad.items())]
    spans = [(len(d), (max(d) - min(d)).total_seconds() / 86400) for d in dates.values()]
    return dyads, spans


def _remember(key: str, found: Calibration) -> Calibration:
    with _memory_lock:
        _memory[key] = (time.monotonic(), found)
    return found


@lru_cache(maxsize=64)
def documented_calibration(instrument: Instrument, detector: tuple[int, float, int]) -> Calibration:
    """The instrument's documented calibration: the same for every clinic without enough data of its own,
    so made once per process."""
    window, prior_weight, min_baseline = detector
    rules = {"rupture": {"window": window, "prior_weight": prior_weight, "min_baseline_sessions": min_baseline}}
    return calibrate(instrument, [], rules)
