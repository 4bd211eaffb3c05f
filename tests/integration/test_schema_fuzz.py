"""Schemathesis over the OpenAPI schema against the real stack: no 5xx, no undocumented status.

Bounded (a few dozen examples per operation) so it fits in `make test`; run with
`SCHEMATHESIS_EXAMPLES=500` for a longer hunt.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))


def test_no_server_errors_and_only_documented_statuses(stack: Stack) -> None:
    """Each generated request is sent with a valid key, a well-formed unknown key, and none."""
    schema = schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/models/{owner}/{project}/{model}/predict", "/api/models"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: schemathesis.Case) -> None:
            for key in (stack.api_key, "tri_" + "0" * 46, None):
                headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
                if key is not None:
                    headers["Authorization"] = f"Bearer {key}"
                response = case.call(headers=headers, timeout=60)
                assert response.status_code < 500 or response.status_code in (503, 504), response.text
                case.validate_response(response)

        check()
