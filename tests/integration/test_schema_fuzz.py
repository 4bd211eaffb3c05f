"""Schemathesis over the OpenAPI schema against the real stack: no 5xx, no undocumented status.

Bounded (a few dozen examples per operation) so it fits in `make test`; run with
`SCHEMATHESIS_EXAMPLES=500` for a longer hunt.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.helpers.stack import Stack

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))


@pytest.mark.parametrize("default_format", ["seed", "platform"])
def test_no_server_errors_and_only_documented_statuses(
    stack: Stack, default_format: str, request: pytest.FixtureRequest
) -> None:
    """Each generated request is sent with a valid key, a well-formed unknown key, and none, to a
    frontend whose default contract is `default_format` (`?format=` is generated too): the
    session's, or the session's Platform-format one.

    Generated `source` URLs are dropped: a fuzzer must not make the server fetch from anywhere
    (`tests/frontend/test_source.py` covers URLs against a local server)."""
    base = stack.base_url if default_format == "seed" else request.getfixturevalue("platform_url")
    _fuzz(stack, base)


def _fuzz(stack: Stack, base: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/models/{owner}/{project}/{model}/predict", "/api/models"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: schemathesis.Case) -> None:
            if isinstance(case.body, dict) and "://" in str(case.body.get("source", "")).lower():
                del case.body["source"]
            for key in (stack.api_key, "tri_" + "0" * 46, None):
                headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
                if key is not None:
                    headers["Authorization"] = f"Bearer {key}"
                response = case.call(base_url=base, headers=headers, timeout=60)
                assert response.status_code < 500 or response.status_code in (503, 504), response.text
                case.validate_response(response)

        check()
