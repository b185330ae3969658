"""The whole OpenAPI, fuzzed by schemathesis against the real server: no 5xx, ever.

Every operation the schema documents gets cases that fit it (positive) and
cases that break it on purpose (negative: wrong types, out-of-range numbers,
missing or extra fields), a bounded number of each. The server serves a
namespace of its own, so nothing the fuzz queues is ever trained by a test
worker. (Schemathesis' lazy pytest fixture does not run under pytest 9, so
the operations are walked through its Python API instead.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from api.openapi import operations
from tests.conftest import Server, serve_api

EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 20}
# A run that takes far longer than this has found something slow: say so.
BUDGET_SECONDS = 300.0


@pytest.fixture(scope="module")
def fuzz_server(service_env: dict[str, str], redis_client: Any) -> Iterator[Server]:
    """An open-mode server on `<namespace>-fuzz` (cleaned up with the session's keys)."""
    env = {**service_env, "GRADWATCH_NAMESPACE": f"{service_env['GRADWATCH_NAMESPACE']}-fuzz"}
    with serve_api(env) as server:
        yield server


def with_inputs(server: Server) -> set[str]:
    """The operations (`GET /v1/...`) taking a query or header parameter, or a body."""
    with server.client() as client:
        document = client.get("/openapi.json").json()
    return {
        f"{method.upper()} {path}"
        for method, path, operation in operations(document)
        if "requestBody" in operation
        or any(parameter["in"] != "path" for parameter in operation.get("parameters", []))
    }


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda mode: mode.value)
def test_no_request_is_answered_with_a_5xx(fuzz_server: Server, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "schemathesis could not read some operations"
    assert len(operations) >= 15  # the whole API, not an empty schema
    started = time.monotonic()
    skipped: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answered_without_5xx(case: schemathesis.Case) -> None:
            response = case.call(timeout=30)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            answered_without_5xx()
        except Unsatisfiable:
            # Nothing to generate: e.g. no way to break an operation without parameters.
            skipped.append(operation.label)
        except Exception as error:
            error.add_note(f"operation: {operation.label}")
            raise

    # An operation whose only input is an id in its path (any string) has nothing a
    # negative case could break; every one with a query, a header or a body is fuzzed.
    assert not set(skipped) & with_inputs(fuzz_server), skipped
    if mode is GenerationMode.POSITIVE:
        assert len(skipped) < len(operations) // 2, skipped
    assert time.monotonic() - started < BUDGET_SECONDS
