"""The Stripe emulator's list filters and delivery faults (kept apart from the ~1400-line emulator).

- `created`: the list API's range filter on an object's `created` (epoch seconds) — a plain integer, or
  `created[gt|gte|lt|lte]`, as `GET /v1/checkout/sessions` and `GET /v1/refunds` take it.
- `WebhookFaults`: `PUT {stripe_url}/_emulator/faults {"drop_webhooks": true}` makes every delivery attempt from then
  on lost (the event is kept, `status: "failed"`, so a test can resend it); `GET` shows them with how many were
  dropped, `DELETE` clears them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

JSONDict = dict[str, Any]
_BOUNDS = {"gt": lambda v, b: v > b, "gte": lambda v, b: v >= b, "lt": lambda v, b: v < b, "lte": lambda v, b: v <= b}


class ListParamError(ValueError):
    """A list parameter Stripe would refuse: (message, param)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _epoch(value: Any, param: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ListParamError(f"Invalid integer: {value}", param) from None


def created_filter(items: list[JSONDict], params: JSONDict) -> list[JSONDict]:
    """The items whose `created` is within the `created` parameter (all of them without one)."""
    wanted = params.get("created")
    if wanted is None:
        return items
    if not isinstance(wanted, dict):
        exact = _epoch(wanted, "created")
        return [item for item in items if int(item["created"]) == exact]
    unknown = set(wanted) - set(_BOUNDS)
    if unknown:
        name = sorted(unknown)[0]
        raise ListParamError(f"Received unknown parameter: created[{name}]", f"created[{name}]")
    bounds = [(_BOUNDS[op], _epoch(value, f"created[{op}]")) for op, value in wanted.items()]
    return [item for item in items if all(test(int(item["created"]), bound) for test, bound in bounds)]


@dataclass
class WebhookFaults:
    drop_webhooks: bool = False
    dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, payload: JSONDict) -> JSONDict:
        unknown = set(payload) - {"drop_webhooks"}
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        if "drop_webhooks" in payload:
            if not isinstance(payload["drop_webhooks"], bool):
                raise ValueError("drop_webhooks must be true or false")
            with self._lock:
                self.drop_webhooks = payload["drop_webhooks"]
        return self.view()

    def take_drop(self) -> bool:
        """True when this delivery attempt is to be lost (counted)."""
        with self._lock:
            if self.drop_webhooks:
                self.dropped += 1
            return self.drop_webhooks

    def reset(self) -> JSONDict:
        with self._lock:
            self.drop_webhooks, self.dropped = False, 0
        return self.view()

    def view(self) -> JSONDict:
        with self._lock:
            return {"drop_webhooks": self.drop_webhooks, "dropped": self.dropped}
