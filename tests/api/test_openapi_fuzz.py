"""Schemathesis against /openapi.json with a valid key: no 5xx, every answer matches the
documented schema, and a request without the key is refused (auth enforced).

Bounded here (FUZZ_EXAMPLES per operation); `make fuzz` runs it longer.
"""

import os
from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.main import create_app
from tests.client import bearer, new_key
from tests.conftest import ADMIN_HEADERS

pytestmark = pytest.mark.usefixtures("backend")
FUZZ_EXAMPLES = int(os.environ.get("TAAS_FUZZ_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]


@pytest.fixture
def fuzzed(settings: Settings) -> Iterator[TestClient]:
    # The fuzzer sends many requests quickly: rate limits would only hide answers.
    roomy = settings.model_copy(update={"rate_burst": 10**6, "max_queued_jobs": 10**6})
    with TestClient(create_app(roomy), headers=ADMIN_HEADERS) as client:
        yield client


def test_the_api_answers_every_generated_request_as_documented(fuzzed: TestClient) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)
    tenant = bearer(new_key(fuzzed, "fuzz")["key"])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # every route of the API, not an empty document

    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers_as_documented(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=tenant, checks=CHECKS)

        answers_as_documented()
