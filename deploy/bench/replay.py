"""Benchmark 3: re-scoring `feedback.submitted` from the first event into a fresh consumer group and database,
next to what the same topic allows: Kafka's consumer performance tool and a raw kafka-python consumer that only
decodes (JSON and the event contract), all on one broker of the benchmark's own.

The topic is preloaded with a caseload's year of feedback (1,000 counselors, 20 clients each, one session a
week per client, in session order so each client's sessions stay in order on its partition). kafka-python
produces and decodes a few thousand events a second here, so the preload holds fewer than the issue's 1.5
million events (`--replay-events`) and the scoring workers, far slower, run for a fixed time each: their rate
comes from their own counters, and the time for the full 1.5 million is projected from it.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import logging
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass

import requests
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from deploy.bench.harness import Bench, components_running
from deploy.bench.report import Figure, Result, markdown_table
from deploy.local import runtime
from deploy.local.components import Components, Process, free_port, start_process
from services.common.events import InvalidEvent, Topic, decode_event, encode_event, make_event, new_id
from services.common.kafka import ConsumerLoop

log = logging.getLogger("bench")
TITLE = "Replay: re-scoring `feedback.submitted` into a fresh group and database"
GOAL_RATIO = 0.25
GOAL_FULL_S = 120
GOAL = f"≥ {GOAL_RATIO} × raw kafka-python; 1.5 M in < {GOAL_FULL_S} s"
FULL_EVENTS = 1_500_000
DEFAULT_EVENTS = 200_000
TOPIC = Topic.FEEDBACK_SUBMITTED.value
PARTITIONS = 4  # so that one and two workers each get whole, equal shares
COUNSELORS, CLIENTS_PER_COUNSELOR = 1000, 20
INSTRUMENT = "session-rating-4"
WORKER_COUNTS = (1, 2)
WARM_UP_S, MEASURE_S = 10, 45  # per worker count, from the first event handled
RAW_LIMIT_S = 300
# The workers' poll size (ConsumerLoop.max_records), so that the raw consumer differs from them only in the
# handler.
POLL_RECORDS = ConsumerLoop.max_records


def feedback_events(count: int, seed: int = 9):
    """`count` feedback events, valid per the contract: one validated template, then per session new ids and
    whole-number answers in the instrument's 0-10 range (the raw decode below checks every one)."""
    template = make_event(TOPIC, {"feedback_id": "template", "client_id": "template", "counselor_id": "template",
                                  "session_number": 1, "instrument_id": INSTRUMENT,
                                  "answers": {"relationship": 9, "goals-topics": 9, "approach": 9, "overall": 9}},
                          org_id="bench-network", clinic_id="bench-clinic", producer="bench")
    rng = random.Random(seed)
    clients = COUNSELORS * CLIENTS_PER_COUNSELOR
    for i in range(count):
        client = i % clients
        client_id, event_id = f"client-{client:05d}", new_id()
        # Mostly steady ratings with an occasional dip, so some sessions raise alerts as in real caseloads.
        dip = 3 if rng.random() < 0.08 else 0
        answers = {item: rng.choice((9, 10, 10)) - dip for item in ("relationship", "goals-topics", "approach",
                                                                      "overall")}
        payload = {**template.payload.to_wire(), "feedback_id": event_id, "client_id": client_id,
                   "counselor_id": f"co-{client // CLIENTS_PER_COUNSELOR:04d}", "session_number": i // clients + 1,
                   "answers": answers}
        yield client_id, dataclasses.replace(template, event_id=event_id, correlation_id=event_id, payload=payload)


def preload(bootstrap: str, count: int) -> tuple[float, int]:
    """Produce the events (batched, acks=all); seconds taken and bytes."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=1024 * 1024)
    started, size = time.monotonic(), 0
    try:
        for key, event in feedback_events(count):
            value = encode_event(event)
            size += len(value)
            producer.send(TOPIC, key=key.encode(), value=value)
        producer.flush(timeout=120)
    finally:
        producer.close()
    return time.monotonic() - started, size


def consumer_performance(bootstrap: str, count: int) -> dict[str, float]:
    """Kafka's ConsumerPerformance (kafka-tools) on the topic, in a group of its own."""
    output = subprocess.run(
        ["java", "-Xmx512m", "-cp", f"{runtime.KAFKA_LIBS}/*", "org.apache.kafka.tools.ConsumerPerformance",
         "--bootstrap-server", bootstrap, "--topic", TOPIC, "--num-records", str(count), "--group",
         f"bench-perf-{new_id()[:8]}", "--timeout", "30000"], check=True, capture_output=True, text=True,
        timeout=300).stdout
    header, values = list(csv.reader(io.StringIO(output.strip())))[-2:]
    stats = dict(zip((h.strip() for h in header), (v.strip() for v in values)))
    return {"events": float(stats["data.consumed.in.nMsg"]), "per_s": float(stats["nMsg.sec"]),
            "fetch_per_s": float(stats["fetch.nMsg.sec"]), "mb_per_s": float(stats["MB.sec"])}


