"""What the local stack's functions would be billed for: counted calls, so a job's cost can be priced.

- Lambda: invocations and GB-seconds per function (wall time of the handler × MemorySize / 1024, in whole ms),
  the peak memory of any one invocation and of the last one, and the invocations killed for their Timeout or
  MemorySize (see `infra/local/runtime.py`);
- DynamoDB: read and write request units (on-demand), estimated from each call's request and response;
- DynamoDB, SQS, SSM, SES: every call the AWS gate (`infra/local/aws_gate.py`) forwards for a function;
- SQS: requests (one per 64 KB of payload) of the functions, and apart from them the pollers' (Lambda's
  event-source mappings poll and delete too), whose empty receives are counted on their own;
- R2: class A, class B and free operations of every request the S3 gate forwards — the functions' boto3
  calls and the presigned PUTs and GETs of browsers and Replicate alike;
- Replicate: the predictions created, read and canceled.

`GET /_local/usage` returns `snapshot()`; `DELETE /_local/usage` resets the counters.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from infra.local.s3_gate.sigv4 import is_presigned
from infra.local.template import LocalTemplate

if TYPE_CHECKING:
    from infra.local.aws_gate import Caller
    from infra.local.aws_requests import AwsRequest
    from infra.local.replicate.emulator import ReplicateEmulator

SQS_CHUNK_BYTES = 64 * 1024

# Cloudflare's lists (developers.cloudflare.com/r2/pricing). DeleteObjects is on neither list: counted as
# class A, the dearer guess; DeleteObject and AbortMultipartUpload are free, as are CORS preflights.
R2_CLASS_A = frozenset(
    {
        "ListBuckets",
        "PutBucket",
        "ListObjects",
        "ListObjectsV2",
        "PutObject",
        "CopyObject",
        "CompleteMultipartUpload",
        "CreateMultipartUpload",
        "ListMultipartUploads",
        "UploadPart",
        "UploadPartCopy",
        "ListParts",
        "PutBucketEncryption",
        "PutBucketCors",
        "PutBucketLifecycleConfiguration",
        "DeleteObjects",
    }
)
R2_CLASS_B = frozenset(
    {
        "HeadBucket",
        "HeadObject",
        "GetObject",
        "GetBucketEncryption",
        "GetBucketLocation",
        "GetBucketCors",
        "GetBucketLifecycleConfiguration",
    }
)
_BUCKET_SUBRESOURCES = {
    ("GET", "uploads"): "ListMultipartUploads",
    ("GET", "cors"): "GetBucketCors",
    ("GET", "lifecycle"): "GetBucketLifecycleConfiguration",
    ("GET", "location"): "GetBucketLocation",
    ("GET", "encryption"): "GetBucketEncryption",
    ("PUT", "cors"): "PutBucketCors",
    ("PUT", "lifecycle"): "PutBucketLifecycleConfiguration",
    ("PUT", "encryption"): "PutBucketEncryption",
    ("POST", "delete"): "DeleteObjects",
}


def r2_operation(method: str, target: str, copy_source: bool = False) -> str:
    """The S3 operation of a path-style request (`/bucket/key?query`), as R2's price list names it."""
    split = urlsplit(target)
    bucket, _, key = split.path.lstrip("/").partition("/")
    query = parse_qs(split.query, keep_blank_values=True)
    if method == "OPTIONS":
        return "CorsPreflight"
    if not bucket:
        return "ListBuckets"
    if not key:
        for (verb, name), operation in _BUCKET_SUBRESOURCES.items():
            if verb == method and name in query:
                return operation
        listing = "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return {"GET": listing, "HEAD": "HeadBucket", "PUT": "PutBucket"}.get(method, "DeleteBucket")
    if method == "PUT":
        if "uploadId" in query:
            return "UploadPartCopy" if copy_source else "UploadPart"
        return "CopyObject" if copy_source else "PutObject"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "GET" and "uploadId" in query:
        return "ListParts"
    return "HeadObject" if method == "HEAD" else "GetObject"


def r2_class(operation: str) -> str:
    return "class_a" if operation in R2_CLASS_A else "class_b" if operation in R2_CLASS_B else "free"


def sqs_requests(payload_bytes: int) -> int:
    """SQS bills every 64 KB chunk of a call's payload as one request."""
    return max(1, math.ceil(payload_bytes / SQS_CHUNK_BYTES))


def replicate_call(method: str, path: str) -> str | None:
    """`create`, `get` or `cancel` for Replicate's prediction routes; None for anything else."""
    path = path.rstrip("/")
    if method == "POST":
        return "create" if path == "/v1/predictions" else "cancel" if path.endswith("/cancel") else None
    return "get" if method == "GET" and path.startswith("/v1/predictions/") else None


# --- DynamoDB request units ---------------------------------------------------------------------------
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


