"""What a benchmark reports (standard library only): rows of the summary table and a Markdown detail."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """One row of the summary table: a measured figure next to the limit measured in the same run."""

    figure: str
    limit: str
    ratio: str
    goal: str
    met: bool | None  # None: reported, no goal to meet


@dataclass
class Result:
    title: str
    figures: list[Figure] = field(default_factory=list)
    # Markdown: the per-benchmark detail for docs/benchmarks.md.
    detail: list[str] = field(default_factory=list)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines
