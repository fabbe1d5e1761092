"""A simulated caseload with hidden truth, for judging the alert rules the way a clinic would.

Modelled on what session ratings look like, and built differently from the reference model the
calibration simulates (services/scoring/domain/calibration.py), so that the test does not grade the calibration
against its own assumptions:

- whole-number items with a ceiling: most clients rate 8-10 of 10 (levels drawn from a beta distribution),
  some dyads stable but low;
- per-client noise that differs between clients (gamma distributed), a session mood shared by the items
  with a client-specific weight, and heavier tails than normal (Student t, 6 degrees of freedom);
- ruptures of 1.5-3 of the client's own SDs of the total, lasting 1-3 sessions and easing off, with one
  dimension hit hardest; slow declines; slow growth; 8-20 weekly sessions per dyad.

The truth (which sessions are ruptures, which dimension fell, each client's level and noise) stays in the
caseload, for the scoring of the rules and for an ideal detector that knows it.
"""
from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

from services.scoring.domain.instruments import Instrument

T_DF = 6
KINDS = (("stable", 0.58), ("stable_low", 0.15), ("growth", 0.12), ("decline", 0.15))


@dataclass
class Session:
    number: int
    answers: dict[str, int]
    rupture: bool = False  # under way (any of its sessions)
    onset: bool = False
    declining: bool = False
    hit: str | None = None  # the dimension hit hardest, during a rupture
    null_p: float = 1.0  # P(total <= this total) were the client as usual: the ideal detector's score
    ideal_dimension: str | None = None  # the dimension furthest below its true level, in its noise

    @property
    def null(self) -> bool:
        """A session where an alert would be false: no rupture, no decline."""
        return not self.rupture and not self.declining


@dataclass
class Dyad:
    clinic_id: str
    counselor_id: str
    client_id: str
    kind: str
    sessions: list[Session] = field(default_factory=list)


@dataclass(frozen=True)
class _Client:
    levels: tuple[float, ...]  # usual value of each item, in points
    noise: float  # SD of an item's noise, in points
    mood: float  # share of the noise shared by the items in a session


def _t(rng: random.Random) -> float:
    """Student t with T_DF degrees of freedom, scaled to unit variance."""
    return rng.gauss(0, 1) / math.sqrt(rng.gammavariate(T_DF / 2, 2) / T_DF) / math.sqrt(T_DF / (T_DF - 2))


def _answer(item, latent: float) -> int:
    return int(max(item.minimum, min(item.maximum, round(latent))))


def _draw(instrument: Instrument, client: _Client, shifts: list[float], rng: random.Random) -> list[int]:
    shared = _t(rng)
    return [_answer(item, level + shift + client.noise * (math.sqrt(client.mood) * shared
                                                          + math.sqrt(1 - client.mood) * _t(rng)))
            for item, level, shift in zip(instrument.items, client.levels, shifts)]


def _values(instrument: Instrument, answers: list[int]) -> list[float]:
    return [item.value(a) for item, a in zip(instrument.items, answers)]


class _Null:
    """The ideal detector's knowledge: the distribution of a client's total were nothing going on."""

    def __init__(self, instrument: Instrument, draws: int, seed: int):
        self._instrument, self._draws, self._seed = instrument, draws, seed
        self._cache: dict[tuple, list[float]] = {}

    def totals(self, client: _Client, shifts: tuple[float, ...]) -> list[float]:
        key = (client, shifts)
        if key not in self._cache:
            rng = random.Random(hash((self._seed, key)))
            self._cache[key] = sorted(sum(_values(self._instrument, _draw(self._instrument, client, list(shifts), rng)))
                                      for _ in range(self._draws))
        return self._cache[key]

    def p(self, client: _Client, shifts: tuple[float, ...], total: float) -> float:
        totals = self.totals(client, shifts)
        below = bisect.bisect_left(totals, total)
        equal = bisect.bisect_right(totals, total) - below
        return (below + equal / 2) / len(totals)

    def sd(self, client: _Client, shifts: tuple[float, ...]) -> float:
        totals = self.totals(client, shifts)
        mean = sum(totals) / len(totals)
        return math.sqrt(sum((t - mean) ** 2 for t in totals) / (len(totals) - 1))


