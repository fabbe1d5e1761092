"""The real Kafka broker and FerretDB, started on free ports, for the integration and end-to-end tests and the
benchmarks.

They run from the same runtime as `make up` (deploy/local/runtime.py) but in a temporary folder, so a test run
or a benchmark never touches, or collides with, a platform started by `make up`.
"""
from __future__ import annotations

import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local import runtime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def start_process(name: str, command: list[str], folder: Path, env: dict | None = None,
                  cwd: Path = runtime.ROOT) -> Process:
    log = folder / f"{name}.log"
    handle = log.open("ab")
    popen = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                             stdin=subprocess.DEVNULL)
    handle.close()
    return Process(name, popen, log)


@dataclass
class Components:
    folder: Path
    kafka_port: int
    mongo_port: int
    processes: list[Process] = field(default_factory=list)

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongo_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/"

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def process(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    def start_again(self, name: str) -> None:
        """Start a stopped component with its original command and data (for fault tests)."""
        old = self.process(name)
        assert old.popen.poll() is not None, f"{name} is still running"
        new = start_process(name, list(old.popen.args), self.folder)
        self.processes[self.processes.index(old)] = new
        ready_line = runtime.KAFKA_READY_LINE if name == "kafka" else "FerretDB listening"
        runtime.wait_for_line(new.log, ready_line, 90, new.popen, occurrences=_count(old.log, ready_line) + 1)


def _count(log: Path, line: str) -> int:
    return log.read_text(errors="replace").count(line) if log.exists() else 0


def start_components(folder: Path) -> Components:
    components = Components(folder, kafka_port=free_port(), mongo_port=free_port())
    try:
        ferret = start_process("ferretdb", runtime.ferretdb_command(folder / "ferretdb", components.mongo_port),
                               folder)
        components.processes.append(ferret)
        runtime.wait_for_line(ferret.log, "FerretDB listening", 30, ferret.popen)
        kafka = start_process("kafka", runtime.kafka_command(folder / "kafka", components.kafka_port,
                                                             free_port()), folder)
        components.processes.append(kafka)
        runtime.wait_for_line(kafka.log, runtime.KAFKA_READY_LINE, 90, kafka.popen)
    except BaseException:
        components.stop()
        raise
    return components
