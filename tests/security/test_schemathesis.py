"""schemathesis against each service's served /openapi.json, as a signed-in admin: generated requests to every
operation (valid and invalid input) must never get a server error (5xx). Bounded in examples per operation
and in time, so the whole run stays within a few minutes on a small machine."""
from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup

from deploy.local.platform_processes import SERVICES
from tests.security.summary import report
from tests.security.tenants import World

EXAMPLES_PER_OPERATION = 12
BUDGET_S = 150  # all services together; what is left is shared by the operations still to run


def test_no_operation_answers_a_server_error(world: World):
    admin = world.own.headers("admin")
    started, operations, cases, failures = time.monotonic(), 0, 0, []
    for service in SERVICES:
        schema = schemathesis.openapi.from_url(f"{world.urls[service]}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            if time.monotonic() - started > BUDGET_S:
                pytest.fail(f"schemathesis ran out of its {BUDGET_S}s budget after {operations - 1} operations")

            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def exercise(case):
                nonlocal cases
                cases += 1
                response = case.call(headers=admin, timeout=30)
                try:
                    case.validate_response(response, checks=(not_a_server_error,))
                except (AssertionError, FailureGroup) as failure:
                    failures.append(f"{service} {case.method} {case.formatted_path}: {response.status_code} "
                                    f"{response.text[:200]} ({type(failure).__name__})")

            exercise()
    counts = (f"schemathesis: {operations} operations on {len(SERVICES)} services, {cases} cases, "
              f"{len(failures)} server errors, {time.monotonic() - started:.0f}s")
    report(counts)
    assert operations > 40 and cases > operations, counts
    assert not failures, counts + "\n" + "\n".join(failures[:20])
