"""The back-test: what the alert rules would have sent over sessions already answered.

`rapport backtest` reads answered sessions (one JSON object a line, in any order) and writes one line per
notification a counselor would have received; an admin's preview of new alert settings runs the same over
the clinic's stored sessions. Both go through `alerting.assess`, the function the worker runs on every
feedback event, with a calibration made from the sessions themselves as the worker makes it from the
clinic's stored ones. No database or broker here.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable, Mapping

from marshmallow import Schema, ValidationError, fields, validate

from services.common.events import Id

from services.scoring.domain import instruments as domain
from services.scoring.domain.alerting import CHANGE, LEVEL, AlertDecision, Budget, DyadRun
from services.scoring.domain.calibration import (Calibration, calibrate, sessions_per_counselor_month_dated,
                          sessions_per_counselor_month_weekly)
from services.scoring.domain.instruments import Instrument

DEFAULT_CLINIC = "clinic"


class SessionLineSchema(Schema):
    """One answered session of the back-test's input. Unknown fields are refused, so a misspelt one is
    named instead of silently missing."""

    client_id = Id(required=True)
    counselor_id = Id(required=True)
    clinic_id = Id(load_default=DEFAULT_CLINIC)
    session_number = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    instrument_id = Id(load_default=None)
    answers = fields.Dict(keys=fields.String(), values=fields.Float(allow_nan=False), required=True,
                          validate=validate.Length(min=1))
    held_on = fields.Date(load_default=None, metadata={"description": "When the session was held (optional): "
                                                                      "counts calendar months"})


@dataclass(frozen=True)
class AnsweredSession:
    clinic_id: str
    client_id: str
    counselor_id: str
    session_number: int
    instrument: Instrument
    answers: Mapping[str, float]
    score: domain.SessionScore
    held_on: date | None = None

    @property
    def dyad(self) -> tuple[str, str, str, str]:
        return self.clinic_id, self.instrument.id, self.client_id, self.counselor_id


@dataclass(frozen=True)
class Notification:
    """What one counselor would have received for one session."""

    clinic_id: str
    client_id: str
    counselor_id: str
    session_number: int
    alert: AlertDecision

    def to_dict(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "counselor_id": self.counselor_id,
                "session_number": self.session_number, "kind": self.alert.kind, "rules": list(self.alert.rules),
                "dimension": self.alert.dimension, "severity": self.alert.severity}


@dataclass
class BacktestResult:
    notifications: list[Notification]
    sessions: int
    dyads: int
    counselors: int
    counselor_months: float
    dated: bool
    budget: Budget
    calibrations: dict[tuple[str, str], Calibration] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return sum(1 for n in self.notifications if n.alert.kind == kind)

    def per_counselor_month(self, kind: str) -> float | None:
        return self.count(kind) / self.counselor_months if self.counselor_months else None

    def summary(self) -> str:
        exposure = "from the session dates" if self.dated else "as if each client were seen weekly"
        lines = [f"{self.sessions} sessions of {self.dyads} client-counselor pairs, {self.counselors} counselors: "
                 f"{self.counselor_months:.1f} counselor-months ({exposure})"]
        for kind, label in ((CHANGE, "change alerts"), (LEVEL, "persistently-low notices")):
            rate = self.per_counselor_month(kind)
            lines.append(f"{label}: {self.count(kind)}"
                         + (f" ({rate:.2f} per counselor-month)" if rate is not None else ""))
        lines.append(f"budget: {self.budget.false_alerts_per_counselor_month:g} false change alert(s) per "
                     "counselor-month")
        for (clinic, instrument), c in sorted(self.calibrations.items()):
            origin = (f"from its {c.sessions} sessions" if c.source == "clinic"
                      else "documented values of the instrument (too few sessions to use their own)")
            lines.append(f"  {instrument} in {clinic}: alert when a session falls more than "
                         f"{c.k_for(self.budget.false_alerts_per_counselor_month):.2f} of the client's SDs below "
                         f"their baseline; within-client SD {c.pooled_sd:.2f} points ({origin}); "
                         f"{c.sessions_per_counselor_month:.0f} sessions per counselor-month")
        return "\n".join(lines)


def read_sessions(lines: Iterable[str], instruments: Mapping[str, Instrument],
                  instrument_id: str | None = None) -> tuple[list[AnsweredSession], list[str]]:
    """Parse and score the input; each bad line gives one error naming it and the field at fault, and
    costs nothing else."""
    sessions, errors = [], []
    schema = SessionLineSchema()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            record = schema.load(raw)
            chosen = instrument_id or record["instrument_id"]
            if chosen is None:
                raise ValidationError({"instrument_id": ["Missing data for required field."]})
            instrument = instruments.get(chosen)
            if instrument is None:
                raise ValidationError({"instrument_id": [f"Unknown instrument {chosen!r}."]})
            try:
                score = domain.score_answers(instrument, record["answers"])
            except domain.InvalidAnswers as exc:
                raise ValidationError({"answers": [str(exc)]}) from None
        except ValidationError as exc:
            errors.append(f"line {number}: " + "; ".join(f"{path}: {message}"
                                                         for path, message in _messages(exc.messages)))
            continue
        except ValueError as exc:  # json.JSONDecodeError is one
            errors.append(f"line {number}: not a JSON object ({exc})")
            continue
        sessions.append(AnsweredSession(record["clinic_id"], record["client_id"], record["counselor_id"],
                                        record["session_number"], instrument, record["answers"], score,
                                        record["held_on"]))
    return sessions, errors


def _messages(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(messages, dict):
        return [m for key, value in messages.items()
                for m in _messages(value, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(messages, list):
        return [(prefix, str(m)) for m in messages]
    return [(prefix, str(messages))]


def run_backtest(sessions: list[AnsweredSession], settings: Mapping[str, Any],
                 calibrations: Mapping[tuple[str, str], Calibration] | None = None) -> BacktestResult:
    """Every dyad's sessions through the alert rules in session order (a second answer for a session
    number counts as late, as in the worker), with each clinic's calibration per instrument made from its
    sessions here. Counselor-months come from the dates when every session has one, else from the
    assumption that each client is seen weekly. Calibrations of an earlier run over the same sessions are
    reused where they fit the settings' detector."""
    rules, budget = settings["rules"], Budget.of(settings)
    by_dyad: dict[tuple[str, str, str, str], list[AnsweredSession]] = defaultdict(list)
    for s in sessions:
        by_dyad[s.dyad].append(s)
    dated = bool(sessions) and all(s.held_on is not None for s in sessions)
    months_by_clinic, sessions_by_clinic = _exposure(sessions, dated)

    made: dict[tuple[str, str], Calibration] = {}
    by_instrument: dict[tuple[str, str], list[list[Mapping[str, float]]]] = defaultdict(list)
    # In a fixed order (the calibration's simulation follows the dyads), so the input's order does not matter.
    by_dyad = dict(sorted(by_dyad.items()))
    for (clinic, instrument_id, _, _), dyad in by_dyad.items():
        dyad.sort(key=lambda s: s.session_number)  # stable: a repeated session number keeps input order
        by_instrument[(clinic, instrument_id)].append([s.answers for s in dyad])
    instruments = {s.instrument.id: s.instrument for s in sessions}
    for (clinic, instrument_id), dyads in by_instrument.items():
        earlier = (calibrations or {}).get((clinic, instrument_id))
        if earlier is not None and earlier.fits(rules):
            made[(clinic, instrument_id)] = earlier
            continue
        months = months_by_clinic[clinic]
        made[(clinic, instrument_id)] = calibrate(
            instruments[instrument_id], dyads, rules, sessions_by_clinic[clinic] / months if months else None)

    notifications = []
    for (clinic, instrument_id, _, _), dyad in by_dyad.items():
        scale = made[(clinic, instrument_id)].scale_for(budget.false_alerts_per_counselor_month)
        run = DyadRun()
        for s in dyad:
            result = run.apply(s.instrument, s.score, s.session_number, rules, scale)
            if result.alert is not None:
                notifications.append(Notification(clinic, s.client_id, s.counselor_id, s.session_number,
                                                  result.alert))
    notifications.sort(key=lambda n: (n.clinic_id, n.counselor_id, n.client_id, n.session_number))
    return BacktestResult(notifications, sessions=len(sessions), dyads=len(by_dyad),
                          counselors=len({(s.clinic_id, s.counselor_id) for s in sessions}),
                          counselor_months=sum(months_by_clinic.values()), dated=dated, budget=budget,
                          calibrations=made)


def _exposure(sessions: list[AnsweredSession], dated: bool) -> tuple[dict[str, float], Counter]:
    """Counselor-months and sessions per clinic."""
    sessions_by_clinic: Counter = Counter(s.clinic_id for s in sessions)
    per_counselor: Counter = Counter((s.clinic_id, s.counselor_id) for s in sessions)
    months: dict[str, float] = {}
    for clinic in sessions_by_clinic:
        mine = [s for s in sessions if s.clinic_id == clinic]
        if dated:
            days: dict[str, list[date]] = defaultdict(list)
            for s in mine:
                days[s.counselor_id].append(s.held_on)
            rate = sessions_per_counselor_month_dated(
                (per_counselor[(clinic, c)], (max(d) - min(d)).days) for c, d in days.items())
        else:
            clients = Counter(c for c, _ in {(s.counselor_id, s.client_id) for s in mine})
            rate = sessions_per_counselor_month_weekly(
                clients, {c: per_counselor[(clinic, c)] for c in clients})
        months[clinic] = sessions_by_clinic[clinic] / rate if rate else 0.0
    return months, sessions_by_clinic
