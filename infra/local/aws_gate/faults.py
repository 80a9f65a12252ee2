"""Service errors for chosen AWS calls: the local stack's way to make one write fail as DynamoDB sometimes does.

`PUT /_local/aws-faults {"fail": [{"action": "dynamodb:UpdateItem", "function": "ApiFunction",
"body_contains": "refund_id", "times": 6}]}` answers the next 6 matching requests with DynamoDB's 500
`InternalServerError`. The SDK retries it: `times` of 6 (the first try and the adapters' 5 retries,
`adapters/aws.py`) fails one call of the code. `GET` lists the faults with how often each fired; `DELETE`
clears them. Local only, never in the template; the request body is matched, never logged (it holds job ids and
emails).
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Reply = tuple[int, dict[str, str], bytes]
JSON = {"Content-Type": "application/json"}


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str = Field(pattern=r"^[a-z0-9-]+:[A-Za-z]+$")  # IAM's name: dynamodb:UpdateItem
    function: str | None = None  # the caller (a function's logical id); None: any caller
    body_contains: str | None = None  # a substring of the request body, to pick one write among many
    times: int = Field(default=1, ge=1, le=1000)


class FaultsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fail: list[FaultSpec] = Field(max_length=20)


@dataclass
class _Fault:
    action: str
    function: str | None
    body_contains: str | None
    left: int
    fired: int = 0


class AwsFaults:
    def __init__(self) -> None:
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()

    def take(self, function: str | None, actions: list[str], body: bytes) -> bool:
        """True when this request is to fail (one of a fault's remaining times is used up)."""
        with self._lock:
            for fault in self._faults:
                if fault.left <= 0 or fault.action not in actions:
                    continue
                if fault.function is not None and fault.function != function:
                    continue
                if fault.body_contains is not None and fault.body_contains.encode() not in body:
                    continue
                fault.left -= 1
                fault.fired += 1
                return True
        return False

    def route(self, method: str, body: bytes) -> Reply:
        if method == "PUT":
            try:
                spec = FaultsBody.model_validate_json(body or b"{}")
            except ValidationError as exc:
                error = {"code": "invalid_request", "message": exc.errors(include_url=False)[0]["msg"]}
                return 400, JSON, json.dumps({"error": error}).encode()
            with self._lock:
                self._faults = [_Fault(f.action, f.function, f.body_contains, f.times) for f in spec.fail]
        elif method == "DELETE":
            with self._lock:
                self._faults = []
        elif method != "GET":
            return 405, JSON, b'{"error":{"code":"method_not_allowed","message":"Use GET, PUT or DELETE."}}'
        with self._lock:
            listed: list[dict[str, Any]] = [asdict(f) for f in self._faults]
        return 200, JSON, json.dumps({"fail": listed}).encode()
