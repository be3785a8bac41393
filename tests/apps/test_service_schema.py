"""The service against its own OpenAPI description: schemathesis generates requests from the
schema (valid and invalid) for every route, and each answer must be no server error and match what
the schema says of its status, content type and body. Bounded: a few dozen examples a route."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                 status_code_conformance)

from support import start_server

pytestmark = pytest.mark.usefixtures("compiled_kernel")

EXAMPLES = 15  # a route
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_route_answers_as_its_schema_says(tiny_model):
    proc, url = start_server(tiny_model, "--max-text-chars", 2000, "--max-batch", 8)
    try:
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.label for op in operations} >= {"POST /predict", "POST /explain", "GET /health", "GET /model"}
        for op in operations:
            @given(case=op.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                      derandomize=True)
            def answers_as_said(case):
                # what the schema can say: no 5xx, and every status, content type and body as documented.
                # Whether a schema-valid request is accepted is not among them: "exactly one of text
                # or texts", the limits and "a text with words" are the service's rules, not the schema's
                case.call_and_validate(base_url=url, checks=CHECKS)
            answers_as_said()
    finally:
        proc.terminate()
        proc.wait(30)
