"""End-to-end tests: the local stack as a separate process, driven over HTTP only, like a real client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from infra.local.client import PortraitClient, running_stack

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
GOOD = [SAMPLES / "person-a-1.jpg", SAMPLES / "person-a-2.jpg", SAMPLES / "person-a-3.heic"]
NO_FACE = SAMPLES / "no-face.jpg"

# Fast local timings: the reconciler runs every second with a 2-second grace period.
FAST = {
    "PORTRAIT_RECONCILE_GRACE_S": "2",
    "PORTRAIT_CLAIM_STALE_S": "3",
    "PORTRAIT_CREATE_JOB_RATE_PER_HOUR": "1000",
    "LOCAL_RECONCILE_EVERY_S": "1",
    "EMULATOR_STEP_DELAY": "0.1",
}


@contextmanager
def fast_stack(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[dict[str, Any]]:
    """A local stack of its own (with FAST timings), its log file's path in `log_path`."""
    state = tmp_path_factory.mktemp(name)
    with running_stack(state, env=FAST) as info:
        info["log_path"] = str(state / "stack.log")
        yield info


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with fast_stack(tmp_path_factory, "stack") as info:
        yield info


@pytest.fixture
def client(stack: dict[str, Any]) -> Iterator[PortraitClient]:
    api = PortraitClient(stack["api_url"])
    yield api
    api.close()


@pytest.fixture
def faults(stack: dict[str, Any]) -> Iterator[Any]:
    url = f"{stack['replicate_url']}/_emulator/faults"

    def apply(profile: dict[str, Any]) -> None:
        httpx.put(url, json=profile).raise_for_status()

    yield apply
    httpx.delete(url).raise_for_status()


def predictions(stack: dict[str, Any]) -> list[dict[str, Any]]:
    """Every prediction the emulator was asked for (paged like Replicate's list)."""
    headers = {"Authorization": f"Bearer {stack['replicate_token']}"}
    response = httpx.get(f"{stack['replicate_url']}/v1/predictions", headers=headers)
    response.raise_for_status()
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def usage(stack: dict[str, Any], method: str = "GET") -> dict[str, Any]:
    """What the stack counted for billing (`/_local/usage`); DELETE resets the counters."""
    response = httpx.request(method, f"{stack['api_url']}/_local/usage")
    response.raise_for_status()
    counted: dict[str, Any] = response.json()
    return counted


def drained(stack: dict[str, Any], timeout_s: float = 60) -> None:
    """Wait until no queue holds a message, in flight or not; fail if any reached a dead-letter queue."""
    sqs = boto3.client("sqs", region_name=stack["region"], endpoint_url=stack["aws_endpoint_url"])
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + timeout_s
    while True:
        held = {
            logical: sum(
                int(v) for v in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"].values()
            )
            for logical, url in stack["queues"].items()
        }
        assert not any(count for logical, count in held.items() if "DeadLetter" in logical), held
        if not any(held.values()):
            return
        assert time.monotonic() < deadline, held
        time.sleep(0.5)


def objects_under(stack: dict[str, Any], job_id: str) -> list[str]:
    s3 = boto3.client("s3", region_name=stack["region"], endpoint_url=stack["aws_endpoint_url"])
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=stack["bucket"], Prefix=f"jobs/{job_id}/")
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def items_of(stack: dict[str, Any], job_id: str) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name=stack["region"], endpoint_url=stack["aws_endpoint_url"]).Table(
        stack["table"]
    )
    response = table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"JOB#{job_id}"})
    return list(response["Items"])
