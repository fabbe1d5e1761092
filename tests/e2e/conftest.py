"""The whole platform as separate processes, once per test session, on the session's real components."""
from __future__ import annotations

import pytest

from deploy.local.platform_processes import Platform, start_platform


@pytest.fixture(scope="session")
def platform(components, tmp_path_factory) -> Platform:
    started = start_platform(components, tmp_path_factory.mktemp("platform"))
    try:
        yield started
    finally:
        exit_codes = started.stop()
    # A worker that was asked to stop finishes its message, commits, closes and exits 0.
    assert exit_codes == {name: 0 for name in exit_codes}, exit_codes
