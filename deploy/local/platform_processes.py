"""The whole platform as separate processes — four gunicorn APIs, four workers and the one-origin gateway —
on given components.

Used by the end-to-end tests, the fault suite and the benchmarks, so that all of them run the services the
way `make up` does: a browser uses `entry_url` (deploy/local/gateway.py routes /, /scoring/, /referral/,
/notify/ as deploy/proxy does), and every service's RAPPORT_<SERVICE>_URL, the base of the links and
redirects it makes, is that origin plus its prefix. `urls` stay each API's own address, for API calls.
"""
from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local import runtime
from deploy.local.components import Components, Process, free_port, start_process

SERVICES = ("intake", "scoring", "referral", "notify")
# Where each service is served on the one origin (deploy/proxy/nginx.conf, deploy/local/gateway.py).
PREFIXES = {"intake": "", "scoring": "/scoring", "referral": "/referral", "notify": "/notify"}


@dataclass
class Platform:
    urls: dict[str, str]
    worker_urls: dict[str, str]
    processes: dict[str, Process]
    kafka_bootstrap: str
    entry_url: str  # the one origin a browser uses (deploy/local/gateway.py)
    envs: dict[str, dict[str, str]] = field(repr=False, default_factory=dict)
    folder: Path | None = None

    def stop(self) -> dict[str, int | None]:
        """Stop every process (SIGTERM, then KILL after a grace period); the workers' exit codes."""
        for process in self.processes.values():
            process.stop()
        return {name: p.popen.returncode for name, p in self.processes.items() if name.endswith("worker")}

    def restart(self, name: str) -> None:
        """Start process `name` ("scoring-worker", "intake-api", ...) again with its original command."""
        old = self.processes[name]
        self.processes[name] = start_process(name, old.popen.args, self.folder, self.envs[name])

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Process:
        self.envs[name] = env
        self.processes[name] = start_process(name, command, self.folder, env)
        return self.processes[name]


def start_platform(components: Components, folder: Path, extra_env: dict[str, str] | None = None,
                   web_workers: int = 1) -> Platform:
    ports = {name: free_port() for name in SERVICES}
    worker_ports = {name: free_port() for name in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    entry_url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ,
           "RAPPORT_KAFKA_BOOTSTRAP": components.kafka_bootstrap, "RAPPORT_MONGO_URI": components.mongo_uri,
           "RAPPORT_DB_PREFIX": f"p{uuid.uuid4().hex[:8]}", "RAPPORT_OUTBOX_GRACE_S": "1",
           "RAPPORT_WEB_WORKERS": str(web_workers), "PYTHONUNBUFFERED": "1",
           **{f"RAPPORT_{name.upper()}_URL": entry_url + prefix for name, prefix in PREFIXES.items()},
           **(extra_env or {})}
    platform = Platform(urls, {n: f"http://127.0.0.1:{p}" for n, p in worker_ports.items()}, {},
                        components.kafka_bootstrap, entry_url, folder=folder)
    try:
        for name in SERVICES:
            platform.start(f"{name}-api", [
                sys.executable, "-m", "gunicorn", "-c", str(runtime.ROOT / "deploy" / "gunicorn.conf.py"),
                "-b", f"127.0.0.1:{ports[name]}", f"services.{name}.entrypoints.app:create_app()"], env)
            # A consumer group of this platform's own: platforms sharing a broker (the e2e and the security
            # suites in one run) would otherwise split each topic's partitions between their workers.
            platform.start(f"{name}-worker", [sys.executable, "-m", f"services.{name}.entrypoints.worker"],
                           {**env, "RAPPORT_WORKER_HTTP_PORT": str(worker_ports[name]),
                            "RAPPORT_CONSUMER_GROUP": f"{name}-{env['RAPPORT_DB_PREFIX']}"})
        platform.start("gateway", [
            sys.executable, str(runtime.ROOT / "deploy" / "local" / "gateway.py"),
            "--port", entry_url.rsplit(":", 1)[1], *(f"--{name}={url}" for name, url in urls.items())], env)
        runtime.wait_http([f"{url}/readyz" for url in (*urls.values(), *platform.worker_urls.values())]
                          + [f"{entry_url}/_proxy/healthz"], timeout_s=120)
    except BaseException:
        platform.stop()
        raise
    return platform
