"""The security suite's counts, printed in pytest's terminal summary (so they show without -s or -rA)."""
from __future__ import annotations

LINES: list[str] = []


def report(line: str) -> None:
    LINES.append(line)
