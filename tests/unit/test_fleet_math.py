"""The arithmetic behind the fleet benchmark: usage estimates (infra/local/usage/) and their prices."""

from __future__ import annotations

import time
from typing import Any

import pytest

from benchmarks.fleet import (
    DYNAMODB_RRU,
    DYNAMODB_WRU,
    HTTP_API_REQUEST,
    LAMBDA_ARM_GB_S,
    LAMBDA_REQUEST,
    R2_CLASS_A,
    R2_CLASS_B,
    SQS_REQUEST,
    aws_cost,
    doubly_live_slots,
    less_polls,
    percentile,
    predictions_per_job,
    total_usd,
)
from infra.local.template import LocalTemplate
from infra.local.usage.calls import replicate_call, sqs_requests
from infra.local.usage.counters import Usage
from infra.local.usage.dynamodb import DynamoDbEstimator, TableShape, item_bytes
from infra.local.usage.r2 import r2_class, r2_operation

TABLE = "jobs"


def string_item(size: int, **extra: Any) -> dict[str, Any]:
    """An item of exactly `size` bytes by DynamoDB's rules: `pk` (2 + 4 bytes) and a padding string."""
    return {"pk": {"S": "JOB1"}, "p": {"S": "x" * (size - 7)}, **extra}


@pytest.fixture
def estimator() -> DynamoDbEstimator:
    return DynamoDbEstimator({TABLE: TableShape(keys=("pk",), index_keys=("active_status",))})


def test_item_bytes_follow_dynamodbs_rules() -> None:
    assert item_bytes({"pk": {"S": "JOB#1"}}) == 7
    assert item_bytes({"n": {"N": "12345"}}) == 1 + 3
    assert item_bytes({"ok": {"BOOL": True}, "m": {"M": {"a": {"S": "xy"}}}}) == (2 + 1) + (1 + 3 + 1 + 1 + 2)
    assert item_bytes(string_item(5000)) == 5000


def test_reads_are_four_kilobyte_units_and_half_price_when_eventually_consistent(estimator: DynamoDbEstimator) -> None:
    small, large = {"Item": string_item(100)}, {"Item": string_item(5000)}
    assert estimator.units("GetItem", {"TableName": TABLE, "ConsistentRead": True}, small, True) == (1.0, 0.0)
    assert estimator.units("GetItem", {"TableName": TABLE}, small, True) == (0.5, 0.0)
    assert estimator.units("GetItem", {"TableName": TABLE, "ConsistentRead": True}, large, True) == (2.0, 0.0)
    # A miss still costs a unit; a query is billed on the sum of its items, rounded up once.
    assert estimator.units("GetItem", {"TableName": TABLE, "ConsistentRead": True}, {}, True) == (1.0, 0.0)
    items = {"Items": [string_item(2000) for _ in range(3)]}
    assert estimator.units("Query", {"TableName": TABLE, "ConsistentRead": True}, items, True) == (2.0, 0.0)


def test_writes_are_one_kilobyte_units_of_the_whole_item(estimator: DynamoDbEstimator) -> None:
    assert estimator.units("PutItem", {"TableName": TABLE, "Item": string_item(1500)}, {}, True) == (0.0, 2.0)
    # An update carries only its changes; the item it changes is 1.5 KB, as the put above showed.
    update = {"TableName": TABLE, "Key": {"pk": {"S": "JOB1"}}, "ExpressionAttributeValues": {":n": {"N": "1"}}}
    assert estimator.units("UpdateItem", update, {}, True) == (0.0, 2.0)
    # A whole-item read teaches the estimator a bigger size; a delete is billed on it.
    estimator.units("GetItem", {"TableName": TABLE}, {"Item": string_item(3000)}, True)
    assert estimator.units("DeleteItem", {"TableName": TABLE, "Key": {"pk": {"S": "JOB1"}}}, {}, True) == (0.0, 3.0)


def test_index_writes_transactions_and_batches(estimator: DynamoDbEstimator) -> None:
    indexed = {
        "TableName": TABLE,
        "Key": {"pk": {"S": "JOB2"}},
        "UpdateExpression": "SET active_status = :a",
        "ExpressionAttributeValues": {":a": {"S": "generating"}},
    }
    assert estimator.units("UpdateItem", indexed, {}, True) == (0.0, 2.0)
    # A failed condition costs the write but writes no index.
    assert estimator.units("UpdateItem", indexed, {}, False) == (0.0, 1.0)
    transaction = {
        "TransactItems": [
            {"Put": {"TableName": TABLE, "Item": string_item(100, sk={"S": "PRED#1"})}},
            {"ConditionCheck": {"TableName": TABLE, "Key": {"pk": {"S": "JOB3"}}}},
        ]
    }
    assert estimator.units("TransactWriteItems", transaction, {}, True) == (0.0, 4.0)
    batch = {"RequestItems": {TABLE: [{"DeleteRequest": {"Key": {"pk": {"S": f"JOB{n}"}}}} for n in range(3)]}}
    assert estimator.units("BatchWriteItem", batch, {}, True) == (0.0, 3.0)


