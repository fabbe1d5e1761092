"""Benchmark 2: from a feedback POST that drops the alliance to the alert in the counselor's inbox, at fixed
rates, with the time spent in each stage; Kafka's own EndToEndLatency tool on the same broker gives the floor.

Each timed feedback is the fourth session of a client of its own whose first three sessions (the baseline)
were steady, so every one of them raises alerts. The baseline goes straight onto `feedback.submitted` (the
e2e tests do the same): it is preparation, not measured, and intake's API is the slow part of a setup.

Stages, from timestamps all taken on this machine's clock:
  API      the request's scheduled send time -> `feedback.submitted`'s record timestamp (intake stored the
           feedback and sent the event; open loop, so time a request waited for a free sender counts)
  scoring  -> the first `alliance.dropped` record for that client (broker hop, scoring's consumer and handler)
  notify   -> the first alliance-dropped item's `created_at` in the counselor's inbox (broker hop, notify's
           consumer and handler; the item is readable once that handler's insert returns)
"""
from __future__ import annotations

import json
import logging
import math
import re
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import requests

from deploy.bench.harness import (Bench, Practice, components_running, create_staff, platform_running,
                                  seed_practice, sign_in, wait_until_consumed)
from deploy.bench.report import Figure, Result, markdown_table
from deploy.bench.stats import percentile
from deploy.local import runtime
from deploy.local.platform_processes import Platform
from deploy.local.topic_reader import read_topic
from services.common.config import Settings
from services.common.events import Topic, make_event, new_id
from services.common.kafka import EventProducer

log = logging.getLogger("bench")
TITLE = "Alert latency: feedback POST → counselor's inbox"
GOAL_P99_MS = 250.0
GOAL = f"p99 < {GOAL_P99_MS:.0f} ms at 50 events/s"
# Events per second, events. Bounded by the setup: every client needs its baseline scored first, and scoring
# in the running platform handles a few events a second on this machine.
RATES = ((1, 10), (10, 30), (50, 100))
COUNSELORS = 10
INSTRUMENT = "session-rating-4"
# Three steady sessions (total 39 of 40), then the relationship falls (30): far below the client's baseline ->
# one alert (a rupture; that it is also below the cutoff of 36 is a flag on the session, not a second alert).
BASELINE = ({"relationship": 10, "goals-topics": 9, "approach": 10, "overall": 10},
            {"relationship": 10, "goals-topics": 10, "approach": 9, "overall": 10},
            {"relationship": 10, "goals-topics": 10, "approach": 10, "overall": 9})
DROP = {"relationship": 5, "goals-topics": 9, "approach": 9, "overall": 7}
DROP_SESSION = len(BASELINE) + 1
SENDERS = 128  # enough threads that a slow API queues requests at the server, not in this process
POST_TIMEOUT_S = 30
ARRIVAL_TIMEOUT_S = 90
QUIET_TIMEOUT_S = 240
FLOOR_RECORDS = 2000


@dataclass
class Sent:
    client_id: str
    scheduled: float  # epoch seconds
    status: int | None = None
    answered: float | None = None


@dataclass(frozen=True)
class Trace:
    """One timed feedback's way through the platform, epoch seconds at each point."""

    scheduled: float
    answered: float
    on_broker: float
    dropped: float
    in_inbox: float


def clients_with_baselines(platform: Platform, practice: Practice, counselors: list[dict], count: int) -> list[dict]:
    """Register `count` clients through intake's API, each with a counselor, and publish each one's baseline
    sessions as soon as it exists, so that scoring works through them while the others are registered."""
    producer = EventProducer(Settings.load("bench", {"kafka_bootstrap": platform.kafka_bootstrap}))

    def register(i: int) -> dict:
        answer = requests.post(f"{platform.urls['intake']}/api/clients", headers=practice.admin, timeout=60, json={
            "clinic_id": practice.clinic_id, "first_name": "Client", "last_name": f"{i:04d}",
            "concerns": ["anxiety"], "counselor_id": counselors[i % len(counselors)]["id"]})
        answer.raise_for_status()
        client = answer.json()
        for number, answers in enumerate(BASELINE, start=1):
            producer.publish(make_event(Topic.FEEDBACK_SUBMITTED, {
                "feedback_id": new_id(), "client_id": client["id"], "counselor_id": client["counselor_id"],
                "session_number": number, "instrument_id": INSTRUMENT, "answers": answers},
                org_id=practice.org_id, clinic_id=practice.clinic_id, producer="bench"), key=client["id"])
        return client

    try:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(register, range(count)))
    finally:
        producer.close()


