"""Benchmark 1: intake's client registration (`POST /api/clients`: the write, the audit record and
`intake.submitted` on the broker) under open-loop load, next to a bare Flask route on the same gunicorn settings.

vegeta sends at fixed rates whatever the answers' speed (open loop, so a slow server cannot slow the load
down and hide its queueing). Each target climbs a ladder of rates, a few seconds each, until a rate brings
errors. A rate is *sustained* with p99 under 50 ms and no error; the highest rate without errors (whatever the
latency) is reported too, as the throughput the server still copes with. The bare route runs first, because an
overloaded intake keeps working through its backlog (and the platform's workers through its events) afterwards.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import requests
from kafka import KafkaConsumer, TopicPartition

from deploy.bench.harness import (PRODUCTION_WEB_WORKERS, Bench, components_running, create_staff, platform_running,
                                  seed_practice, sign_in)
from deploy.bench.report import Figure, Result, markdown_table
from deploy.bench.stats import percentile
from deploy.local import runtime
from deploy.local.components import Process, free_port, start_process
from deploy.local.runtime import ROOT
from services.common.events import Topic

log = logging.getLogger("bench")
TITLE = "Intake API under open-loop load"
GOAL_RATIO = 0.5
GOAL = f"≥ {GOAL_RATIO} × the bare route's sustained rate"
VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.12.0"
VEGETA = runtime.STATE / "bin" / "vegeta"  # beside FerretDB's binary (.rapport/bin, or RAPPORT_STATE_DIR)
RATES = (10, 25, 50, 100, 200, 400, 800, 1600)
STEP_S = 5
WARM_UP = (5, 3)  # req/s, seconds: lazy imports, connection pools, first calls; not measured
P99_LIMIT_MS = 50.0
# A request not answered within this time counts as an error; it also bounds how long an attack outlives
# its duration.
ATTACK_TIMEOUT_S = 5


def ensure_vegeta() -> Path:
    """Build vegeta from the Go module proxy into .rapport/bin once, as `make setup` builds FerretDB."""
    if not VEGETA.exists():
        VEGETA.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "install", VEGETA_MODULE], env={**os.environ, "GOBIN": str(VEGETA.parent)},
                       check=True, timeout=600)
    return VEGETA


@dataclass(frozen=True)
class Step:
    rate: int
    requests: int
    errors: Counter  # status code (or vegeta's error text for no answer) -> count
    latencies_ms: list[float]

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)

    @property
    def sustained(self) -> bool:
        return not self.errors and self.p99_ms < P99_LIMIT_MS

    def row(self) -> list[str]:
        errors = ", ".join(f"{count}× {kind}" for kind, count in self.errors.most_common()) or "0"
        return [str(self.rate), str(self.requests), errors, *(f"{percentile(self.latencies_ms, q):.1f}"
                                                               for q in (0.5, 0.99, 0.999)),
                f"{max(self.latencies_ms):.1f}", "yes" if self.sustained else "**no**"]


def write_targets(path: Path, url: str, headers: dict[str, str], body: dict) -> Path:
    """vegeta's JSON target format: one request per line, the body base64-encoded."""
    target = {"method": "POST", "url": url,
              "header": {"Content-Type": ["application/json"], **{k: [v] for k, v in headers.items()}},
              "body": base64.b64encode(json.dumps(body).encode()).decode()}
    path.write_text(json.dumps(target) + "\n")
    return path


def attack(targets: Path, rate: int, duration_s: int, folder: Path) -> Step:
    results = folder / f"{targets.stem}-{rate}.bin"
    subprocess.run([str(VEGETA), "attack", "-format=json", f"-targets={targets}", f"-rate={rate}/1s",
                    f"-duration={duration_s}s", f"-timeout={ATTACK_TIMEOUT_S}s", "-max-body=0",
                    f"-output={results}"], check=True, timeout=duration_s + ATTACK_TIMEOUT_S + 30)
    encoded = subprocess.run([str(VEGETA), "encode", "--to=json", str(results)], check=True, capture_output=True,
                             text=True, timeout=60).stdout
    latencies, errors = [], Counter()
    for line in encoded.splitlines():
        result = json.loads(line)
        latencies.append(result["latency"] / 1e6)
        if not 200 <= result["code"] < 300:
            errors[no_answer(result["error"]) if not result["code"] else str(result["code"])] += 1
    return Step(rate, len(latencies), errors, latencies)


def no_answer(error: str) -> str:
    return f"no answer in {ATTACK_TIMEOUT_S} s" if "Timeout" in error else error[:80]


def climb(targets: Path, health_url: str, folder: Path) -> tuple[Step, list[Step]]:
    """The warm-up, then every rate of the ladder up to and including the first one with errors."""
    warm_up = attack(targets, WARM_UP[0], WARM_UP[1], folder)
    steps = []
    for rate in RATES:
        steps.append(attack(targets, rate, STEP_S, folder))
        log.info("%s at %d req/s: p99 %.1f ms, %d errors", targets.stem, rate, steps[-1].p99_ms,
                 sum(steps[-1].errors.values()))
        if steps[-1].errors:
            break
        # A rate served late leaves a queue behind: the next rate starts once the server answers again.
        runtime.wait_http([health_url], timeout_s=60)
    return warm_up, steps


def highest(steps: list[Step], sustained: bool) -> Step | None:
    """The highest rate sustained (p99 and no errors), or else the highest without errors."""
    return max((s for s in steps if (s.sustained if sustained else not s.errors)), key=lambda s: s.rate,
               default=None)


def registration_body(clinic_id: str) -> dict:
    # The same body every time: registration enforces no uniqueness (a client may be registered twice).
    return {"clinic_id": clinic_id, "first_name": "Sam", "last_name": "Lee", "concerns": ["anxiety", "sleep"],
            "preferences": {"language": "en", "modality": "either"}, "urgency": "routine"}