def generate(instrument: Instrument, counselors: int = 20, clients: int = 20, seed: int = 2026,
             rupture_rate: float = 0.04, null_draws: int = 300) -> list[Dyad]:
    rng = random.Random(seed)
    null = _Null(instrument, null_draws, seed)
    dimensions = sorted({i.subscale for i in instrument.items if i.subscale})
    spans = [i.maximum - i.minimum for i in instrument.items]
    dyads = []
    for c in range(counselors):
        for k in range(clients):
            kind = rng.choices([name for name, _ in KINDS], [w for _, w in KINDS])[0]
            # Usual level as a share of the range: most near the top, a stable-low group well below it.
            share = (0.5 + 0.5 * rng.betavariate(7, 1.6)) if kind != "stable_low" else 0.45 + 0.3 * rng.betavariate(4, 3)
            levels = tuple(item.minimum + min(1.0, max(0.0, share + rng.gauss(0, 0.05))) * span
                           for item, span in zip(instrument.items, spans))
            # The noise of an item in points: 0.1-0.9 of a point on a 0-10 item, most about 0.35.
            client = _Client(levels, rng.gammavariate(4, 0.09) * spans[0] / 10, rng.uniform(0.3, 0.7))
            n = rng.randint(8, 20)
            slope, start = 0.0, n + 1
            if kind == "growth":
                slope, start = rng.uniform(0.05, 0.15) * spans[0] / 10, 1
            elif kind == "decline":
                slope, start = -rng.uniform(0.12, 0.3) * spans[0] / 10, rng.randint(3, max(3, n - 4))
            dyad = Dyad("clinic-a", f"counselor-{c}", f"client-{c}-{k}", kind)
            own_sd = null.sd(client, tuple(0.0 for _ in spans))
            left, length, falls, hit = 0, 0, [0.0] * len(spans), None
            for number in range(1, n + 1):
                onset = False
                if left == 0 and number >= 3 and rng.random() < rupture_rate:
                    onset, hit = True, rng.choice(dimensions)
                    length = left = rng.choice((1, 2, 2, 3))
                    falls = _rupture_falls(instrument, hit, rng.uniform(1.5, 3.0) * max(own_sd, 0.5), rng)
                trend = slope * (number - start) if number > start else 0.0
                usual = tuple(trend for _ in spans)
                easing = (left / length) if left else 0.0  # a rupture eases off over its sessions
                shifts = [trend - f * easing for f in falls]
                answers = _draw(instrument, client, shifts, rng)
                total = sum(_values(instrument, answers))
                dyad.sessions.append(Session(
                    number, {item.link_id: a for item, a in zip(instrument.items, answers)}, rupture=left > 0,
                    onset=onset, declining=slope < 0 and number > start, hit=hit if left else None,
                    null_p=null.p(client, usual, total),
                    ideal_dimension=_ideal_dimension(instrument, client, usual, answers)))
                if left:
                    left -= 1
            dyads.append(dyad)
    return dyads


def _rupture_falls(instrument: Instrument, hit: str, size: float, rng: random.Random) -> list[float]:
    hardest = [i for i, item in enumerate(instrument.items) if item.subscale == hit]
    rest = [i for i in range(len(instrument.items)) if i not in hardest]
    share = rng.uniform(0.45, 0.7)
    falls = [0.0] * len(instrument.items)
    for i in hardest:
        falls[i] = share * size / len(hardest)
    for i in rest:
        falls[i] = (1 - share) * size / len(rest)
    # Reverse-scored items fall by rising.
    return [-f if item.reverse else f for f, item in zip(falls, instrument.items)]


def _ideal_dimension(instrument: Instrument, client: _Client, usual: tuple[float, ...], answers: list[int]) -> str:
    falls: dict[str, list[float]] = {}
    for item, level, shift, answer in zip(instrument.items, client.levels, usual, answers):
        if item.subscale:
            falls.setdefault(item.subscale, []).append(item.value(level + shift) - item.value(answer))
    return max(falls, key=lambda s: sum(falls[s]) / len(falls[s]))


WEEKS_PER_MONTH = 365.25 / 7 / 12


def counselor_months(dyads: list[Dyad]) -> float:
    """Each counselor's clients seen weekly: a counselor with c clients holds c x 4.35 sessions a month."""
    clients: dict[str, int] = {}
    sessions: dict[str, int] = {}
    for d in dyads:
        clients[d.counselor_id] = clients.get(d.counselor_id, 0) + 1
        sessions[d.counselor_id] = sessions.get(d.counselor_id, 0) + len(d.sessions)
    return sum(sessions[c] / (clients[c] * WEEKS_PER_MONTH) for c in clients)


@dataclass(frozen=True)
class Figures:
    false_per_counselor_month: float
    recall: float  # ruptures with an alert at their first session or the next
    dimension: float  # of those caught, named the dimension hit hardest


def judge(dyads: list[Dyad], alerted: dict[tuple[str, int], str | None]) -> Figures:
    """alerted: (client, session number) -> the dimension named, for every change alert."""
    false = caught = right = ruptures = 0
    for d in dyads:
        for i, s in enumerate(d.sessions):
            if (d.client_id, s.number) in alerted and s.null:
                false += 1
            if s.onset:
                ruptures += 1
                for later in d.sessions[i:i + 2]:
                    if (d.client_id, later.number) in alerted:
                        caught += 1
                        right += alerted[(d.client_id, later.number)] == s.hit
                        break
    return Figures(false / counselor_months(dyads), caught / max(ruptures, 1), right / max(caught, 1))


def at_false_rate(dyads: list[Dyad], scores: dict[tuple[str, int], tuple[float, str | None]],
                  per_counselor_month: float) -> Figures:
    """The figures of a score (higher = more alarming) thresholded so that it makes the given false alerts
    per counselor-month: where a detector sits on the recall / false-alert frontier."""
    null_scores = sorted((scores[(d.client_id, s.number)][0] for d in dyads for s in d.sessions
                          if s.null and (d.client_id, s.number) in scores), reverse=True)
    allowed = int(per_counselor_month * counselor_months(dyads))
    threshold = null_scores[allowed] if allowed < len(null_scores) else -math.inf
    return judge(dyads, {key: dimension for key, (score, dimension) in scores.items() if score > threshold})
