"""`rapport backtest`: the back-test over standard input and output (see backtest.py)."""
from __future__ import annotations

import json
from typing import IO

from marshmallow import ValidationError

from services.scoring.domain.backtest import read_sessions, run_backtest
from services.scoring.adapters.instruments import shipped_instruments
from services.scoring.adapters.rules import effective_settings
from services.scoring.domain.settings import AlertSettingsUpdateSchema

USAGE_ERROR, BAD_LINES = 2, 1


def backtest_command(instrument_id: str | None, settings_file: IO[str] | None, stdin: IO[str], stdout: IO[str],
                     stderr: IO[str]) -> int:
    """Exit status 0; 1 when some lines were bad (they are named on stderr, the others are all counted);
    2 when the settings or the instrument cannot be used (nothing is read)."""
    instruments = shipped_instruments()
    if instrument_id is not None and instrument_id not in instruments:
        stderr.write(f"rapport backtest: unknown instrument {instrument_id!r} "
                     f"(known: {', '.join(sorted(instruments))})\n")
        return USAGE_ERROR
    settings = effective_settings(None)
    if settings_file is not None:
        try:
            settings = effective_settings(AlertSettingsUpdateSchema().load(json.load(settings_file)))
        except json.JSONDecodeError as exc:
            stderr.write(f"rapport backtest: {settings_file.name} is not JSON: {exc}\n")
            return USAGE_ERROR
        except ValidationError as exc:
            stderr.write(f"rapport backtest: {settings_file.name}: {json.dumps(exc.messages, sort_keys=True)}\n")
            return USAGE_ERROR
    sessions, errors = read_sessions(stdin, instruments, instrument_id)
    for error in errors:
        stderr.write(f"rapport backtest: {error}\n")
    result = run_backtest(sessions, settings)
    for notification in result.notifications:
        stdout.write(json.dumps(notification.to_dict(), separators=(",", ":")) + "\n")
    stderr.write(result.summary() + "\n")
    if errors:
        stderr.write(f"{len(errors)} line(s) skipped\n")
    return BAD_LINES if errors else 0