def serve_bare_route(bench: Bench) -> tuple[str, Process]:
    port = free_port()
    process = start_process("bare-route", [sys.executable, "-m", "gunicorn", "-c",
                                           str(ROOT / "deploy" / "gunicorn.conf.py"), "-b", f"127.0.0.1:{port}",
                                           "deploy.bench.bare_app:create_app()"],
                            bench.subfolder("bare"), {**os.environ, "RAPPORT_WEB_WORKERS": str(PRODUCTION_WEB_WORKERS)})
    url = f"http://127.0.0.1:{port}"
    try:
        runtime.wait_http([f"{url}/healthz"], timeout_s=60)
    except BaseException:
        process.stop()
        raise
    return url, process


def published_count(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def stored_and_published(intake_url: str, desk: dict[str, str], bootstrap: str) -> tuple[int, int]:
    """Clients stored and `intake.submitted` events on the broker, once intake has worked off its queue (a
    request the load generator gave up on is still served) and the outbox relay has published what the API
    could not: every stored client's event must be there."""
    runtime.wait_http([f"{intake_url}/healthz"], timeout_s=120)
    deadline = time.monotonic() + 30
    while True:
        answer = requests.get(f"{intake_url}/api/clients", headers=desk, params={"page_size": 1}, timeout=30)
        answer.raise_for_status()
        stored = json.loads(answer.headers["X-Pagination"])["total"]
        published = published_count(bootstrap, Topic.INTAKE_SUBMITTED)
        if published >= stored or time.monotonic() > deadline:
            return stored, published
        time.sleep(1)


def run(bench: Bench) -> Result:
    ensure_vegeta()
    result = Result(TITLE)
    folder = bench.subfolder("vegeta")
    with components_running(bench) as components, platform_running(bench, components) as platform:
        practice = seed_practice(platform)
        create_staff(platform, practice, "front_desk", "desk@bench.rapport")
        desk = sign_in(platform, "desk@bench.rapport")
        body = registration_body(practice.clinic_id)

        bare_url, bare = serve_bare_route(bench)
        bench.memory.watch(bench.phase, "bare-route (gunicorn)", bare.popen.pid)
        try:
            _, bare_steps = climb(write_targets(folder / "bare.json", f"{bare_url}/api/clients", {}, body),
                                  f"{bare_url}/healthz", folder)
        finally:
            bench.memory.forget(bench.phase, "bare-route (gunicorn)")
            bare.stop()

        intake_url = f"{platform.urls['intake']}/api/clients"
        intake_warm_up, intake_steps = climb(write_targets(folder / "intake.json", intake_url, desk, body),
                                             f"{platform.urls['intake']}/healthz", folder)
        accepted = sum(s.requests - sum(s.errors.values()) for s in (intake_warm_up, *intake_steps))
        stored, published = stored_and_published(platform.urls["intake"], desk, platform.kafka_bootstrap)

    intake_best, bare_best = highest(intake_steps, sustained=True), highest(bare_steps, sustained=True)
    intake_rate, bare_rate = (s.rate if s else 0 for s in (intake_best, bare_best))
    coping = highest(intake_steps, sustained=False)
    # A bare route that sustained the top rate has a higher limit than measured: the ratio is an upper bound.
    bare_topped = bare_steps[-1].sustained and bare_steps[-1].rate == RATES[-1]
    ratio = intake_rate / bare_rate if bare_rate else None
    result.figures.append(Figure(
        figure=f"Intake `POST /api/clients` sustained (p99 < {P99_LIMIT_MS:.0f} ms, no errors): "
               f"**{intake_rate} req/s**" + (f" (p99 {intake_best.p99_ms:.1f} ms)" if intake_best else "")
               + (f"; without errors up to {coping.rate} req/s at p99 {coping.p99_ms:.0f} ms" if coping else ""),
        limit=f"bare Flask route, same gunicorn: {'≥ ' if bare_topped else ''}{bare_rate} req/s"
              + (f" (p99 {bare_best.p99_ms:.1f} ms)" if bare_best else ""),
        ratio="—" if ratio is None else f"{'≤ ' if bare_topped else ''}{ratio:.2f}",
        goal=f"≥ {GOAL_RATIO}", met=ratio is not None and ratio >= GOAL_RATIO))
    header = ["rate req/s", "requests", "errors", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "sustained"]
    result.detail += [
        f"Open loop with vegeta ({VEGETA_MODULE}), {STEP_S} s per rate after a {WARM_UP[1]} s warm-up at "
        f"{WARM_UP[0]} req/s; a rate is *sustained* when p99 < {P99_LIMIT_MS:.0f} ms and no request failed "
        f"(an answer other than 2xx, or none within {ATTACK_TIMEOUT_S} s). The ladder stops at the first rate "
        "with errors; each rate starts once the server answers again. Both servers: "
        f"`gunicorn -c deploy/gunicorn.conf.py`, {PRODUCTION_WEB_WORKERS} processes × 4 threads (gthread), as in "
        "production.",
        "", "**Bare Flask route** (`deploy/bench/bare_app.py`: parse the JSON body, answer 201):", "",
        *markdown_table(header, [s.row() for s in bare_steps]),
        "", "**Intake `POST /api/clients`** as a front-desk user (bearer token from `POST /api/auth/token`), with "
        "the whole platform running (referral and notify consume every `intake.submitted`):", "",
        *markdown_table(header, [s.row() for s in intake_steps]),
        "", f"Registrations answered 201 (warm-up included): {accepted}; clients stored once intake had worked "
        f"off its queue: {stored} (a request the load generator gave up on is still served); "
        f"`intake.submitted` events on the broker: {published}."]
    return result
