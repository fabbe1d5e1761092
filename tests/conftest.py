"""Fixtures shared by the integration and end-to-end tests: one real broker and database per test session."""
from __future__ import annotations

import uuid

import pytest

from deploy.local.components import Components, start_components
from services.common.config import Settings
from services.common.kafka import ensure_topics


@pytest.fixture(scope="session")
def components(tmp_path_factory) -> Components:
    started = start_components(tmp_path_factory.mktemp("components"))
    ensure_topics(Settings.load("tests", {"kafka_bootstrap": started.kafka_bootstrap}))
    yield started
    started.stop()


@pytest.fixture
def unique() -> str:
    """A token unique to one test, for its org id, keys, group names and database prefix."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def settings_for(components, unique):
    """Settings for a service pointed at the test components, with a database of this test's own."""
    def make(service: str, **overrides) -> Settings:
        return Settings.load(service, {"kafka_bootstrap": components.kafka_bootstrap,
                                       "mongo_uri": components.mongo_uri, "db_prefix": f"t{unique}",
                                       **overrides})
    return make
