"""One whole platform (real Kafka and FerretDB, four gunicorn APIs, four workers) for the security suite, with
two organisations seeded through it; the suite's counts are printed at the end of every run."""
from __future__ import annotations

import pytest

from deploy.local.platform_processes import Platform, start_platform
from tests.security import summary
from tests.security.tenants import World, seed_world


def pytest_terminal_summary(terminalreporter):
    if summary.LINES:
        terminalreporter.section("security counts")
        for line in summary.LINES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def security_platform(components, tmp_path_factory) -> Platform:
    # Each matrix cell is its own caller, but schemathesis and the seeding are one caller each: the
    # per-caller rate limit is tested in tests/integration/test_limits.py, not here.
    started = start_platform(components, tmp_path_factory.mktemp("security-platform"),
                             extra_env={"RAPPORT_API_REQUESTS_PER_MINUTE": "100000"})
    try:
        yield started
    finally:
        exit_codes = started.stop()
    assert exit_codes == {name: 0 for name in exit_codes}, exit_codes


@pytest.fixture(scope="session")
def world(security_platform) -> World:
    return seed_world(security_platform.urls)
