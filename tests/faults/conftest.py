"""The fault suite: its own Kafka broker and FerretDB (so it may restart and stop them), and the platform's
processes started one by one. Every test prints what it counted — lost, duplicated, reordered — and asserts
each is 0.
"""
from __future__ import annotations

import os
import random
import sys

import pytest

from deploy.local.components import free_port, start_components, start_process
from services.common.config import Settings
from services.common.events import Topic, make_event
from services.common.kafka import ensure_topics


@pytest.fixture
def faulty(tmp_path_factory):
    """Components of each test's own: tests here restart the broker and stop the database, and the reference
    replay reads the whole topic, which should then hold this test's events only."""
    components = start_components(tmp_path_factory.mktemp("fault-components"))
    ensure_topics(Settings.load("tests", {"kafka_bootstrap": components.kafka_bootstrap}))
    yield components
    components.stop()


@pytest.fixture
def settings_on(faulty, unique):
    def make(service: str, **overrides) -> Settings:
        return Settings.load(service, {"kafka_bootstrap": faulty.kafka_bootstrap, "mongo_uri": faulty.mongo_uri,
                                       "db_prefix": f"f{unique}", **overrides})
    return make


@pytest.fixture
def start_worker(faulty, unique, tmp_path):
    """Start `python -m services.<service>.worker` as its own process (returns the Process, and a starter)."""
    started = []

    def start(service: str, name: str | None = None, **env_overrides: str):
        port = free_port()
        env = {**os.environ, "RAPPORT_KAFKA_BOOTSTRAP": faulty.kafka_bootstrap, "RAPPORT_MONGO_URI": faulty.mongo_uri,
               "RAPPORT_DB_PREFIX": f"f{unique}", "RAPPORT_WORKER_HTTP_PORT": str(port),
               "PYTHONUNBUFFERED": "1", **env_overrides}
        process = start_process(name or f"{service}-worker", [sys.executable, "-m", f"services.{service}.entrypoints.worker"],
                                tmp_path, env)
        process.http = f"http://127.0.0.1:{port}"
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def feedback_stream(org: str, clients: int, sessions: int, seed: int = 7) -> list:
    """A caseload's feedback in session order per client: mostly high ratings with dips, so alerts fire."""
    rng = random.Random(seed)
    events = []
    for session in range(1, sessions + 1):
        for c in range(clients):
            base = rng.choice((10, 10, 9, 9, 8))
            dip = rng.random() < 0.15
            answers = {item: max(0, base - (rng.randint(2, 5) if dip else rng.randint(0, 1)))
                       for item in ("goal-1", "task-1", "bond-1")}
            events.append(make_event(Topic.FEEDBACK_SUBMITTED, {
                "feedback_id": f"fb-{c}-{session}", "client_id": f"{org}-client-{c}",
                "counselor_id": f"{org}-co-{c % 20}", "session_number": session,
                "instrument_id": "rapport-short", "answers": answers},
                org_id=org, clinic_id="clinic-1", producer="fault-suite"))
    return events