def send_open_loop(platform: Platform, practice: Practice, clients: list[dict], rate: int) -> list[Sent]:
    """POST each client's dropping session at its scheduled time, `rate` per second, whatever the answers do."""
    local = threading.local()
    start = time.time() + 0.5
    sent = [Sent(client["id"], start + i / rate) for i, client in enumerate(clients)]

    def post(item: Sent) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        time.sleep(max(0.0, item.scheduled - time.time()))
        try:
            answer = local.session.post(f"{platform.urls['intake']}/api/feedback", headers=practice.admin,
                                        timeout=POST_TIMEOUT_S, json={
                                            "client_id": item.client_id, "session_number": DROP_SESSION,
                                            "instrument_id": INSTRUMENT, "answers": DROP})
            item.status = answer.status_code
        except requests.RequestException:
            item.status = None
        item.answered = time.time()

    with ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(post, sent))
    return sent


def inbox_alerts(platform: Platform, counselor_headers: list[dict[str, str]]) -> dict[str, float]:
    """Client id -> created_at (epoch s) of the first alliance-dropped item for the dropping session, read by
    each counselor through notify's API."""
    first: dict[str, float] = {}
    for headers in counselor_headers:
        page = 1
        while True:
            answer = requests.get(f"{platform.urls['notify']}/api/inbox", headers=headers, timeout=30,
                                  params={"kind": "alliance_dropped", "page": page, "page_size": 100})
            answer.raise_for_status()
            items = answer.json()
            for item in items:
                if item["session_number"] == DROP_SESSION:
                    created = datetime.fromisoformat(item["created_at"]).timestamp()
                    first[item["client_id"]] = min(created, first.get(item["client_id"], created))
            if len(items) < 100:
                break
            page += 1
    return first


def wait_for_alerts(platform: Platform, counselor_headers: list[dict[str, str]], client_ids: set[str]) -> int:
    """Until every client's alert is in the inbox, for at most ARRIVAL_TIMEOUT_S (the missing ones count as
    never arrived); how many arrived."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    while True:
        arrived = len(client_ids & set(inbox_alerts(platform, counselor_headers)))
        if arrived == len(client_ids):
            return arrived
        if time.monotonic() > deadline:
            log.warning("%d of %d alerts missing in the inbox after %d s", len(client_ids) - arrived,
                        len(client_ids), ARRIVAL_TIMEOUT_S)
            return arrived
        time.sleep(1)


def first_record_times(bootstrap: str, topic: str) -> dict[str, float]:
    """Client id -> timestamp (epoch s) of the first record on `topic` about its dropping session."""
    first: dict[str, float] = {}
    for record in read_topic(bootstrap, topic, timeout_s=60):
        payload = json.loads(record.value)["payload"]
        if payload.get("session_number") == DROP_SESSION:
            at = record.timestamp / 1000
            first[payload["client_id"]] = min(at, first.get(payload["client_id"], at))
    return first


def kafka_floor(bootstrap: str, record_size: int) -> dict[str, float]:
    """Kafka's EndToEndLatency (kafka-tools): produce with acks=all, consume, one record at a time."""
    output = subprocess.run(
        ["java", "-Xmx256m", "-cp", f"{runtime.KAFKA_LIBS}/*", "org.apache.kafka.tools.EndToEndLatency",
         "--bootstrap-server", bootstrap, "--topic", "bench.end-to-end-latency", "--num-records",
         str(FLOOR_RECORDS), "--producer-acks", "all", "--record-size", str(record_size)],
        check=True, capture_output=True, text=True, timeout=180).stdout
    found = re.search(r"Percentiles: 50th = ([\d.]+), 99th = ([\d.]+), 99.9th = ([\d.]+)", output)
    average = re.search(r"Avg latency: ([\d.]+) ms", output)
    if not found or not average:
        raise RuntimeError(f"unexpected EndToEndLatency output: {output[-500:]}")
    return {"avg": float(average.group(1)), "p50": float(found.group(1)), "p99": float(found.group(2)),
            "p99.9": float(found.group(3))}


def ms(samples: list[float], fraction: float) -> str:
    if not samples:
        return "—"
    value = percentile(samples, fraction)
    return "never" if math.isinf(value) else f"{value * 1000:.0f}"


