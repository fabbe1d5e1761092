"""Benchmark: the whole recommendation, from an `intake.submitted` handed to referral's handler to the
`referral.recommended` it publishes, for an organisation of 10,000 and then of 40,000 counselors.

The organisation is seeded straight into a FerretDB of the benchmark's own (CounselorView and CounselorFit
documents, insert_many in batches) with the same seeded random directory as matching.py (about 12 client
records per counselor). Each event is a new client; the handler runs in this process with everything it does
in production (intake and client views written, the directory from the cache or built by a scan, the ranking,
the referral stored with its event, the event "published" to a function that notes the time; no broker: the
hop to Kafka is what the alert-latency benchmark measures). Figures per size:

- first: the first recommendation, which builds the directory (the scan and the strength estimate) and keeps it;
- warm: the next ones, nothing changed in between (one `_id` look-up of the directory's version, then ranking);
- after counselor.updated: the first recommendation after a counselor's change, which reads that counselor by
  `_id` and replaces its row in the kept directory (strengths kept; no scan).

`python deploy/bench/recommendation.py [--sizes 10000,40000] [--events 20]` prints the table.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import mongoengine as me  # noqa: E402

from deploy.bench import matching  # noqa: E402
from deploy.bench.report import Figure, Result, markdown_table  # noqa: E402
from deploy.bench.stats import percentile  # noqa: E402
from deploy.local import runtime  # noqa: E402
from deploy.local.components import free_port, start_process  # noqa: E402
from services.common import mongo  # noqa: E402
from services.common.config import Settings  # noqa: E402
from services.common.events import CONCERNS, Topic, decode_event, encode_event, make_event  # noqa: E402
from services.referral import handlers, queries  # noqa: E402
from services.referral.adapters import directory_cache  # noqa: E402
from services.referral.adapters.models import CounselorFit, CounselorView  # noqa: E402

log = logging.getLogger("bench")
TITLE = "Recommendation: `intake.submitted` → `referral.recommended`, 10,000 and 40,000 counselors"
GOAL = "reported"
SIZES = (10_000, 40_000)
WARM_EVENTS = 20
BATCH = 500
# matching.py's stand-in concern codes, as the real codes (events are checked against them).
CODES = dict(zip(matching.CONCERNS, CONCERNS))
CLINIC = matching.CLINICS[0]


@contextmanager
def ferretdb(folder: Path) -> Iterator[str]:
    """A FerretDB of the benchmark's own (no broker: nothing here is sent to Kafka); its URI."""
    port = free_port()
    process = start_process("ferretdb", runtime.ferretdb_command(folder / "ferretdb", port), folder)
    try:
        runtime.wait_for_line(process.log, "FerretDB listening", 30, process.popen)
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        process.stop()


def seed(org_id: str, size: int) -> tuple[float, int]:
    """The organisation's counselors and fits, inserted in batches; (seconds, client records)."""
    started = time.monotonic()
    counselors, alliances = matching.directory_data(size)
    now = datetime.now(timezone.utc)
    views, fits, records = [], [], 0
    for c in counselors:
        cid = f"{org_id}-{c.counselor_id}"
        views.append({"_id": cid, "org_id": org_id, "clinic_ids": sorted(c.clinic_ids),
                      "specialties": sorted(CODES[s] for s in c.specialties), "languages": sorted(c.languages),
                      "modalities": sorted(c.modalities), "weekly_capacity": c.weekly_capacity,
                      "caseload": c.caseload, "accepting_new_clients": c.accepting_new_clients,
                      "supervisor_id": None, "gender": c.gender, "active": True, "as_of": now})
        clients = alliances.get(c.counselor_id)
        if clients:
            records += len(clients)
            fits.append({"_id": CounselorFit.key(org_id, cid), "org_id": org_id, "counselor_id": cid, "version": 0,
                         "clients": [{"client_id": r.client_id, "concerns": [CODES[k] for k in r.concerns],
                                      "total": r.total, "sessions": r.sessions, "score_ids": [],
                                      "sum_squares": r.sum_squares} for r in clients],
                         "concerns": {}})  # the running sums: not read by matching, left out
    for model, documents in ((CounselorView, views), (CounselorFit, fits)):
        collection = model._get_collection()
        for start in range(0, len(documents), BATCH):
            collection.insert_many(documents[start:start + BATCH], ordered=False)
    return time.monotonic() - started, records


def intake(org_id: str, n: int):
    """A new client's intake as the consumer loop hands it over (decoded from the wire)."""
    client_id = f"{org_id}-client-{n}"
    event = make_event(Topic.INTAKE_SUBMITTED, {
        "intake_id": f"in-{client_id}", "client_id": client_id, "concerns": list(CONCERNS[:3]),
        "preferences": {"language": "en", "modality": "either", "counselor_gender": "female"}},
        org_id=org_id, clinic_id=CLINIC, producer="bench")
    return decode_event(encode_event(event))