# --- the counters -------------------------------------------------------------------------------------
class Usage:
    """Counters of one local stack: the gateways, the AWS and S3 gates and the runtime report to it."""

    def __init__(self, template: LocalTemplate, table_names: Mapping[str, str]) -> None:
        default_mb = int(template.raw.get("Globals", {}).get("Function", {}).get("MemorySize", 128))
        self.memory_mb = {name: int(props.get("MemorySize", default_mb)) for name, props in template.functions.items()}
        self._shapes = {table_names[logical]: TableShape.of(props) for logical, props in template.tables.items()}
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._invocations: Counter[str] = Counter()
            self._billed_ms: Counter[str] = Counter()
            self._peak_mb: dict[str, float] = {}  # the most one invocation of the function used
            self._last_mb: dict[str, float] = {}
            self._kills: defaultdict[str, Counter[str]] = defaultdict(Counter)  # timeouts, out-of-memory
            self._dynamodb = DynamoDbEstimator(self._shapes)
            self._units = {"read": 0.0, "write": 0.0}
            self._sqs: Counter[str] = Counter()
            self._r2: Counter[tuple[str, bool]] = Counter()  # (class, presigned)
            self._calls: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            functions = {
                name: {
                    "memory_mb": memory,
                    "invocations": self._invocations[name],
                    "billed_ms": self._billed_ms[name],
                    "gb_seconds": self._billed_ms[name] / 1000 * memory / 1024,
                    "peak_memory_mb": round(self._peak_mb.get(name, 0.0), 1),
                    "last_memory_mb": round(self._last_mb.get(name, 0.0), 1),
                    "timeouts": self._kills[name]["timeout"],
                    "out_of_memory": self._kills[name]["out_of_memory"],
                }
                for name, memory in self.memory_mb.items()
            }
            classes = ("class_a", "class_b", "free")
            return {
                "lambda": functions,
                "dynamodb": {
                    "read_units": self._units["read"],
                    "write_units": self._units["write"],
                    "calls": dict(self._calls["dynamodb"]),
                },
                "sqs": {
                    "requests": self._sqs["functions"],
                    "calls": dict(self._calls["sqs"]),
                    "poller": {
                        "requests": self._sqs["poller"],
                        "empty_receives": self._sqs["poller_empty"],
                        "calls": dict(self._calls["sqs_poller"]),
                    },
                },
                "r2": {
                    **{c: self._r2[c, False] + self._r2[c, True] for c in classes},
                    "presigned": {c: self._r2[c, True] for c in classes},
                    "operations": dict(self._calls["r2"]),
                },
                "replicate": dict(self._calls["replicate"]),
                "other_aws": dict(self._calls["other"]),
            }

    def route(self, method: str) -> tuple[int, dict[str, str], bytes]:
        """`GET /_local/usage` answers the counters; `DELETE` sets them back to zero first."""
        headers = {"Content-Type": "application/json"}
        if method not in ("GET", "DELETE"):
            return 405, headers, b'{"error":{"code":"method_not_allowed","message":"Use GET or DELETE."}}'
        if method == "DELETE":
            self.reset()
        return 200, headers, json.dumps(self.snapshot()).encode()

    # --- hooks ---------------------------------------------------------------------------------------
    @contextmanager
    def invocation(self, function: str) -> Iterator[None]:
        """Around one handler call: its duration (its AWS calls the AWS gate tells apart by their keys)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed_ms = math.ceil((time.perf_counter() - started) * 1000)
            with self._lock:
                self._invocations[function] += 1
                self._billed_ms[function] += elapsed_ms

    def memory(self, function: str, peak_mb: float) -> None:
        """One invocation's peak memory (its worker process's, as Lambda's "Max Memory Used")."""
        with self._lock:
            self._last_mb[function] = peak_mb
            self._peak_mb[function] = max(peak_mb, self._peak_mb.get(function, 0.0))

    def killed(self, function: str, kind: str) -> None:
        """An invocation Lambda would have killed: `timeout` or `out_of_memory`."""
        with self._lock:
            self._kills[function][kind] += 1

    def count_r2(self, method: str, target: str, headers: Message) -> None:
        """The S3 gate's observer: one request on its way to the bucket (rejected ones are not billed by R2)."""
        operation = r2_operation(method, target, copy_source="x-amz-copy-source" in headers)
        with self._lock:
            self._calls["r2"][operation] += 1
            self._r2[r2_class(operation), is_presigned(urlsplit(target).query)] += 1

    def watch_replicate(self, emulator: ReplicateEmulator) -> None:
        """Count the prediction calls the emulator serves (its list and files are not the functions' calls)."""
        handle = emulator.handle

        def counted(method: str, target: str, headers: Message, body: bytes) -> Any:
            reply = handle(method, target, headers, body)
            call = replicate_call(method, urlsplit(target).path)
            if call:
                with self._lock:
                    self._calls["replicate"][call] += 1
                    if reply.status == 429:
                        self._calls["replicate"]["throttled"] += 1
            return reply

        emulator.handle = counted  # type: ignore[method-assign]

    def count_aws(self, caller: Caller, request: AwsRequest, sent: bytes, status: int, answer: bytes) -> None:
        """The AWS gate's observer: one call a function (or its event source mapping) made, as moto answered it.
        The stack's own set-up calls are not billed."""
        if caller.kind == "admin":
            return
        try:
            self._count_call(request, caller.kind == "event_source", sent, status < 300, answer)
        except Exception:
            # A counting mistake must never fail the function's own call: say so, and count on.
            traceback.print_exc()

    def _count_call(self, request: AwsRequest, poller: bool, sent: bytes, ok: bool, answer: bytes) -> None:
        service, operation = request.service, request.operation
        with self._lock:
            if service == "dynamodb":
                self._calls["dynamodb"][operation] += 1
                reads, writes = self._dynamodb.units(operation, _json(sent), _json(answer), ok)
                self._units["read"] += reads
                self._units["write"] += writes
            elif service == "sqs" and poller:
                self._calls["sqs_poller"][operation] += 1
                if operation == "ReceiveMessage" and not _json(answer).get("Messages"):
                    self._sqs["poller_empty"] += 1
                else:
                    self._sqs["poller"] += sqs_requests(max(len(sent), len(answer)))
            elif service == "sqs":
                self._calls["sqs"][operation] += 1
                self._sqs["functions"] += sqs_requests(max(len(sent), len(answer)))
            else:
                self._calls["other"][f"{service}.{operation}"] += 1


def _json(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