def test_r2_operations_and_classes() -> None:
    signed = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc"
    assert r2_operation("PUT", f"/bucket/jobs/1/raw/a?{signed}") == "PutObject"
    assert r2_operation("PUT", "/bucket/jobs/1/b", copy_source=True) == "CopyObject"
    assert r2_operation("GET", "/bucket?list-type=2&prefix=jobs/1/") == "ListObjectsV2"
    assert r2_operation("POST", "/bucket?delete") == "DeleteObjects"
    assert r2_operation("HEAD", "/bucket/jobs/1/raw/a") == "HeadObject"
    assert r2_operation("DELETE", "/bucket/jobs/1/raw/a") == "DeleteObject"
    assert r2_operation("OPTIONS", f"/bucket/a?{signed}") == "CorsPreflight"
    classes = [r2_class(op) for op in ("PutObject", "ListObjectsV2", "DeleteObjects", "GetObject", "DeleteObject")]
    assert classes == ["class_a", "class_a", "class_a", "class_b", "free"]


def test_sqs_and_replicate_calls() -> None:
    assert [sqs_requests(n) for n in (0, 65536, 65537)] == [1, 1, 2]
    assert replicate_call("POST", "/v1/predictions") == "create"
    assert replicate_call("GET", "/v1/predictions/abc") == "get"
    assert replicate_call("POST", "/v1/predictions/abc/cancel") == "cancel"
    assert replicate_call("GET", "/v1/predictions") is None  # the list is the benchmark's, not a function's


def test_an_invocation_bills_whole_milliseconds_at_the_templates_memory() -> None:
    template = LocalTemplate.read()
    usage = Usage(template, {logical: logical for logical in template.tables})
    with usage.invocation("ApiFunction"):
        time.sleep(0.02)
    with usage.invocation("ApiFunction"):
        time.sleep(0.05)
    counted = usage.snapshot()["lambda"]["ApiFunction"]
    assert counted["invocations"] == 2 and counted["billed_ms"] >= 70
    assert 50 <= counted["longest_ms"] < counted["billed_ms"]  # the slower one: how near the Timeout it came
    assert counted["gb_seconds"] == pytest.approx(counted["billed_ms"] / 1000 * 512 / 1024)
    assert usage.snapshot()["lambda"]["WebhookFunction"]["memory_mb"] == 256


def test_cost_prices_each_counted_line() -> None:
    functions = {
        "ApiFunction": {"invocations": 10, "gb_seconds": 2.0},
        "WebhookFunction": {"invocations": 20, "gb_seconds": 1.0},
        "CollectFunction": {"invocations": 5, "gb_seconds": 3.0},
    }
    usage = {
        "lambda": functions,
        "dynamodb": {"read_units": 100.0, "write_units": 50.0},
        "sqs": {"requests": 7, "poller": {"requests": 3, "empty_receives": 1000}},
        "r2": {"class_a": 40, "class_b": 8},
    }
    cost = aws_cost(usage, {"ApiFunction", "WebhookFunction"})
    assert cost["Lambda requests"] == pytest.approx((35, 35 * LAMBDA_REQUEST))
    assert cost["Lambda compute (GB-s)"] == pytest.approx((6.0, 6 * LAMBDA_ARM_GB_S))
    assert cost["API Gateway HTTP API requests"] == pytest.approx((30, 30 * HTTP_API_REQUEST))
    assert cost["SQS requests"] == pytest.approx((10, 10 * SQS_REQUEST))  # empty receives are not per job
    expected = (
        35 * LAMBDA_REQUEST
        + 6 * LAMBDA_ARM_GB_S
        + 30 * HTTP_API_REQUEST
        + 50 * DYNAMODB_WRU
        + 100 * DYNAMODB_RRU
        + 10 * SQS_REQUEST
        + 40 * R2_CLASS_A
        + 8 * R2_CLASS_B
    )
    assert total_usd(cost) == pytest.approx(expected)


def test_the_benchmarks_own_polls_come_out_and_never_below_zero() -> None:
    cost = {"R2 class A operations": (100.0, 100 * R2_CLASS_A), "SQS requests": (4.0, 4 * SQS_REQUEST)}
    per_poll = {"R2 class A operations": (4.0, 4 * R2_CLASS_A), "SQS requests": (1.0, SQS_REQUEST)}
    left = less_polls(cost, per_poll, 10)
    assert left["R2 class A operations"] == pytest.approx((60.0, 60 * R2_CLASS_A))
    assert left["SQS requests"] == (0.0, 0.0)


def prediction(job: str, slot: str, created: str, completed: str | None, status: str = "failed") -> dict[str, Any]:
    return {
        "webhook": f"http://127.0.0.1/webhooks/replicate?job={job}&slot={slot.replace('#', '%23')}",
        "status": status,
        "created_at": f"2030-01-01T00:{created}Z",
        "completed_at": f"2030-01-01T00:{completed}Z" if completed else None,
    }


def test_two_live_predictions_of_a_slot_are_found() -> None:
    retried = [prediction("a", "s#0", "00:00", "01:00"), prediction("a", "s#0", "01:00", "02:00", "succeeded")]
    overlapping = [prediction("b", "s#0", "00:00", "03:00"), prediction("b", "s#0", "01:00", "02:00")]
    canceled = [prediction("c", "s#0", "00:00", "03:00", "canceled"), prediction("c", "s#0", "01:00", "02:00")]
    never_done = [prediction("d", "s#1", "00:00", None, "processing"), prediction("d", "s#1", "05:00", "06:00")]
    other_slots = [prediction("e", "s#0", "00:00", "03:00"), prediction("e", "s#1", "01:00", "02:00")]
    assert doubly_live_slots(retried + canceled + other_slots) == 0
    assert doubly_live_slots(overlapping + never_done + retried) == 2
    counts = predictions_per_job(retried + overlapping + [{"webhook": None}], {"a", "b", "z"})
    assert counts == {"a": 2, "b": 2, "z": 0}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (10.0, 19.0)
    assert percentile([7.0], 0.95) == 7.0
