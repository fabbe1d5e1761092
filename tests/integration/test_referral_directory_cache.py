"""Referral's cached directory with the real database: recommendations with nothing changed build the
directory once; a counselor's change is seen by the next recommendation; a scored session only once the
cached strengths are older than the refresh interval (services/referral/adapters/directory_cache.py)."""
from __future__ import annotations

import pytest

from services.common import mongo
from services.common.events import InvalidEvent, Topic
from services.referral import queries
from services.referral.adapters import config as referral_config
from services.referral.adapters import directory_cache
from services.referral.adapters.models import DirectoryVersion, Referral
from services.referral.handlers import referral_id_for
from tests.integration.test_referral_service import counselor, event, handle_all, intake, scored


@pytest.fixture
def db(settings_for):
    """Referral's database of this test (its own: the cache keys directories by database and organisation)."""
    mongo.connect(settings_for("referral"))


def published(topic, key, value):
    """The broker's part, not what is tested here: what is published is read from the stored referral."""


@pytest.fixture
def loads(monkeypatch):
    """The organisations whose directory was built from the database, in order (a spy on the scan)."""
    seen = []
    real = queries.load_directory

    def spy(org_id, config):
        seen.append(org_id)
        return real(org_id, config)

    monkeypatch.setattr(queries, "load_directory", spy)
    return seen


def _recommend(org, client_id, **payload):
    """An intake of a new client (a recommendation) and the candidates' ids, best first."""
    submitted = intake(org, client_id, preferences={}, **payload)
    handle_all([submitted], published)
    return [c.counselor_id for c in Referral.objects.get(id=referral_id_for(submitted.event_id)).candidates]


def _load_count(reason):
    return directory_cache.DIRECTORY_LOADS.labels(reason)._value.get()


def test_nothing_changed_builds_the_directory_once(db, loads, unique):
    org = f"o{unique}"
    handle_all([counselor(org, "co-a", caseload=0), counselor(org, "co-b")], None)
    first = _load_count("first")

    assert _recommend(org, "cl-1") == ["co-a", "co-b"]
    assert _recommend(org, "cl-2") == ["co-a", "co-b"]
    assert _recommend(org, "cl-3") == ["co-a", "co-b"]

    assert loads == [org]
    assert _load_count("first") == first + 1
    assert DirectoryVersion.objects.get(id=org).counselors == 2


def test_a_counselor_who_stops_accepting_is_never_recommended_again(db, loads, unique):
    org = f"o{unique}"
    handle_all([counselor(org, "co-a", caseload=0), counselor(org, "co-b")], None)
    assert _recommend(org, "cl-1") == ["co-a", "co-b"]

    handle_all([counselor(org, "co-a", caseload=0, accepting_new_clients=False)], None)
    assert _recommend(org, "cl-2") == ["co-b"]  # at once, whatever the refresh interval
    handle_all([counselor(org, "co-b", caseload=10)], None)  # full
    assert _recommend(org, "cl-3") == []
    # Built once: each change was applied by reading the changed counselor by `_id`, not the whole directory.
    assert loads == [org]


def test_a_change_whose_record_is_not_written_yet_builds_the_directory_again(db, loads, unique):
    org = f"o{unique}"
    handle_all([counselor(org, "co-a", caseload=0), counselor(org, "co-b")], None)
    assert _recommend(org, "cl-1") == ["co-a", "co-b"]
    # A writer took a number and has not recorded which counselor it stands for: the reader cannot tell what
    # changed, so it reads everything.
    DirectoryVersion.objects(id=org).update_one(inc__counselors=1)
    assert _recommend(org, "cl-2") == ["co-a", "co-b"]
    assert loads == [org, org]


def test_a_scored_session_rebuilds_only_once_the_strengths_are_older_than_the_interval(
        db, loads, monkeypatch, unique):
    org = f"o{unique}"
    monkeypatch.setattr(referral_config, "strength_refresh_s", lambda: 3600.0)
    handle_all([counselor(org, "co-a"), counselor(org, "co-b")], None)
    past = {"co-a": [f"past-a{i}" for i in range(6)], "co-b": [f"past-b{i}" for i in range(6)]}
    # Twelve depression clients, each recommended for (one build), then scored: co-b's six at 29/30, co-a's
    # six at 15/30 (as in test_referral_service's test_measured_fit_shapes_the_ranking_and_its_reasons).
    for client_id in past["co-a"] + past["co-b"]:
        _recommend(org, client_id, concerns=["depression"])
    assert loads == [org]
    handle_all([scored(org, c, "co-b", 1, 29) for c in past["co-b"]] +
               [scored(org, c, "co-a", 1, 15) for c in past["co-a"]], None)
    assert DirectoryVersion.objects.get(id=org).sessions == 12

    # Within the interval: the cached strengths (none yet), no scan; co-a wins the tie by id.
    assert _recommend(org, "new-1", concerns=["depression"]) == ["co-a", "co-b"]
    assert loads == [org]

    # After it: built again, and co-b's strength with depression clients weighs in.
    monkeypatch.setattr(referral_config, "strength_refresh_s", lambda: 0.0)
    sessions = _load_count("sessions")
    assert _recommend(org, "new-2", concerns=["depression"]) == ["co-b", "co-a"]
    assert loads == [org, org]
    assert _load_count("sessions") == sessions + 1
    # Nothing new since: the rebuilt directory serves, even with a zero interval.
    assert _recommend(org, "new-3", concerns=["depression"]) == ["co-b", "co-a"]
    assert loads == [org, org]


def test_each_organisation_has_its_own_directory(db, loads, unique):
    org, other = f"o{unique}", f"p{unique}"
    handle_all([counselor(org, "co-a"), counselor(other, f"co-{unique}")], None)
    assert _recommend(org, "cl-1") == ["co-a"]
    assert _recommend(other, f"cl-{unique}") == [f"co-{unique}"]
    assert loads == [org, other]


def test_another_database_has_its_own_directory_for_the_same_organisation(db, loads, settings_for, unique):
    org = f"o{unique}"
    handle_all([counselor(org, "co-a")], None)
    assert _recommend(org, "cl-1") == ["co-a"]
    mongo.connect(settings_for("referral", db_prefix=f"u{unique}"))  # e.g. the next test's database
    handle_all([counselor(org, "co-b")], None)
    assert _recommend(org, "cl-1") == ["co-b"]
    assert loads == [org, org]


def test_the_refresh_interval_comes_from_the_environment():
    assert referral_config.load_strength_refresh_s({}) == 300.0
    assert referral_config.load_strength_refresh_s({"RAPPORT_REFERRAL_STRENGTH_REFRESH_S": "0"}) == 0.0
    with pytest.raises(ValueError, match="RAPPORT_REFERRAL_STRENGTH_REFRESH_S"):
        referral_config.load_strength_refresh_s({"RAPPORT_REFERRAL_STRENGTH_REFRESH_S": "-1"})


def test_events_keep_their_meaning(db, unique):
    # The version document is infrastructure: a counselor.updated of another organisation is still refused
    # before anything is bumped.
    org = f"o{unique}"
    handle_all([counselor(org, "co-x")], None)
    intruder = event(Topic.COUNSELOR_UPDATED, {"counselor_id": "co-x", "clinic_ids": ["clinic-a"]}, f"z{unique}")
    with pytest.raises(InvalidEvent):
        handle_all([intruder], None)
    assert DirectoryVersion.objects(id=f"z{unique}").first() is None
    assert DirectoryVersion.objects.get(id=org).counselors == 1
