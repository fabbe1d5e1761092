"""`make bench`: the benchmarks of issue 9, each next to a limit measured in the same run on the same machine
(absolute times drift on shared machines; ratios much less), printed as one table and written with the detail
to docs/benchmarks.md.

    python deploy/bench/run.py [--only intake,alerts,replay,matching,recommendation] [--replay-events N]
                               [--doc PATH]

Every benchmark starts its own Kafka broker, FerretDB and processes in a temporary folder on free 127.0.0.1
ports and stops them when it ends. One that fails is recorded as failed in the table and the run goes on.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform as host
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Run as a file (`python deploy/bench/run.py`, what `make bench` does), Python puts deploy/bench, not the
# repository root, on sys.path; the root is where the `deploy` and `services` packages are imported from.
sys.path.insert(0, str(ROOT))

from deploy.bench import alert_latency, intake_load, matching, recommendation, replay  # noqa: E402
from deploy.bench.harness import Bench  # noqa: E402
from deploy.bench.memory import PeakMemory, PeakRss  # noqa: E402
from deploy.bench.report import Figure, Result, markdown_table  # noqa: E402

log = logging.getLogger("bench")
BENCHMARKS = {"intake": intake_load, "alerts": alert_latency, "replay": replay, "matching": matching,
              "recommendation": recommendation}
DOC = ROOT / "docs" / "benchmarks.md"
SUMMARY_HEADER = ["figure", "limit", "ratio", "goal", "met?"]


def _stop_on_sigterm(*_: object) -> None:
    # Unwind like Ctrl-C, so that every benchmark's `finally` stops the processes it started.
    raise KeyboardInterrupt


def run_one(name: str, bench: Bench, options: argparse.Namespace) -> tuple[Result, float, bool]:
    module = BENCHMARKS[name]
    started = time.monotonic()
    log.info("%s: started", name)
    try:
        result = module.run(bench, **({"events": options.replay_events} if name == "replay" else {}))
        ok = True
    except Exception as exc:  # recorded in the table; the other benchmarks still run
        log.exception("%s failed", name)
        result = Result(module.TITLE, [Figure(module.TITLE, "—", "—", module.GOAL, False)],
                        [f"**Failed**: `{type(exc).__name__}: {str(exc)[:300]}`", "", "```",
                         *traceback.format_exc().strip().splitlines()[-12:], "```"])
        ok = False
    elapsed = time.monotonic() - started
    log.info("%s: done in %.0f s", name, elapsed)
    return result, elapsed, ok


def memory_result(rows: list[PeakRss]) -> Result:
    table = [[row.phase, row.name, f"{row.own_mb:.0f}",
              " / ".join(f"{mb:.0f}" for mb in row.children_mb) or "—", f"{row.total_mb:.0f}"] for row in rows]
    largest = max(rows, key=lambda r: r.largest_mb, default=None)
    figures = [Figure(f"Peak RSS, largest single process: **{largest.largest_mb:.0f} MB** ({largest.name}, "
                      f"{largest.phase})", "—", "—", "reported", None)] if largest else []
    return Result("Peak memory (RSS) of every API and worker process", figures, [
        "High-water mark (`VmHWM` in `/proc/<pid>/status`) of each process during each benchmark: for a gunicorn "
        "API the master's own peak and each worker process's (forked from it, so pages they still share are "
        "counted in each).", "",
        *markdown_table(["benchmark", "process", "own peak MB", "gunicorn workers' peaks MB", "sum MB"], table)])


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), host.processor())
    memory_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                         if line.startswith("MemTotal")))
    return (f"{os.cpu_count()} cores ({cpu}), {memory_kb / 1024 / 1024:.0f} GB RAM, Linux {host.release()}, "
            f"Python {host.python_version()}")


def measured_code() -> str:
    """The commit measured, and whether the services' code had uncommitted changes (work in progress of
    someone else's is measured too, and should be visible)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    changed = git("status", "--porcelain", "--", "services", "deploy")
    commit = git("log", "-1", "--format=%h (%cs)") or "unknown"
    return f"`{commit}`" + (f", plus uncommitted changes in {len(changed.splitlines())} files under services/ "
                            "or deploy/" if changed else " (no uncommitted changes under services/ or deploy/)")


def document(results: list[tuple[str, Result, float | None]], command: str, total_s: float) -> str:
    summary = [[f.figure, f.limit, f.ratio, f.goal, {True: "yes", False: "**no**", None: "—"}[f.met]]
               for _, result, _ in results for f in result.figures]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` from its last run; do not edit by hand. Each figure stands next to a limit measured "
        "in the same run on the same machine (absolute times drift on a shared machine, ratios much less).",
        "",
        f"- command: `{command}` (what `make bench` runs)",
        f"- run: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {total_s / 60:.1f} minutes in all",
        f"- machine: {machine()}",
        f"- code: {measured_code()}",
        "- components: Apache Kafka 4.3 (KRaft, one broker, from `.rapport/kafka`), FerretDB 1.24 (`.rapport/bin`); "
        "every benchmark on a broker, database and processes of its own, 127.0.0.1 only",
        "",
        "## Summary",
        "",
        *markdown_table(SUMMARY_HEADER, summary),
    ]
    for number, (name, result, elapsed) in enumerate(results, start=1):
        took = [f"*{elapsed:.0f} s* (`--only {name}`)", ""] if elapsed is not None else []
        lines += ["", f"## {number}. {result.title}", "", *took, *result.detail]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--replay-events", type=int, default=replay.DEFAULT_EVENTS,
                        help="feedback.submitted events preloaded for the replay benchmark")
    parser.add_argument("--doc", type=Path, help=f"where to write the Markdown (default {DOC.relative_to(ROOT)} "
                                                 "for a run of every benchmark, none for a subset)")
    options = parser.parse_args(argv)
    selected = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = set(selected) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    doc = options.doc or (DOC if selected == list(BENCHMARKS) else None)
    command = " ".join(["python", "deploy/bench/run.py", *(argv if argv is not None else sys.argv[1:])])

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python narrates every connection at INFO
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    folder = Path(tempfile.mkdtemp(prefix="rapport-bench-"))
    memory = PeakMemory()
    memory.start()
    started = time.monotonic()
    results, all_ok = [], True
    try:
        for name in selected:
            result, elapsed, ok = run_one(name, Bench(folder / name, memory, name), options)
            results.append((name, result, elapsed))
            all_ok &= ok
    finally:
        memory.stop()
    rows = memory.results()
    if rows:
        results.append(("memory", memory_result(rows), None))
    total = time.monotonic() - started

    text = document(results, command, total)
    print(text[text.index("## Summary"):text.index("\n## 1.")] if "\n## 1." in text else text)
    print(f"whole run: {total / 60:.1f} minutes")
    if doc is not None:
        doc.write_text(text)
        print(f"written to {doc}")
    if all_ok:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"logs of the processes: {folder}", file=sys.stderr)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
