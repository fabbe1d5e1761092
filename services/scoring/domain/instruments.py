"""Alliance instruments and session scores. Pure Python: no web framework, broker or database here.

An instrument is data (a FHIR Questionnaire-shaped JSON file); nothing below knows an instrument by name.
When a score becomes an alert is alerting.py's business, and how far it must fall calibration.py's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

SUBSCALES = ("goal", "task", "bond")
# Without a documented reliability and SD, an instrument's within-client noise is taken as this share of
# the total's range (1.6 points of 0-40): about what four-item 0-10 session ratings show.
UNDOCUMENTED_NOISE_SHARE = 0.04


class InvalidAnswers(ValueError):
    """The answers do not fit the instrument (missing, unknown or out-of-range items)."""


@dataclass(frozen=True)
class Item:
    link_id: str
    subscale: str | None  # None: the item counts in the total only
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
    # Reliability (r) and SD of the total, for the reliable change index; None if the definition has none.
    reliability: float | None = None
    sd: float | None = None

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

    def reliable_change_index(self, z: float = 1.96) -> float | None:
        """Jacobson & Truax (1991): the smallest change of the total beyond measurement error."""
        return reliable_change_index(self.sd, self.reliability, z)

    @property
    def documented_noise(self) -> float:
        """The within-client SD of the total before a clinic has data of its own: the standard error of
        measurement SD x sqrt(1 - r) of the definition, or a share of the range if it documents none."""
        if self.sd is not None and self.reliability is not None:
            return self.sd * math.sqrt(1 - self.reliability)
        return UNDOCUMENTED_NOISE_SHARE * (self.max_total - self.min_total)


def reliable_change_index(sd: float | None, reliability: float | None, z: float = 1.96) -> float | None:
    """z × SD × √(2 × (1 − r)): z times the standard error of the difference of two scores."""
    if sd is None or reliability is None:
        return None
    return z * sd * math.sqrt(2 * (1 - reliability))


def parse_instrument(definition: Mapping[str, Any]) -> Instrument:
    """Read an instrument from its Questionnaire-shaped definition."""
    items = []
    for raw in definition["item"]:
        extra = raw["rapport"]
        subscale = extra.get("subscale")
        if subscale is not None and subscale not in SUBSCALES:
            raise ValueError(f"item {raw['linkId']}: subscale must be one of {SUBSCALES} or null")
        items.append(Item(link_id=raw["linkId"], subscale=subscale, minimum=float(extra["min"]),
                          maximum=float(extra["max"]), reverse=bool(extra.get("reverse", False))))
    extra = definition.get("rapport", {})
    cutoff = extra.get("cutoff", {}).get("total")
    change = extra.get("reliableChange", {})
    reliability, sd = change.get("reliability"), change.get("sd")
    if reliability is not None and not 0 <= reliability < 1:
        raise ValueError(f"{definition['id']}: reliability must be in [0, 1)")
    return Instrument(id=definition["id"], title=definition.get("title", definition["id"]),
                      items=tuple(items), cutoff_total=None if cutoff is None else float(cutoff),
                      reliability=None if reliability is None else float(reliability),
                      sd=None if sd is None else float(sd))


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
        if item.subscale is not None:
            values[item.subscale].append(value)
        total += value
    subscales = {s: (sum(v) / len(v) if v else None) for s, v in values.items()}
    return SessionScore(total=total, mean=total / len(instrument.items), subscales=subscales)
