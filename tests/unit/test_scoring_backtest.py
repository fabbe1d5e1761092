"""`rapport backtest`: answered sessions in, one line per notification out, a summary on stderr."""
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from services.scoring.entrypoints.backtest_cli import backtest_command
from services.scoring.adapters.instruments import shipped_instruments
from tests.support import caseload

ROOT = Path(__file__).resolve().parents[2]
SPEC_KEYS = {"client_id", "counselor_id", "session_number", "kind", "rules", "dimension", "severity"}


@pytest.fixture(scope="module")
def lines():
    instrument = shipped_instruments()["session-rating-4"]
    dyads = caseload.generate(instrument, counselors=6, seed=5, null_draws=20)
    return [json.dumps({"client_id": d.client_id, "counselor_id": d.counselor_id, "clinic_id": "k1",
                        "session_number": s.number, "instrument_id": "session-rating-4", "answers": s.answers})
            for d in dyads for s in d.sessions]


def backtest(lines, *, instrument=None, settings=None):
    out, err = io.StringIO(), io.StringIO()
    settings_file = None
    if settings is not None:
        settings_file = io.StringIO(json.dumps(settings) if not isinstance(settings, str) else settings)
        settings_file.name = "settings.json"
    status = backtest_command(instrument, settings_file, io.StringIO("\n".join(lines) + "\n"), out, err)
    return status, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_every_notification_is_one_line_of_the_documented_shape(lines):
    status, notifications, summary = backtest(lines)
    assert status == 0
    assert notifications and all(set(n) == SPEC_KEYS for n in notifications)
    assert {n["kind"] for n in notifications} <= {"change", "level"}
    assert all(n["dimension"] in ("goal", "task", "bond", None) and n["rules"] for n in notifications)
    assert len({(n["client_id"], n["session_number"]) for n in notifications}) == len(notifications)
    changes = sum(n["kind"] == "change" for n in notifications)
    assert f"{len(lines)} sessions" in summary and f"change alerts: {changes} (" in summary
    assert "per counselor-month" in summary and "as if each client were seen weekly" in summary


def test_input_in_any_order_gives_the_same_notifications(lines):
    shuffled = list(lines)
    random.Random(1).shuffle(shuffled)
    assert backtest(shuffled)[1] == backtest(lines)[1]


def test_a_bad_line_is_named_and_costs_nothing_else(lines):
    bad = ['{"client_id": "c1", "counselor_id": "t1", "session_number": "five", "instrument_id": '
           '"session-rating-4", "answers": {}}',
           "not json",
           '{"client_id": "c1", "counselor_id": "t1", "session_number": 5, "instrument_id": "session-rating-4", '
           '"answers": {"relationship": 11, "goals-topics": 8, "approach": 9, "overall": 9}}']
    mixed = lines[:10] + bad + lines[10:]
    status, notifications, errors = backtest(mixed)
    assert status == 1
    assert "line 11: " in errors and "session_number" in errors
    assert "line 12: not a JSON object" in errors
    assert "line 13: answers: item relationship outside 0-10" in errors
    assert "3 line(s) skipped" in errors
    assert notifications == backtest(lines)[1]


def test_the_instrument_can_be_given_for_every_line_and_must_exist(lines):
    without = [json.dumps({k: v for k, v in json.loads(line).items() if k != "instrument_id"}) for line in lines]
    assert backtest(without, instrument="session-rating-4")[1] == backtest(lines)[1]
    status, _, errors = backtest(without)
    assert status == 1 and "instrument_id: Missing data for required field." in errors
    status, _, errors = backtest(lines, instrument="no-such")
    assert status == 2 and "unknown instrument 'no-such'" in errors


def test_settings_are_an_admins_overrides_and_a_bad_one_is_named(lines):
    _, default, _ = backtest(lines)
    _, generous, summary = backtest(lines, settings={"budget": {"false_alerts_per_counselor_month": 4}})
    assert sum(n["kind"] == "change" for n in generous) > sum(n["kind"] == "change" for n in default)
    assert "budget: 4 false change alert(s)" in summary
    _, pushed, _ = backtest(lines, settings={"rules": {"below_cutoff": {"push": True}}})
    assert any(n["rules"] == ["below_cutoff"] for n in pushed)
    status, _, errors = backtest(lines, settings={"rules": {"rupture": {"windw": 4}}})
    assert status == 2 and "windw" in errors
    status, _, errors = backtest(lines, settings="{not json")
    assert status == 2 and "is not JSON" in errors


def test_the_rapport_command_runs_it(lines, tmp_path):
    sessions = tmp_path / "sessions.jsonl"
    sessions.write_text("\n".join(lines) + "\n")
    rapport = Path(sys.executable).with_name("rapport")
    with sessions.open() as stdin:
        done = subprocess.run([str(rapport), "backtest"], stdin=stdin, capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == backtest(lines)[1]
    assert "change alerts" in done.stderr
