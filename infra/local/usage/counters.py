"""`Usage`: the counters of one local stack, which the gateway, the AWS and S3 gates and the runtime report to."""

from __future__ import annotations

import json
import math
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from infra.local.s3_gate.sigv4 import is_presigned
from infra.local.template import LocalTemplate
from infra.local.usage.calls import replicate_call, sqs_requests
from infra.local.usage.dynamodb import DynamoDbEstimator, TableShape
from infra.local.usage.r2 import r2_class, r2_operation

if TYPE_CHECKING:
    from infra.local.aws_gate.gate import Caller
    from infra.local.aws_gate.request import AwsRequest
    from infra.local.replicate.emulator import ReplicateEmulator


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
            self._longest_ms: Counter[str] = Counter()  # CloudWatch's Duration maximum: how near the Timeout
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
                    "longest_ms": self._longest_ms[name],
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
                self._longest_ms[function] = max(self._longest_ms[function], elapsed_ms)

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
