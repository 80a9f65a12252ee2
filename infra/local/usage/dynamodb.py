"""DynamoDB's request units (on-demand), estimated from each call's wire request and response."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def item_bytes(item: Mapping[str, Any]) -> int:
    """An item's size by DynamoDB's rules (attribute names plus values), from its wire JSON; approximate:
    a number counts ~1 byte per 2 significant digits plus 1, as AWS documents it, and binaries are base64."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: Mapping[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return len(data.strip("-").replace(".", "").strip("0") or "0") // 2 + 1
    if kind == "B":
        return len(data) * 3 // 4
    if kind in ("SS", "NS", "BS"):
        return sum(_value_bytes({kind[0]: member}) for member in data)
    if kind == "L":
        return 3 + sum(1 + _value_bytes(member) for member in data)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + _value_bytes(member) for name, member in data.items())
    return 1  # BOOL, NULL


def _read_units(size: int, consistent: bool) -> float:
    """4 KB per unit, rounded up per request; an eventually consistent read costs half."""
    return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


def _write_units(size: int) -> float:
    return float(max(1, math.ceil(size / 1024)))


@dataclass(frozen=True)
class TableShape:
    keys: tuple[str, ...]  # the primary key's attributes
    index_keys: tuple[str, ...] = ()  # the partition key of each global secondary index

    @classmethod
    def of(cls, props: Mapping[str, Any]) -> TableShape:
        def partition(schema: list[dict[str, str]]) -> str:
            return next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")

        return cls(
            tuple(k["AttributeName"] for k in props["KeySchema"]),
            tuple(partition(index["KeySchema"]) for index in props.get("GlobalSecondaryIndexes") or ()),
        )


class DynamoDbEstimator:
    """Read and write request units (on-demand) of one DynamoDB call, from its wire request and response.

    Estimates, not DynamoDB's own figures: item sizes come from `item_bytes`. A write is billed on the whole
    item, which an UpdateItem or a DeleteItem does not carry, and a read on the whole item, not the projection
    it returns; so the estimator remembers the last full size it saw of each item (puts, whole-item reads,
    returned attributes) and bills the larger. A write that mentions a global secondary index's key
    attribute also writes that index (KEYS_ONLY here: one unit). Not thread-safe: `Usage` holds a lock.
    """

    def __init__(self, tables: Mapping[str, TableShape]) -> None:
        self._tables = dict(tables)
        self._sizes: dict[tuple[str, str], int] = {}

    def units(
        self, operation: str, request: Mapping[str, Any], response: Mapping[str, Any], ok: bool
    ) -> tuple[float, float]:
        """(read units, write units) of one call; `ok` is false for an error answer (a failed condition
        still costs its write units, but writes no index)."""
        table = str(request.get("TableName", ""))
        consistent = bool(request.get("ConsistentRead", False))
        if operation == "GetItem":
            return _read_units(self._read_size(table, request, [response.get("Item") or {}]), consistent), 0.0
        if operation in ("Query", "Scan"):
            items = response.get("Items") or []
            size = self._read_size(table, request, items)
            # A filter drops items after they were read (and billed): scale by what was scanned.
            scanned = int(response.get("ScannedCount", len(items)))
            if items and scanned > len(items):
                size = size * scanned // len(items)
            return _read_units(size, consistent), 0.0
        if operation == "BatchGetItem":
            reads = 0.0
            for name, items in (response.get("Responses") or {}).items():
                wanted = request["RequestItems"].get(name, {})
                reads += sum(
                    _read_units(self._read_size(name, wanted, [i]), wanted.get("ConsistentRead", False)) for i in items
                )
            return reads, 0.0
        if operation == "TransactGetItems":
            gets = [entry["Get"] for entry in request["TransactItems"]]
            found = response.get("Responses") or [{} for _ in gets]  # a canceled transaction returns none
            sizes = [
                self._read_size(g["TableName"], g, [f.get("Item") or {}]) for g, f in zip(gets, found, strict=True)
            ]
            return sum(2 * _read_units(size, True) for size in sizes), 0.0
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            base, index = self._write(operation, table, request, response.get("Attributes") or {}, ok)
            return 0.0, base + index
        if operation == "BatchWriteItem":
            writes = 0.0
            for name, entries in request["RequestItems"].items():
                for entry in entries:
                    if "PutRequest" in entry:
                        writes += sum(self._write("PutItem", name, entry["PutRequest"], {}, ok))
                    else:
                        writes += sum(self._write("DeleteItem", name, entry["DeleteRequest"], {}, ok))
            return 0.0, writes
        if operation == "TransactWriteItems":
            writes = 0.0
            for entry in request["TransactItems"]:
                ((kind, body),) = entry.items()  # Put, Update, Delete or ConditionCheck: 2 units per KB each
                operation_name = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}.get(kind)
                base, index = self._write(operation_name or "ConditionCheck", body["TableName"], body, {}, ok)
                writes += 2 * base + index
            return 0.0, writes
        return 0.0, 0.0

    def _key(self, table: str, item: Mapping[str, Any]) -> tuple[str, str]:
        keys = self._tables[table].keys if table in self._tables else tuple(item)
        return table, json.dumps({name: item.get(name) for name in keys}, sort_keys=True)

    def _read_size(self, table: str, request: Mapping[str, Any], items: list[Mapping[str, Any]]) -> int:
        if "IndexName" in request:
            return sum(item_bytes(item) for item in items)  # an index read is billed on the index's items
        partial = "ProjectionExpression" in request or "AttributesToGet" in request
        total = 0
        for item in items:
            if not item:
                continue
            key = self._key(table, item)
            if partial:
                total += max(item_bytes(item), self._sizes.get(key, 0))
            else:
                self._sizes[key] = item_bytes(item)
                total += self._sizes[key]
        return total

    def _write(
        self, operation: str, table: str, body: Mapping[str, Any], returned: Mapping[str, Any], ok: bool
    ) -> tuple[float, float]:
        """(table units, index units) of one item's write."""
        item = body.get("Item") or body.get("Key") or {}
        key = self._key(table, item)
        sent = item_bytes(item) + sum(_value_bytes(v) for v in (body.get("ExpressionAttributeValues") or {}).values())
        size = max(sent, self._sizes.get(key, 0), item_bytes(returned))
        if operation == "PutItem" and ok:
            self._sizes[key] = item_bytes(item)
        elif operation == "UpdateItem" and ok:
            self._sizes[key] = size
        elif operation == "DeleteItem" and ok:
            self._sizes.pop(key, None)
        text = json.dumps(body) if ok and operation != "ConditionCheck" else ""
        shape = self._tables.get(table)
        indexes = sum(1 for name in shape.index_keys if re.search(rf"\b{re.escape(name)}\b", text)) if shape else 0
        return _write_units(size), float(indexes)