def run(bench: Bench) -> Result:
    result = Result(TITLE)
    rows, p99_at = [], {}
    with components_running(bench) as components, platform_running(bench, components) as platform:
        practice = seed_practice(platform)
        counselors = [create_staff(platform, practice, "counselor", f"counselor{i}@bench.rapport")
                      for i in range(COUNSELORS)]
        counselor_headers = [sign_in(platform, c["email"]) for c in counselors]
        clients = clients_with_baselines(platform, practice, counselors, sum(count for _, count in RATES))
        log.info("alerts: %d clients registered, baselines published; waiting for the workers", len(clients))

        runs, offset = [], 0
        for rate, count in RATES:
            behind = wait_until_consumed(platform, timeout_s=QUIET_TIMEOUT_S)
            group = clients[offset:offset + count]
            offset += count
            log.info("alerts: %d events at %d/s", count, rate)
            sent = send_open_loop(platform, practice, group, rate)
            arrived = wait_for_alerts(platform, counselor_headers, {s.client_id for s in sent if s.status == 201})
            runs.append((rate, sent, behind))
            if not arrived:
                log.warning("alerts: none arrived at %d/s; the higher rates are not run", rate)
                break

        inbox = inbox_alerts(platform, counselor_headers)
        on_broker = first_record_times(platform.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED)
        dropped = first_record_times(platform.kafka_bootstrap, Topic.ALLIANCE_DROPPED)
        event_size = len(read_topic(platform.kafka_bootstrap, Topic.FEEDBACK_SUBMITTED)[-1].value)
        floor = kafka_floor(platform.kafka_bootstrap, event_size)

    for rate, sent, behind in runs:
        accepted = [s for s in sent if s.status == 201]
        traces = [Trace(s.scheduled, s.answered, on_broker[s.client_id], dropped[s.client_id], inbox[s.client_id])
                  for s in accepted if s.client_id in inbox]
        missing = len(accepted) - len(traces)
        failed = Counter(str(s.status) if s.status else f"no answer in {POST_TIMEOUT_S} s"
                         for s in sent if s.status != 201)
        failures = ", ".join(f"{count}× {kind}" for kind, count in failed.most_common()) or "0"
        # An alert that never reached the inbox is slower than any that did.
        total = [t.in_inbox - t.scheduled for t in traces] + [math.inf] * missing
        stages = {"HTTP answer": [t.answered - t.scheduled for t in traces],
                  "API": [t.on_broker - t.scheduled for t in traces],
                  "scoring": [t.dropped - t.on_broker for t in traces],
                  "notify": [t.in_inbox - t.dropped for t in traces]}
        p99_at[rate] = ms(total, 0.99)
        rows.append([f"{rate}/s", str(len(sent)), failures, str(missing), str(behind), ms(total, 0.5),
                     f"**{ms(total, 0.99)}**",
                     *(f"{ms(v, 0.5)} / {ms(v, 0.99)}" for v in stages.values())])

    top = RATES[-1][0]
    hops = 2  # feedback.submitted and alliance.dropped: the alert crosses the broker twice
    measured = float(p99_at[top]) if p99_at.get(top, "").isdigit() else None
    result.figures.append(Figure(
        figure="Alert latency p99 at " + " / ".join(f"{rate}" for rate, _ in RATES) + " events/s: "
               + " / ".join(f"**{p99_at.get(rate, 'not run')}**" if rate == top else p99_at.get(rate, "not run")
                            for rate, _ in RATES) + " ms",
        limit=f"Kafka EndToEndLatency, same broker, acks=all: p99 {floor['p99']:.0f} ms a hop, "
              f"{hops * floor['p99']:.0f} ms for the {hops} hops",
        ratio=f"{measured / (hops * floor['p99']):.0f}×" if measured and floor["p99"] else "—",
        goal=GOAL, met=measured is not None and measured < GOAL_P99_MS))
    result.detail += [
        f"{COUNSELORS} counselors; one client of its own per timed event, registered through intake's API with "
        f"its counselor; sessions 1-{len(BASELINE)} (steady, total 39 of 40) published to `feedback.submitted` "
        f"and consumed by every worker before the clock starts; then session {DROP_SESSION} (total 30: one alert) "
        f"is POSTed to `/api/feedback` open loop ({SENDERS} sender threads) at each rate. Each rate starts once "
        f"the previous one's alerts are in the inbox and every consumer group has caught up (or after "
        f"{QUIET_TIMEOUT_S} s: the messages still behind are shown). The end point is the "
        "first alliance-dropped item's `created_at` for that client, read by the counselor (own bearer token) "
        "from notify's `/api/inbox`.", "",
        "Milliseconds, p50 / p99 (the stages do not add up exactly: each percentile is taken on its own):", "",
        *markdown_table(["rate", "events", "failed POSTs", f"no alert within {ARRIVAL_TIMEOUT_S} s",
                         "messages behind at start", "total p50", "total p99",
                         "HTTP answer",
                         "API → broker", "→ scoring → broker", "→ notify → inbox"], rows),
        "", f"Floor: `org.apache.kafka.tools.EndToEndLatency` ({FLOOR_RECORDS} records of {event_size} bytes, "
        f"the size of a `feedback.submitted` event, acks=all) on the same broker after the timed runs: "
        f"avg {floor['avg']:.1f} ms, p50 {floor['p50']:.0f} ms, p99 {floor['p99']:.0f} ms, "
        f"p99.9 {floor['p99.9']:.0f} ms (the tool reports whole milliseconds)."]
    return result
