"""DynamoDB's atomicity, which moto's backend lacks when requests overlap.

DynamoDB applies each request to its items atomically, and a cancelled transaction leaves every other write alone.
moto does neither under concurrent requests: a transaction cancelled by a failed condition puts back a copy of each
table it took when it began, erasing whatever other requests wrote in between (and takes that copy while other
threads change the table). In the stack, a DELETE made while a job was generating (its collects' transactions
being cancelled) re-read the refund it had just recorded and found none, and answered 202 instead of 204. One lock
around each DynamoDB request makes every request atomic, as DynamoDB's are; the local stack's load is far below
what one lock serves.
"""

from __future__ import annotations

import threading
from functools import wraps
from typing import Any

_LOCK = threading.RLock()
_MARK = "_portrait_studio_atomic"


def make_dynamodb_atomic() -> None:
    """Serialize moto's DynamoDB requests in this process (idempotent)."""
    from moto.dynamodb.responses import DynamoHandler

    call_action = DynamoHandler.call_action
    if getattr(call_action, _MARK, False):
        return

    @wraps(call_action)
    def atomic_call_action(self: Any) -> Any:
        with _LOCK:
            return call_action(self)

    setattr(atomic_call_action, _MARK, True)
    DynamoHandler.call_action = atomic_call_action  # type: ignore[method-assign]
