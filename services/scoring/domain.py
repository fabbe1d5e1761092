"""Alliance scoring rules. Pure Python: no web framework, broker or database here.

An instrument is data (a FHIR Questionnaire-shaped JSON file); nothing below knows an instrument by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

SUBSCALES = ("goal", "task", "bond")


class InvalidAnswers(ValueError):
    """The answers do not fit the instrument (missing, unknown or out-of-range items)."""


@dataclass(frozen=True)
class Item:
    link_id: str
    subscale: str
    minimum: float
    maximum: float
    reverse: bool = False

    def value(self, answer: float) -> float:
        return self.minimum + self.maximum - answer if self.reverse else answer


@dataclass(frozen=True)
class Instrument:
    id: str
    title: str
    items: tuple[Item, ...]
    cutoff_total: float | None

    @property
    def min_total(self) -> float:
        return sum(i.minimum for i in self.items)

    @property
    def max_total(self) -> float:
        return sum(i.maximum for i in self.items)

    def subscale_range(self, subscale: str) -> tuple[float, float] | None:
        """(min, max) of a subscale's mean item score, None if no item belongs to it."""
        items = [i for i in self.items if i.subscale == subscale]
        if not items:
            return None
        return sum(i.minimum for i in items) / len(items), sum(i.maximum for i in items) / len(items)


def parse_instrument(definition: Mapping[str, Any]) -> Instrument:
    """Read an instrument from its Questionnaire-shaped definition."""
    items = []
    for raw in definition["item"]:
        extra = raw["rapport"]
        if extra["subscale"] not in SUBSCALES:
            raise ValueError(f"item {raw['linkId']}: subscale must be one of {SUBSCALES}")
        items.append(Item(link_id=raw["linkId"], subscale=extra["subscale"], minimum=float(extra["min"]),
                          maximum=float(extra["max"]), reverse=bool(extra.get("reverse", False))))
    cutoff = definition.get("rapport", {}).get("cutoff", {}).get("total")
    return Instrument(id=definition["id"], title=definition.get("title", definition["id"]),
                      items=tuple(items), cutoff_total=None if cutoff is None else float(cutoff))


@dataclass(frozen=True)
class SessionScore:
    total: float
    mean: float
    subscales: Mapping[str, float | None]


def score_answers(instrument: Instrument, answers: Mapping[str, float]) -> SessionScore:
    """Total, mean item score and mean item score per subscale, after reverse-scoring."""
    expected = {i.link_id for i in instrument.items}
    missing, unknown = expected - set(answers), set(answers) - expected
    if missing or unknown:
        raise InvalidAnswers(f"missing items {sorted(missing)}, unknown items {sorted(unknown)}")
    values: dict[str, list[float]] = {s: [] for s in SUBSCALES}
    total = 0.0
    for item in instrument.items:
        answer = float(answers[item.link_id])
        if not item.minimum <= answer <= item.maximum:
            raise InvalidAnswers(f"item {item.link_id} outside {item.minimum:g}-{item.maximum:g}")
        value = item.value(answer)
        values[item.subscale].append(value)
        total += value
    subscales = {s: (sum(v) / len(v) if v else None) for s, v in values.items()}
    return SessionScore(total=total, mean=total / len(instrument.items), subscales=subscales)


@dataclass(frozen=True)
class Alert:
    rule: str
    dimension: str | None
    severity: str
    threshold: float


def weakest_dimension(instrument: Instrument, score: SessionScore) -> str | None:
    """The subscale lowest within its own range: where the alliance needs repair first."""
    positions = {}
    for subscale, value in score.subscales.items():
        bounds = instrument.subscale_range(subscale)
        if value is None or bounds is None or bounds[1] == bounds[0]:
            continue
        positions[subscale] = (value - bounds[0]) / (bounds[1] - bounds[0])
    # Ties go to the first in Bordin's order (goal, task, bond), so the result is stable.
    return min(positions, key=lambda s: (positions[s], SUBSCALES.index(s))) if positions else None


def evaluate_alerts(instrument: Instrument, score: SessionScore) -> list[Alert]:
    alerts = []
    if instrument.cutoff_total is not None and score.total < instrument.cutoff_total:
        span = instrument.max_total - instrument.min_total
        # Far below the cutoff (in the lower half of the scale) is a rupture-level signal.
        low = span > 0 and (score.total - instrument.min_total) / span < 0.5
        alerts.append(Alert(rule="below_cutoff", dimension=weakest_dimension(instrument, score),
                            severity="high" if low else "medium", threshold=instrument.cutoff_total))
    return alerts