def raw_decode(bootstrap: str, count: int) -> dict[str, float]:
    """A kafka-python consumer in a group of its own that decodes every event (JSON and contract) and does
    nothing else; stops after RAW_LIMIT_S if it has not read them all."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"bench-raw-{new_id()[:8]}",
                             auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=POLL_RECORDS)
    decoded = invalid = 0
    started = time.monotonic()
    try:
        consumer.subscribe([TOPIC])
        while decoded + invalid < count and time.monotonic() - started < RAW_LIMIT_S:
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    try:
                        decode_event(record.value)
                        decoded += 1
                    except InvalidEvent:
                        invalid += 1
    finally:
        consumer.close()
    elapsed = time.monotonic() - started
    return {"events": decoded + invalid, "invalid": invalid, "seconds": elapsed,
            "per_s": (decoded + invalid) / elapsed}


@dataclass(frozen=True)
class WorkerRun:
    workers: int
    events: int  # handled during the measured window
    seconds: float
    handler_s: float  # mean time in the handler per event, from the workers' histogram

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Handled:
    """What the workers' /metrics say they handled so far: events, and seconds spent in the handler."""

    events: float
    handler_s: float
    at: float

    @classmethod
    def scrape(cls, metrics_urls: list[str]) -> "Handled":
        events = handler_s = 0.0
        for url in metrics_urls:
            text = requests.get(url, timeout=10).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.labels.get("topic") != TOPIC:
                        continue
                    if sample.name == "rapport_events_consumed_total":
                        events += sample.value
                    elif sample.name == "rapport_handler_seconds_sum":
                        handler_s += sample.value
        return cls(events, handler_s, time.monotonic())


def start_workers(bench: Bench, components: Components, workers: int) -> tuple[list[Process], list[str]]:
    """`workers` scoring worker processes in a fresh group and database; with the URLs of their /metrics."""
    group = f"scoring-replay-{workers}w"
    env = {**os.environ, "RAPPORT_KAFKA_BOOTSTRAP": components.kafka_bootstrap,
           "RAPPORT_MONGO_URI": components.mongo_uri, "RAPPORT_DB_PREFIX": f"replay{workers}w",
           "RAPPORT_CONSUMER_GROUP": group, "RAPPORT_TOPIC_PARTITIONS": str(PARTITIONS), "PYTHONUNBUFFERED": "1"}
    processes, ports = [], []
    try:
        for index in range(workers):
            port = free_port()
            name = f"scoring-worker {index + 1} of {workers}"
            processes.append(start_process(name.replace(" ", "-"), [sys.executable, "-m", "services.scoring.entrypoints.worker"],
                                           bench.subfolder("workers"), {**env, "RAPPORT_WORKER_HTTP_PORT": str(port)}))
            bench.memory.watch(bench.phase, name, processes[-1].popen.pid)
            ports.append(port)
        runtime.wait_http([f"http://127.0.0.1:{port}/readyz" for port in ports], timeout_s=60)
    except BaseException:
        for process in processes:
            process.stop()
        raise
    return processes, [f"http://127.0.0.1:{port}/metrics" for port in ports]


def measure_workers(bench: Bench, components: Components, workers: int) -> WorkerRun:
    """Run `workers` scoring workers; events handled per second over MEASURE_S, counted from WARM_UP_S after
    the first event was handled (leaving out start-up and the group's first rebalances). The workers' own
    counters, not the group's committed offsets: a worker commits once per poll of up to 200 events, which
    at a few events a second is a step every minute or so."""
    processes, metrics_urls = start_workers(bench, components, workers)
    try:
        deadline = time.monotonic() + 60
        while Handled.scrape(metrics_urls).events == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{workers} scoring worker(s) handled nothing in 60 s")
            time.sleep(0.5)
        time.sleep(WARM_UP_S)
        start = Handled.scrape(metrics_urls)
        time.sleep(MEASURE_S)
        end = Handled.scrape(metrics_urls)
        events = int(end.events - start.events)
        per_event_s = (end.handler_s - start.handler_s) / events if events else 0.0
        return WorkerRun(workers, events, end.at - start.at, per_event_s)
    finally:
        for index, process in enumerate(processes):
            bench.memory.forget(bench.phase, f"scoring-worker {index + 1} of {workers}")
            process.stop()


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def run(bench: Bench, events: int = DEFAULT_EVENTS) -> Result:
    result = Result(TITLE)
    with components_running(bench, partitions=PARTITIONS) as components:
        preload_s, size = preload(components.kafka_bootstrap, events)
        log.info("replay: %d events preloaded in %.0f s", events, preload_s)
        perf = consumer_performance(components.kafka_bootstrap, events)
        raw = raw_decode(components.kafka_bootstrap, events)
        log.info("replay: ConsumerPerformance %.0f/s, raw kafka-python %.0f/s", perf["per_s"], raw["per_s"])
        runs = []
        for workers in WORKER_COUNTS:
            runs.append(measure_workers(bench, components, workers))
            log.info("replay: %d scoring worker(s) %.1f events/s", workers, runs[-1].per_s)

    one, best = runs[0], max(runs, key=lambda r: r.per_s)
    ratio = one.per_s / raw["per_s"]
    projected = FULL_EVENTS / best.per_s if best.per_s else float("inf")
    result.figures += [
        Figure(f"Scoring, 1 worker: **{one.per_s:.0f} events/s**",
               f"raw kafka-python consumer, decode only: {raw['per_s']:,.0f} events/s",
               f"{ratio:.3f}", f"≥ {GOAL_RATIO}", ratio >= GOAL_RATIO),
        Figure(f"Replay of 1.5 M events, **projected** from the best rate measured ({best.per_s:.0f} events/s, "
               f"{best.workers} worker{'s' if best.workers > 1 else ''}): "
               f"**{minutes(projected)}**",
               f"Kafka ConsumerPerformance reads them in {FULL_EVENTS / perf['per_s']:.0f} s "
               f"({perf['per_s']:,.0f} events/s); raw kafka-python in {minutes(FULL_EVENTS / raw['per_s'])}",
               f"{projected / (FULL_EVENTS / perf['per_s']):,.0f}×", f"< {GOAL_FULL_S} s", projected < GOAL_FULL_S)]
    rows = [["Kafka ConsumerPerformance (kafka-tools)", f"{perf['events']:,.0f}", f"{perf['per_s']:,.0f}",
             minutes(FULL_EVENTS / perf["per_s"]), "—"],
            [f"raw kafka-python consumer, decode only ({POLL_RECORDS} records a poll)", f"{raw['events']:,.0f}",
             f"{raw['per_s']:,.0f}", minutes(FULL_EVENTS / raw["per_s"]), f"{1000 / raw['per_s']:.2f} ms"],
            *([f"scoring, {r.workers} worker{'s' if r.workers > 1 else ''} (`python -m services.scoring.entrypoints.worker`)",
               f"{r.events:,} in {r.seconds:.0f} s", f"{r.per_s:,.1f}", f"{minutes(FULL_EVENTS / r.per_s)} (projected)"
               if r.per_s else "—", f"{r.handler_s * 1000:.0f} ms"] for r in runs)]
    result.detail += [
        f"Preloaded {events:,} `feedback.submitted` events ({size / events:.0f} bytes each, {size / 1e6:.0f} MB) "
        f"over {PARTITIONS} partitions with kafka-python (batched, acks=all) in {preload_s:.0f} s "
        f"({events / preload_s:,.0f} events/s)"
        + ("." if events >= FULL_EVENTS else
           f", not the issue's {FULL_EVENTS:,}: at these rates the preload alone would take "
           f"{minutes(FULL_EVENTS / (events / preload_s))} and the raw decode "
           f"{minutes(FULL_EVENTS / raw['per_s'])}, beyond the 15 minutes `make bench` may take.")
        + f" The raw decode found {raw['invalid']} invalid events"
        + ("." if raw["events"] >= events else f" and stopped after {RAW_LIMIT_S} s at {raw['events']:,}."),
        "",
        f"Scoring workers (`RAPPORT_CONSUMER_GROUP=scoring-replay-<n>w`, `RAPPORT_DB_PREFIX=replay<n>w`: a fresh "
        f"group and database per worker count) each run for {WARM_UP_S + MEASURE_S} s after their first event; "
        f"the rate is what their `/metrics` counters (`rapport_events_consumed_total`) grew by over the last "
        f"{MEASURE_S} s, the time per event the mean of `rapport_handler_seconds`. The workers "
        "do everything they do in production: score a poll's events together, update the dyads, publish "
        "`alliance.scored` (and `alliance.dropped`) with acks=all, run the outbox relay.",
        "",
        *markdown_table(["reader", "events", "events/s", "time for 1.5 M", "time per event"], rows),
        "",
        f"Scaling: 2 workers / 1 worker = {runs[-1].per_s / one.per_s:.2f}× (on 2 cores shared with the broker "
        "and FerretDB)." if len(runs) > 1 and one.per_s else ""]
    return result
