"""What the benchmarks share: their own broker, database and platform, and a seeded practice to load.

Every benchmark runs on components and processes of its own (deploy/local), started in a temporary folder on
free 127.0.0.1 ports and stopped when it ends, whether it succeeded or not, so benchmarks never disturb one
another or a platform started by `make up`.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import requests
from kafka import KafkaAdminClient, KafkaConsumer

from deploy.bench.memory import PeakMemory
from deploy.local.components import Components, start_components
from deploy.local.platform_processes import Platform, start_platform
from deploy.local.runtime import ROOT
from services.common.config import Settings
from services.common.kafka import ensure_topics

log = logging.getLogger("bench")
# deploy/gunicorn.conf.py's defaults (2 processes x 4 threads, gthread): what the container image and the
# Kubernetes manifests run. start_platform's own default (1 process) is the tests' lighter setting.
PRODUCTION_WEB_WORKERS = 2
# The per-caller limit (429 beyond it) is there to stop a runaway script; a load test is one caller on purpose.
UNTHROTTLED = {"RAPPORT_API_REQUESTS_PER_MINUTE": str(10**9)}
PASSWORD = "rapport-bench-2026"
REQUEST_TIMEOUT_S = 10


@dataclass
class Bench:
    """What the runner hands every benchmark: a folder of its own and the memory sampler."""

    folder: Path
    memory: PeakMemory
    phase: str

    def subfolder(self, name: str) -> Path:
        path = self.folder / name
        path.mkdir(parents=True, exist_ok=True)
        return path


@contextmanager
def components_running(bench: Bench, partitions: int = 3) -> Iterator[Components]:
    """A Kafka broker and FerretDB of the benchmark's own, with every platform topic created."""
    components = start_components(bench.subfolder("components"))
    try:
        ensure_topics(Settings.load("bench", {"kafka_bootstrap": components.kafka_bootstrap,
                                              "topic_partitions": partitions}))
        yield components
    finally:
        components.stop()


@contextmanager
def platform_running(bench: Bench, components: Components) -> Iterator[Platform]:
    """The four APIs (gunicorn, production settings) and four workers, their memory watched."""
    platform = start_platform(components, bench.subfolder("platform"), extra_env=UNTHROTTLED,
                              web_workers=PRODUCTION_WEB_WORKERS)
    try:
        for name, process in platform.processes.items():
            bench.memory.watch(bench.phase, name, process.popen.pid)
        yield platform
    finally:
        for name in platform.processes:
            bench.memory.forget(bench.phase, name)
        platform.stop()


@dataclass(frozen=True)
class Practice:
    """A seeded organisation with one clinic, and its admin's Authorization header."""

    org_id: str
    clinic_id: str
    admin: dict[str, str]


def seed_practice(platform: Platform) -> Practice:
    """The organisation as an operator creates it (intake's seed command), then the admin signs in."""
    org_id, clinic_id, email = "bench-org", "bench-clinic", "admin@bench.rapport"
    subprocess.run([sys.executable, "-m", "services.intake.entrypoints.seed", "--org", org_id, "--org-name", "Bench practice",
                    "--clinic", f"{clinic_id}=Bench clinic", "--admin-email", email,
                    "--admin-password", PASSWORD], env=platform.envs["intake-api"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, timeout=60)
    return Practice(org_id, clinic_id, sign_in(platform, email))


def sign_in(platform: Platform, email: str) -> dict[str, str]:
    answer = requests.post(f"{platform.urls['intake']}/api/auth/token", json={"email": email, "password": PASSWORD},
                           timeout=REQUEST_TIMEOUT_S)
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def create_staff(platform: Platform, practice: Practice, role: str, email: str, **extra) -> dict:
    answer = requests.post(f"{platform.urls['intake']}/api/staff", headers=practice.admin, timeout=REQUEST_TIMEOUT_S,
                           json={"email": email, "display_name": email.split("@")[0], "password": PASSWORD,
                                 "role": role, "clinic_ids": [practice.clinic_id], **extra})
    answer.raise_for_status()
    return answer.json()


def wait_until_consumed(platform: Platform, timeout_s: float) -> int:
    """Wait until every consumer group has committed every partition up to its end (the platform is quiet),
    for at most `timeout_s`; the messages still behind then (0 when quiet)."""
    admin = KafkaAdminClient(bootstrap_servers=platform.kafka_bootstrap, client_id="bench-lag")
    consumer = KafkaConsumer(bootstrap_servers=platform.kafka_bootstrap, client_id="bench-lag",
                             enable_auto_commit=False)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            behind = messages_behind(admin, consumer)
            if behind == 0 or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    finally:
        consumer.close()
        admin.close()
    if behind:
        log.warning("consumers still %d messages behind after %.0f s", behind, timeout_s)
    return behind


def messages_behind(admin: KafkaAdminClient, consumer: KafkaConsumer) -> int:
    """Messages not yet committed by the group that consumes them, over every group and partition."""
    # A metadata request for every topic first: kafka-python 3.0.12's end_offsets raises KeyError for a
    # partition whose leader it has not looked up yet (services.common.ops.consumer_lag can hit that too).
    consumer.topics()
    behind = 0
    for group in (g["group_id"] for g in admin.list_groups()):
        committed = admin.list_group_offsets({group: None}).get(group, {})
        ends = consumer.end_offsets(list(committed))
        behind += sum(max(ends[tp] - max(meta.offset, 0), 0) for tp, meta in committed.items())
    return behind
