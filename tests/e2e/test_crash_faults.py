"""Lambda crashes (before the handler, or after it with the response lost) cost time, never a job."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest

from infra.local.client import PortraitClient
from tests.e2e.conftest import GOOD, drained

pytestmark = pytest.mark.e2e


@pytest.fixture
def faults_url(stack: dict[str, Any]) -> Iterator[str]:
    url = f"{stack['api_url']}/_local/faults"
    yield url
    httpx.delete(url).raise_for_status()


def visibility_timeout_s(stack: dict[str, Any]) -> int:
    sqs = boto3.client("sqs", region_name=stack["region"], endpoint_url=stack["aws_endpoint_url"])
    url = stack["queues"]["NormalizeQueue"]
    return int(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]["VisibilityTimeout"]
    )


def test_a_job_survives_crashing_invocations(faults_url: str, stack: dict[str, Any], client: PortraitClient) -> None:
    # Every crash holds its batch back for the queues' visibility timeout (the local stack's 30 s), so the rate
    # stays modest and the time allowed grows with it: a batch may crash again when it comes back. Seed 1 crashes
    # the very first invocation (the first photos' normalize) after its handler ran, then a later one before its
    # handler: both kinds, whichever poller draws first.
    limit_s = 50 + 5 * visibility_timeout_s(stack)
    changed = httpx.put(faults_url, json={"crash_rate": 0.3, "seed": 1})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"crash_rate": 0.3, "seed": 1, "crashes": {"before": 0, "after": 0, "total": 0}}
    job = client.create_job(GOOD)
    client.upload_all(job, GOOD)
    client.submit(job).raise_for_status()
    client.pay(job)
    started = time.monotonic()

    view = client.wait_for(job, ("ready", "failed"), timeout_s=limit_s)

    assert view["status"] == "ready", view
    assert view["images_done"] >= 30, view
    assert time.monotonic() - started < limit_s
    stopped = httpx.put(faults_url, json={"crash_rate": 0}).json()  # no more crashes; the counts stay
    assert httpx.get(faults_url).json() == stopped
    crashes = stopped["crashes"]
    assert crashes["before"] > 0, stopped
    assert crashes["after"] > 0, stopped
    assert crashes["total"] == crashes["before"] + crashes["after"]

    # The last crashed batches come back after the job is ready; running them twice must change nothing.
    drained(stack)
    again = client.get(job).json()
    assert (again["status"], again["images_done"]) == ("ready", view["images_done"]), again
    reset = httpx.delete(faults_url).json()
    assert reset == {"crash_rate": 0.0, "seed": None, "crashes": {"before": 0, "after": 0, "total": 0}}


@pytest.mark.parametrize(
    "body",
    [
        b'{"crash_rate": 1.5}',
        b'{"crash_rate": -0.1}',
        b'{"crash_rate": "0.3"}',
        b'{"crash_rate": true}',
        b'{"seed": 3}',
        b'{"crash_rate": 0.3, "seed": 1.5}',
        b'{"crash_rate": 0.3, "surprise": 1}',
        b"[0.3]",
        b"{not json",
        b"",
    ],
)
def test_bad_fault_settings_are_refused(faults_url: str, body: bytes) -> None:
    response = httpx.put(faults_url, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"]
    assert httpx.get(faults_url).json()["crash_rate"] == 0.0  # nothing half-applied
