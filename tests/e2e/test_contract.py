"""The API against its own contract: schemathesis generates requests from openapi.json and drives the
local stack with them (valid tokens and real job ids mixed in); no 5xx, no response outside the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.local.client import PortraitClient
from tests.e2e.conftest import GOOD

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = schemathesis.openapi.from_path(ROOT / "openapi.json")
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_operation_conforms_to_the_contract(operation: Any, stack: dict[str, Any], client: PortraitClient) -> None:
    job = client.create_job(GOOD)
    real = {"job_id": job.job_id, "file_id": job.uploads[0]["file_id"]}

    @given(case=operation.as_strategy(), use_real_ids=st.booleans(), use_token=st.booleans())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any, use_real_ids: bool, use_token: bool) -> None:
        if use_real_ids and case.path_parameters:
            case.path_parameters = {k: real.get(k, v) for k, v in case.path_parameters.items()}
        headers = {"Authorization": f"Bearer {job.token}"} if use_token else {}
        response = case.call(base_url=stack["api_url"], headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()
