"""Local runtime for machines without a Docker engine: fetch, build, start and wait for the real components.

Apache Kafka (KRaft, one combined broker+controller) runs from its Maven Central jars; FerretDB 1.24 (MongoDB
wire protocol on SQLite) is built from the Go module proxy. `make up`, `make test` and the test fixtures all
go through this file, so a developer machine, CI and the tests run the same components the same way.
Standard library only: it runs before the virtualenv exists. Run as a script (below), or imported as
deploy.local.runtime by deploy/local/components.py, which the tests and the benchmarks use.

    python deploy/local/runtime.py fetch-kafka | build-ferretdb
    python deploy/local/runtime.py kafka --data DIR [--port 9092 --controller-port 9093]
    python deploy/local/runtime.py wait-http URL [URL ...] [--timeout 180]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("RAPPORT_STATE_DIR", ROOT / ".rapport"))
KAFKA_POM = ROOT / "deploy" / "kafka" / "pom.xml"
KAFKA_LOG4J = ROOT / "deploy" / "kafka" / "log4j2.properties"
KAFKA_LIBS = STATE / "kafka" / "libs"
FERRETDB_SRC = ROOT / "deploy" / "ferretdb"
FERRETDB_BIN = STATE / "bin" / "rapport-ferretdb"
KAFKA_READY_LINE = "Kafka Server started"


def _stamp_ok(target: Path, *sources: Path) -> bool:
    """True if `target` exists and is newer than every source (so the step can be skipped)."""
    return target.exists() and all(target.stat().st_mtime >= s.stat().st_mtime for s in sources)


def fetch_kafka() -> Path:
    stamp = KAFKA_LIBS / ".complete"
    if _stamp_ok(stamp, KAFKA_POM):
        return KAFKA_LIBS
    if KAFKA_LIBS.exists():
        shutil.rmtree(KAFKA_LIBS)
    KAFKA_LIBS.mkdir(parents=True)
    subprocess.run(["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(KAFKA_POM), "dependency:copy-dependencies",
                    f"-DoutputDirectory={KAFKA_LIBS}", "-DincludeScope=runtime"], check=True)
    stamp.touch()
    return KAFKA_LIBS


def build_ferretdb() -> Path:
    """Build FerretDB from the Go module proxy, with deploy/ferretdb/*.patch applied to a copy of its module.

    The patched copy is wired in through a Go workspace kept under .rapport, so deploy/ferretdb/go.mod stays
    a plain requirement of the published module (and its go.sum checks what is downloaded).
    """
    patches = sorted(FERRETDB_SRC.glob("*.patch"))
    sources = [FERRETDB_SRC / "main.go", FERRETDB_SRC / "go.mod", FERRETDB_SRC / "go.sum", *patches]
    if _stamp_ok(FERRETDB_BIN, *sources):
        return FERRETDB_BIN
    FERRETDB_BIN.parent.mkdir(parents=True, exist_ok=True)
    module = "github.com/FerretDB/FerretDB"
    version = next(line.split()[-1] for line in (FERRETDB_SRC / "go.mod").read_text().splitlines()
                   if line.strip().startswith(f"require {module} "))
    downloaded = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=FERRETDB_SRC,
                                check=True, capture_output=True, text=True)
    patched = STATE / "ferretdb-module"
    if patched.exists():
        shutil.rmtree(patched)
    # The module cache is read-only; the copy is ours to patch.
    shutil.copytree(json.loads(downloaded.stdout)["Dir"], patched)
    for path in patched.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    for patch in patches:
        subprocess.run(["patch", "-p1", "--forward", "--quiet", "-i", str(patch)], cwd=patched, check=True)
    workspace = STATE / "ferretdb.go.work"
    workspace.write_text(f"go 1.24\n\nuse {FERRETDB_SRC}\n\nreplace {module} {version} => {patched}\n")
    subprocess.run(["go", "build", "-o", str(FERRETDB_BIN), "."], cwd=FERRETDB_SRC, check=True,
                   env={**os.environ, "GOWORK": str(workspace)})
    return FERRETDB_BIN


def kafka_properties(data: Path, port: int, controller_port: int) -> str:
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data / 'log'}",
        "num.partitions=3",
        # One broker: every internal topic has one replica. Production settings are in docs and compose.
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        # Topics are created by the services' admin step with the configured partitions, never by accident.
        "auto.create.topics.enable=false",
        "",
    ])


def kafka_command(data: Path, port: int, controller_port: int, heap_mb: int = 512) -> list[str]:
    """Write the broker's configuration, format its storage once, and return the command that runs it."""
    libs = fetch_kafka()
    data.mkdir(parents=True, exist_ok=True)
    props = data / "server.properties"
    props.write_text(kafka_properties(data, port, controller_port))
    java = ["java", f"-Xms{heap_mb}m", f"-Xmx{heap_mb}m", f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
            "-cp", f"{libs}/*"]
    if not (data / "log" / "meta.properties").exists():
        cluster_id = _cluster_id()
        subprocess.run(java + ["kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id,
                               "-c", str(props)], check=True, stdout=subprocess.DEVNULL)
    return java + ["kafka.Kafka", str(props)]


def _cluster_id() -> str:
    """A random KRaft cluster id (base64url of a UUID) that does not start with "-", which the storage
    tool's argument parser would take for an option (Kafka's own random-uuid avoids it the same way)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def ferretdb_command(data: Path, port: int) -> list[str]:
    return [str(build_ferretdb()), "-listen", f"127.0.0.1:{port}", "-data", str(data)]


def wait_for_line(log_file: Path, line: str, timeout_s: float, process: subprocess.Popen | None = None,
                  occurrences: int = 1) -> None:
    """Wait until `line` appears `occurrences` times in the log (a restarted process appends to it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log_file.exists() and log_file.read_text(errors="replace").count(line) >= occurrences:
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}; see {log_file}")
        time.sleep(0.2)
    raise TimeoutError(f"no {line!r} in {log_file} after {timeout_s:.0f}s")


def wait_http(urls: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(urls)
    while pending:
        url = pending[0]
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    pending.pop(0)
                    continue
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout_s:.0f}s: {', '.join(pending)}")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch-kafka", help="download the Kafka jars from Maven Central (once)")
    sub.add_parser("build-ferretdb", help="build FerretDB from the Go module proxy (once)")
    kafka = sub.add_parser("kafka", help="run the broker in the foreground")
    kafka.add_argument("--data", type=Path, default=STATE / "data" / "kafka")
    kafka.add_argument("--port", type=int, default=int(os.environ.get("RAPPORT_KAFKA_PORT", 9092)))
    kafka.add_argument("--controller-port", type=int,
                       default=int(os.environ.get("RAPPORT_KAFKA_CONTROLLER_PORT", 9093)))
    ferret = sub.add_parser("ferretdb", help="run FerretDB in the foreground")
    ferret.add_argument("--data", type=Path, default=STATE / "data" / "ferretdb")
    ferret.add_argument("--port", type=int, default=int(os.environ.get("RAPPORT_MONGO_PORT", 27017)))
    wait = sub.add_parser("wait-http", help="wait until every URL answers 200")
    wait.add_argument("urls", nargs="+")
    wait.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)

    if args.command == "fetch-kafka":
        print(fetch_kafka())
    elif args.command == "build-ferretdb":
        print(build_ferretdb())
    elif args.command == "kafka":
        command = kafka_command(args.data.resolve(), args.port, args.controller_port)
        os.execvp(command[0], command)
    elif args.command == "ferretdb":
        command = ferretdb_command(args.data.resolve(), args.port)
        os.execvp(command[0], command)
    elif args.command == "wait-http":
        try:
            wait_http(args.urls, args.timeout)
        except TimeoutError as exc:
            print(exc, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
