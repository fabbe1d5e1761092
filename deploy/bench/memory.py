"""Peak resident memory of the processes a benchmark starts, from the kernel's high-water mark (VmHWM).

The kernel keeps each process's peak itself, so a sample only has to see a process once before it exits,
not at its peak. Each sample walks the tree below every watched process: gunicorn's master forks its workers,
and a worker it replaces (max_requests) gets a new pid.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class PeakRss:
    """One watched process: its own peak and, for a gunicorn master, the peaks of the workers it forked."""

    phase: str
    name: str
    own_mb: float
    children_mb: tuple[float, ...]

    @property
    def total_mb(self) -> float:
        return self.own_mb + sum(self.children_mb)

    @property
    def largest_mb(self) -> float:
        return max((self.own_mb, *self.children_mb))


@dataclass
class PeakMemory:
    interval_s: float = 0.5
    # (phase, name) -> root pid; the ones still sampled; (phase, name) -> {pid: peak kB}
    _roots: dict[tuple[str, str], int] = field(default_factory=dict)
    _sampled: set[tuple[str, str]] = field(default_factory=set)
    _peaks: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, phase: str, name: str, pid: int) -> None:
        with self._lock:
            self._roots[(phase, name)] = pid
            self._sampled.add((phase, name))
            self._peaks.setdefault((phase, name), {})
        self._sample()

    def forget(self, phase: str, name: str) -> None:
        """Stop sampling a process (before it is stopped); its peaks so far are kept."""
        self._sample()
        with self._lock:
            self._sampled.discard((phase, name))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        with self._lock:
            roots = {key: self._roots[key] for key in self._sampled}
        if not roots:
            return
        children = _children_by_parent()
        for key, root in roots.items():
            for pid in _tree(root, children):
                peak = _peak_kb(pid)
                if peak is not None:
                    with self._lock:
                        known = self._peaks[key]
                        known[pid] = max(known.get(pid, 0), peak)

    def results(self) -> list[PeakRss]:
        self._sample()
        with self._lock:
            rows = []
            for (phase, name), peaks in self._peaks.items():
                root = self._roots[(phase, name)]
                own = peaks.get(root, 0)
                others = tuple(sorted((kb / 1024 for pid, kb in peaks.items() if pid != root), reverse=True))
                rows.append(PeakRss(phase, name, own / 1024, others))
            return rows


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Field 4 of /proc/<pid>/stat is the parent pid; the command name (field 2) may contain spaces.
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    return children


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    pids, pending = [], [root]
    while pending:
        pid = pending.pop()
        pids.append(pid)
        pending.extend(children.get(pid, ()))
    return pids


def _peak_kb(pid: int) -> int | None:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
