"""Schemathesis over the whole OpenAPI schema, authenticated as a demo user: no 5xx, no schema violations."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from sigmachat.api.app import create_app
from sigmachat.auth.tokens import TokenService
from tests.conftest import HNW, make_settings

# Hypothesis examples per operation: enough to hit bad types, bounds and odd strings, while
# keeping the whole run to well under a minute on a 2-core machine.
EXAMPLES = 20


@pytest.fixture
def fuzz_settings(tmp_path, template_db):
    shutil.copy(template_db, tmp_path / "sigmachat.db")
    # Limits off so the fuzzer measures validation and error mapping, not the rate limiter.
    return make_settings(tmp_path, send_rate_limit="", daily_token_budget=0, max_concurrent_runs_per_user=0)


@pytest.fixture
def auth_headers(fuzz_settings):
    with sqlite3.connect(fuzz_settings.database_url.split(":///", 1)[1]) as conn:
        (user_id,) = conn.execute("SELECT id FROM users WHERE email = ?", (HNW,)).fetchone()
    return {"Authorization": f"Bearer {TokenService(fuzz_settings).issue(user_id, 'user')}"}


def test_no_server_errors_and_responses_match_the_schema(fuzz_settings, auth_headers):
    # One test walking every operation (schemathesis' pytest fixture loader does not support
    # pytest 9); a failure names the operation and the generated case.
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzz_settings))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    cases_run = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @hsettings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            nonlocal cases_run
            cases_run += 1
            response = case.call(headers=auth_headers)
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

        check()
    print(f"schemathesis: {len(operations)} operations, {cases_run} cases")
