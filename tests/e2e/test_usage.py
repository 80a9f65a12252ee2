"""The local stack counts what a job would be billed for (`/_local/usage`), the numbers benchmarks/fleet.py prices."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from infra.local.client import PortraitClient
from tests.e2e.conftest import GOOD

pytestmark = pytest.mark.e2e

# Every function one whole job passes through (the reconciler and the sweep run on schedules).
JOB_FUNCTIONS = ("ApiFunction", "NormalizeFunction", "DispatchFunction", "WebhookFunction", "CollectFunction")


def usage(stack: dict[str, Any], method: str = "GET") -> dict[str, Any]:
    response = httpx.request(method, f"{stack['api_url']}/_local/usage")
    response.raise_for_status()
    counted: dict[str, Any] = response.json()
    return counted


def test_one_job_is_counted(stack: dict[str, Any], client: PortraitClient) -> None:
    reset = usage(stack, "DELETE")
    assert reset["lambda"]["ApiFunction"]["invocations"] == 0
    assert reset["r2"]["class_a"] == reset["r2"]["class_b"] == 0

    job = client.create_job(GOOD)
    client.upload_all(job, GOOD)
    client.submit(job).raise_for_status()
    client.pay(job)
    view = client.wait_for(job, ("ready", "partial", "failed"), timeout_s=240)
    assert view["status"] == "ready", view
    counted = usage(stack)

    for function in JOB_FUNCTIONS:
        assert counted["lambda"][function]["invocations"] > 0, function
        assert counted["lambda"][function]["gb_seconds"] > 0, function
        # Each function ran in processes of its own, within its MemorySize, and none was killed.
        measured = counted["lambda"][function]
        assert 0 < measured["peak_memory_mb"] < measured["memory_mb"], (function, measured)
        assert measured["timeouts"] == measured["out_of_memory"] == 0, (function, measured)
    print({name: f["peak_memory_mb"] for name, f in counted["lambda"].items()})  # shown with -s
    # The browser's three presigned uploads are class A; the functions read photos back (class B).
    assert counted["r2"]["presigned"]["class_a"] >= len(GOOD), counted["r2"]
    assert counted["r2"]["class_a"] > len(GOOD), counted["r2"]
    assert counted["r2"]["class_b"] > 0, counted["r2"]
    assert counted["r2"]["operations"]["PutObject"] >= len(GOOD) + view["images_done"], counted["r2"]
    assert counted["dynamodb"]["write_units"] > 0
    assert counted["dynamodb"]["read_units"] > 0
    assert counted["sqs"]["requests"] > 0
    assert counted["sqs"]["poller"]["requests"] > 0
    assert counted["replicate"]["create"] >= 8
