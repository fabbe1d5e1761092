"""The matching directory of each organisation, kept in process memory and revalidated by one `_id` look-up.

Building a directory scans every CounselorView and CounselorFit of the organisation (FerretDB indexes only
`_id`: every other query is a scan) and estimates the strengths over all of them (strengths.py), which at
tens of thousands of counselors takes seconds. So each process keeps the directory it built, per database and
organisation, and rebuilds it only when what it was built from has changed.

What changed is said by one small document per organisation (DirectoryVersion, `_id` = org id), which the
writers bump with one update by `_id` AFTER their own write (so a reader that sees the new number also sees
the new data; a reader that built between the write and the bump only builds once more):

    counselors   bumped by every `counselor.updated` (handlers.handle_counselor_updated), each number N
                 recorded with the counselor it stands for (DirectoryChange, `_id` "<org>:<N>"). A counselor's
                 facts are hard constraints: one who is no longer active or accepting, or has no place left,
                 must never be recommended. The next recommendation, in any process, reads the counselors
                 changed since its directory (by `_id`) and replaces their rows, strengths kept; it builds the
                 whole directory again only when more than MAX_CHANGES_APPLIED changed or a change's record
                 is not there yet (its writer bumped the number and has not recorded it).
    sessions     bumped by every scored session folded into a fit (handlers._record_session). A session moves
                 the strengths, but barely once a strength has the evidence it needs to weigh in (five clients
                 or more by default): the directory is rebuilt for it only when its strengths are older than
                 `strength_refresh_s` (RAPPORT_REFERRAL_STRENGTH_REFRESH_S, 300 s by default). The trade-off,
                 stated: a new strength (or a changed one) may take up to that long to weigh in; a closed
                 counselor never does.

A recommendation with nothing changed reads the version document and ranks the cached directory: no scan.
Several worker processes each keep their own copy; the version document is what they share.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import mongoengine as me
from prometheus_client import Counter
from pymongo.errors import DuplicateKeyError

from services.referral import domain
from services.referral.adapters import config as referral_config
from services.referral.adapters.models import DirectoryChange, DirectoryVersion

DIRECTORY_LOADS = Counter("rapport_referral_directory_loads_total",
                          "Matching directories built from the database (a scan of the organisation), by why",
                          ["reason"])
COUNSELORS_APPLIED = Counter("rapport_referral_directory_counselors_applied_total",
                             "Cached matching directories brought up to date with changed counselors (no scan)")
# Directories kept per process, least recently used dropped first (each holds one organisation's counselors).
MAX_DIRECTORIES = 32
# Changed counselors read one by one up to this many; more, and building the directory again is about as fast.
MAX_CHANGES_APPLIED = 500

Loader = Callable[[str, domain.MatchingConfig], domain.Directory]
# (org_id, counselor ids) -> those counselors' facts as matching reads them (one `_id` look-up for all).
CounselorLoader = Callable[[str, list[str]], list[domain.Counselor]]


@dataclass(frozen=True)
class _Cached:
    counselors: int  # the version counters the directory was built at
    sessions: int
    built_at: float  # time.monotonic() when built: the strengths' age
    config: domain.MatchingConfig
    directory: domain.Directory


_cache: OrderedDict[tuple[str, str], _Cached] = OrderedDict()
_lock = threading.Lock()


# --- writers --------------------------------------------------------------------------------------------

def counselors_changed(org_id: str, counselor_id: str) -> None:
    """A counselor's facts were stored: every process reads them again before its next recommendation. Call
    after the write. The number is taken first and its record written next: a reader in between finds the
    record missing and builds the whole directory, never a stale one."""
    number = _bump(org_id, "counselors")
    DirectoryChange(id=DirectoryChange.key(org_id, number), counselor_id=counselor_id).save()


def sessions_changed(org_id: str) -> None:
    """A scored session was folded into a fit: the strengths are estimated again once the cached ones are
    older than the refresh interval. Call after the write."""
    _bump(org_id, "sessions")


def _bump(org_id: str, counter: str) -> int:
    """Add one to the organisation's counter; its new value."""
    for _ in range(2):  # two first bumps of an organisation at once: one inserts, the other updates
        try:
            return DirectoryVersion.objects(id=org_id).modify(upsert=True, new=True, **{f"inc__{counter}": 1})[counter]
        except (me.NotUniqueError, DuplicateKeyError):
            continue
    return DirectoryVersion.objects(id=org_id).modify(new=True, **{f"inc__{counter}": 1})[counter]


# --- reader ---------------------------------------------------------------------------------------------

def directory(org_id: str, config: domain.MatchingConfig, load: Loader,
              load_counselors: CounselorLoader) -> domain.Directory:
    """The organisation's directory: the cached one unless it is stale (see the module's docstring), brought
    up to date with the counselors changed since (`load_counselors`), or else `load(org_id, config)` (the
    scan); kept for the next time."""
    stored = DirectoryVersion.objects(id=org_id).only("counselors", "sessions").as_pymongo().first() or {}
    counselors, sessions = stored.get("counselors", 0), stored.get("sessions", 0)
    key = (DirectoryVersion._get_db().name, org_id)
    now = time.monotonic()
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
    reason = _stale(cached, counselors, sessions, config, now)
    if reason == "counselors":
        updated = _with_changes(cached, org_id, counselors, load_counselors)
        if updated is not None:
            COUNSELORS_APPLIED.inc()
            cached = _Cached(counselors, cached.sessions, cached.built_at, config, updated)
            reason = _stale(cached, counselors, sessions, config, now)
            if reason is None:
                _keep(key, cached)
    if reason is None:
        return cached.directory
    DIRECTORY_LOADS.labels(reason).inc()
    built = load(org_id, config)
    _keep(key, _Cached(counselors, sessions, now, config, built))
    return built


def _with_changes(cached: _Cached, org_id: str, counselors: int,
                  load_counselors: CounselorLoader) -> domain.Directory | None:
    """The cached directory with the counselors changed since it was built read again, or None when that
    cannot be told (too many changes, a record not written yet): then the directory is built again."""
    numbers = range(cached.counselors + 1, counselors + 1)
    if not 0 < len(numbers) <= MAX_CHANGES_APPLIED:
        return None
    # One look-up by `_id` each: a plain `_id` equality is what FerretDB 1.24 surely answers from its index.
    records = [DirectoryChange.objects(id=DirectoryChange.key(org_id, n)).only("counselor_id").as_pymongo().first()
               for n in numbers]
    if None in records:
        return None
    changed = sorted({r["counselor_id"] for r in records})
    return cached.directory.with_counselors(load_counselors(org_id, changed))


def _keep(key: tuple[str, str], entry: _Cached) -> None:
    with _lock:
        _cache[key] = entry
        _cache.move_to_end(key)
        while len(_cache) > MAX_DIRECTORIES:
            _cache.popitem(last=False)


def _stale(cached: _Cached | None, counselors: int, sessions: int, config: domain.MatchingConfig,
           now: float) -> str | None:
    """Why the cached directory must be built again, or None to use it."""
    if cached is None:
        return "first"
    if cached.config != config:
        return "config"
    if cached.counselors != counselors:
        return "counselors"
    if cached.sessions != sessions and now - cached.built_at >= referral_config.strength_refresh_s():
        return "sessions"
    return None


def clear() -> None:
    """Forget every cached directory (tests; nothing in the services needs it)."""
    with _lock:
        _cache.clear()
