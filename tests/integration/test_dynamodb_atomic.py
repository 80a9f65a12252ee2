"""DynamoDB requests are atomic in the local cloud, as in AWS, even while transactions are being cancelled.

moto alone puts back a copy of the table when a transaction is cancelled, erasing other requests' writes made
meanwhile (without `make_dynamodb_atomic`, a heavier version of this race lost 39 of 300 increments). In the
stack, a DELETE made while its job's collects were being cancelled found the refund it had just recorded gone.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import boto3

REGION = "us-east-1"


def _client(moto_url: str) -> Any:
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_url)


def _cancel_transactions_until(stop: threading.Event, moto_url: str, table: str, cancelled: list[int]) -> None:
    """Transactions that write ten items, then fail a condition: each is cancelled (its writes undone)."""
    dynamodb = _client(moto_url)
    writes = [
        {
            "Update": {
                "TableName": table,
                "Key": {"pk": {"S": f"filler{i}"}},
                "UpdateExpression": "SET touched = :yes",
                "ExpressionAttributeValues": {":yes": {"BOOL": True}},
            }
        }
        for i in range(10)
    ]
    never = {"TableName": table, "Key": {"pk": {"S": "gate"}}, "ConditionExpression": "attribute_not_exists(pk)"}
    while not stop.is_set():
        try:
            dynamodb.transact_write_items(TransactItems=[*writes, {"ConditionCheck": never}])
        except dynamodb.exceptions.TransactionCanceledException:
            cancelled[0] += 1


def test_writes_survive_other_requests_cancelled_transactions(moto_url: str) -> None:
    dynamodb = _client(moto_url)
    table = f"atomic-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "counter"}, "n": {"N": "0"}})
    for i in range(150):  # a table worth copying: the copy is what a cancelled transaction puts back
        dynamodb.put_item(TableName=table, Item={"pk": {"S": f"filler{i}"}, "blob": {"S": "x" * 1000}})
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "gate"}})
    stop, cancelled = threading.Event(), [0]
    canceller = threading.Thread(target=_cancel_transactions_until, args=(stop, moto_url, table, cancelled))
    canceller.start()
    increments = 150
    try:
        for _ in range(increments):
            dynamodb.update_item(
                TableName=table,
                Key={"pk": {"S": "counter"}},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
    finally:
        stop.set()
        canceller.join()
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "counter"}}, ConsistentRead=True)["Item"]
    assert cancelled[0] > 0
    assert int(item["n"]["N"]) == increments
    filler = dynamodb.get_item(TableName=table, Key={"pk": {"S": "filler0"}}, ConsistentRead=True)["Item"]
    assert "touched" not in filler  # and each cancelled transaction was undone