class Recorder:
    """The handler's publish function: notes when `referral.recommended` was handed over."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.candidates = 0

    def __call__(self, topic: str, key: str, value: bytes) -> None:
        if topic == Topic.REFERRAL_RECOMMENDED.value:
            self.at = time.perf_counter()
            self.candidates = len(decode_event(value).payload.candidates)


def recommend_ms(org_id: str, n: int) -> tuple[float, int]:
    """Milliseconds from handing the intake to the handler to the recommendation published; candidates."""
    event, publish = intake(org_id, n), Recorder()
    started = time.perf_counter()
    handlers.handle_intake_submitted(event, publish)
    if publish.at is None:
        raise RuntimeError("no referral.recommended published")
    return (publish.at - started) * 1000, publish.candidates


def counselor_changed(org_id: str) -> None:
    """One counselor stops accepting new clients (`counselor.updated`, through referral's handler)."""
    cid = f"{org_id}-co-000002"
    stored = CounselorView.objects.get(id=cid)
    event = make_event(Topic.COUNSELOR_UPDATED, {
        "counselor_id": cid, "clinic_ids": stored.clinic_ids, "specialties": stored.specialties,
        "languages": stored.languages, "modalities": stored.modalities, "weekly_capacity": stored.weekly_capacity,
        "caseload": stored.caseload, "accepting_new_clients": False, "gender": stored.gender},
        org_id=org_id, clinic_id=CLINIC, producer="bench")
    handlers.handle_counselor_updated(decode_event(encode_event(event)), lambda *message: None)


class LoadTimer:
    """Times queries.load_directory (the scan and the strength estimate) inside the handler."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.real = queries.load_directory

    def __call__(self, org_id, config):
        started = time.perf_counter()
        try:
            return self.real(org_id, config)
        finally:
            self.samples.append((time.perf_counter() - started) * 1000)


def measure_size(size: int, events: int) -> dict:
    org_id = f"org-{size // 1000}k"
    seed_s, records = seed(org_id, size)
    log.info("recommendation: %s seeded with %d counselors, %d client records in %.0f s", org_id, size, records,
             seed_s)
    timer = LoadTimer()
    queries.load_directory = timer
    try:
        first, candidates = recommend_ms(org_id, 0)
        warm = [recommend_ms(org_id, n)[0] for n in range(1, events + 1)]
        counselor_changed(org_id)
        after_change, _ = recommend_ms(org_id, events + 1)
    finally:
        queries.load_directory = timer.real
    return {"size": size, "records": records, "seed_s": seed_s, "first": first, "warm": warm,
            "after_change": after_change, "loads": timer.samples, "candidates": candidates}


def measure(sizes=SIZES, events: int = WARM_EVENTS, folder: Path | None = None) -> list[dict]:
    folder = folder or Path(tempfile.mkdtemp(prefix="rapport-bench-recommendation-"))
    with ferretdb(folder) as uri:
        mongo.connect(Settings.load("referral", {"mongo_uri": uri, "db_prefix": "bench"}))
        try:
            return [measure_size(size, events) for size in sizes]
        finally:
            directory_cache.clear()  # a 40,000-counselor directory is no reason to keep the runner's memory
            me.disconnect()


def rows(results: list[dict]) -> list[list[str]]:
    table = []
    for r in results:
        warm = r["warm"]
        loads = " / ".join(f"{ms / 1000:.2f}" for ms in r["loads"])
        table.append([f"{r['size']:,}", f"{r['records']:,}", f"{r['seed_s']:.0f}", f"{r['first']:.0f}",
                      str(len(warm)), f"{percentile(warm, 0.5):.1f}", f"{percentile(warm, 0.99):.1f}",
                      f"{max(warm):.1f}", f"{r['after_change']:.0f}", loads])
    return table


HEADER = ["counselors", "client records", "seeded in s", "first ms (builds)", "warm events", "warm p50 ms",
          "warm p99 ms", "warm max ms", "after counselor.updated ms", "directory builds, s"]


def run(bench=None) -> Result:
    """For the runner (deploy/bench/run.py): a FerretDB of its own in the bench's folder."""
    results = measure(folder=bench.subfolder("recommendation") if bench is not None else None)
    figures = []
    for r in results:
        figures.append(Figure(
            f"Recommendation, {r['size']:,} counselors, intake.submitted → referral.recommended: warm p99 "
            f"**{percentile(r['warm'], 0.99):.0f} ms** (p50 {percentile(r['warm'], 0.5):.0f} ms); first, and after "
            f"a counselor.updated: {r['first'] / 1000:.1f} s (built) / {r['after_change']:.0f} ms",
            "—", "—", GOAL, None))
    return Result(TITLE, figures, [
        "`python deploy/bench/recommendation.py`: referral's `handle_intake_submitted` called in process with each "
        "event as the consumer loop hands it over, timed until its publish function is handed "
        "`referral.recommended`; FerretDB of its own, no broker. The organisation is matching.py's seeded random "
        "directory, inserted as CounselorView and CounselorFit documents; the 40,000 are seeded after the 10,000 "
        "were measured, into the same collections (every non-`_id` query scans both organisations' documents). "
        "Each recommendation is for a new client (3 concerns, English, either modality, a gender preference).",
        "",
        *markdown_table(HEADER, rows(results)),
        "",
        "*First* is the first recommendation of the process for the organisation: it builds the directory "
        "(queries.load_directory: the scan of counselors and fits, and the strength estimate) and keeps it "
        "(services/referral/adapters/directory_cache.py). *Warm*: nothing changed since, so one `_id` look-up of "
        "the directory's version and ranking the kept directory. *After counselor.updated*: one counselor stopped "
        "accepting new clients (through referral's handler): the next recommendation reads that counselor by `_id` "
        "and replaces its row, strengths kept; a scored session builds the directory again only once the kept "
        "strengths are older than RAPPORT_REFERRAL_STRENGTH_REFRESH_S (300 s). *Directory builds*: the "
        "load_directory calls' own times (the scans).",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    parser.add_argument("--events", type=int, default=WARM_EVENTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    results = measure([int(s) for s in args.sizes.split(",")], args.events)
    print(" | ".join(HEADER))
    for row in rows(results):
        print(" | ".join(row))


if __name__ == "__main__":
    main()
