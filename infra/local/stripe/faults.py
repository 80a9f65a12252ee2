"""The Stripe emulator's delivery faults: every webhook delivery lost, as when our endpoint is unreachable.

`PUT {stripe_url}/_emulator/faults {"drop_webhooks": true}` makes every delivery attempt from then on lost (the event
is kept, `status: "failed"`, so a test can resend it); `GET` shows them with how many were dropped, `DELETE` clears
them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from infra.local.stripe.wire import JSONDict


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
