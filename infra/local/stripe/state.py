"""Everything the Stripe emulator remembers, and the one lock that guards all of it."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from infra.local.emulators.loopback import Reply
from infra.local.stripe.seeds import seed_catalogue
from infra.local.stripe.wire import JSONDict


@dataclass
class Event:
    data: JSONDict
    body: bytes  # exactly what is signed and sent, the same bytes on every attempt and resend
    subscribed: bool
    status: str = "pending"  # pending | delivered | failed | not_sent (no endpoint, or not subscribed)
    attempts: list[JSONDict] = field(default_factory=list)
    cycle: int = 0  # a resend starts a new cycle; retries of an older one stop

    def view(self) -> JSONDict:
        delivery = {"status": self.status, "attempts": copy.deepcopy(self.attempts)}
        return {"event": copy.deepcopy(self.data), "delivery": delivery}


@dataclass
class Saved:
    """An idempotency key's first request and, once it finished, its response."""

    endpoint: str
    params: JSONDict
    created: float
    request_id: str
    reply: Reply | None = None  # None while the first request is still executing


class StripeState:
    """Sessions, payments, refunds, events, idempotency keys and the seeded catalogue; hold `lock` to touch them."""

    def __init__(self, clock: Callable[[], datetime], price_id: str) -> None:
        self.clock = clock
        self.price_id = price_id
        self.lock = threading.Lock()
        self.sessions: dict[str, JSONDict] = {}
        self.line_items: dict[str, list[JSONDict]] = {}
        self.payment_intents: dict[str, JSONDict] = {}
        self.refunds: dict[str, JSONDict] = {}
        self.events: dict[str, Event] = {}
        self.idempotency: dict[tuple[str, str], Saved] = {}
        self.catalogue = seed_catalogue(int(self.clock().timestamp()), self.price_id)

    def reset_locked(self) -> None:
        """Forget sessions, payments, refunds, events and idempotency keys; the seeds stay (redemptions zeroed)."""
        for table in (self.sessions, self.line_items, self.payment_intents, self.refunds, self.events):
            table.clear()
        self.idempotency.clear()
        self.catalogue = seed_catalogue(int(self.clock().timestamp()), self.price_id)
