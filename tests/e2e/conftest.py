"""The whole platform as separate processes: four gunicorn APIs and four workers, on the real components."""
from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass

import pytest

from tests.support.components import ROOT, Process, free_port, runtime, start_process

SERVICES = ("intake", "scoring", "referral", "notify")


@dataclass
class Platform:
    urls: dict[str, str]
    processes: dict[str, Process]
    kafka_bootstrap: str


@pytest.fixture(scope="session")
def platform(components, tmp_path_factory) -> Platform:
    folder = tmp_path_factory.mktemp("platform")
    env = {**os.environ,
           "RAPPORT_KAFKA_BOOTSTRAP": components.kafka_bootstrap, "RAPPORT_MONGO_URI": components.mongo_uri,
           "RAPPORT_DB_PREFIX": f"e2e{uuid.uuid4().hex[:8]}", "RAPPORT_OUTBOX_GRACE_S": "1",
           "RAPPORT_WEB_WORKERS": "1", "PYTHONUNBUFFERED": "1"}
    ports = {name: free_port() for name in SERVICES}
    processes: dict[str, Process] = {}
    try:
        for name in SERVICES:
            processes[f"{name}-api"] = start_process(f"{name}-api", [
                sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                "-b", f"127.0.0.1:{ports[name]}", f"services.{name}.app:create_app()"], folder, env)
            processes[f"{name}-worker"] = start_process(
                f"{name}-worker", [sys.executable, "-m", f"services.{name}.worker"], folder, env)
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        runtime.wait_http([f"{url}/readyz" for url in urls.values()], timeout_s=90)
        yield Platform(urls, processes, components.kafka_bootstrap)
    finally:
        for process in processes.values():
            process.stop()
    # A worker that was asked to stop finishes its message, commits, closes and exits 0.
    exit_codes = {name: p.popen.returncode for name, p in processes.items() if name.endswith("worker")}
    assert exit_codes == {name: 0 for name in exit_codes}, exit_codes
