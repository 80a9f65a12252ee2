"""The Replicate emulator's webhooks: made from a prediction, signed as Replicate signs them, delivered in order.

Replicate signs with Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<HMAC-SHA256>`)
and retries connection errors and 5xx with backoff; a 4xx is final. The fault plan may duplicate a webhook,
hold back `start` until the end (reordered), or leave out `completed`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

import httpx

from infra.local.emulators.runner import Runner
from infra.local.replicate.wire import dumps, random_id

if TYPE_CHECKING:
    from infra.local.replicate.state import Prediction

log = logging.getLogger("replicate_emulator")

_WEBHOOK_ATTEMPTS: Final = 4
_WEBHOOK_BACKOFF_S: Final = 0.25


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value Replicate sends (Standard Webhooks, v1 = HMAC-SHA256)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Webhook:
    event: str
    url: str
    body: bytes
    msg_id: str
    duplicate: bool


def webhook_locked(record: Prediction, event: str) -> Webhook | None:
    """The webhook `event` of a prediction as it is now, or None when its filter leaves the event out."""
    if event not in record.events():
        return None
    body = dumps(record.data)
    msg_id = "msg_" + random_id(27)
    return Webhook(event, str(record.data["webhook"]), body, msg_id, event in record.plan.duplicated)


class WebhookSender:
    """Sends each prediction's webhooks one after another, on the emulator's workers and its HTTP client."""

    def __init__(self, lock: threading.Lock, runner: Runner, clock: Callable[[], datetime], secret: str) -> None:
        self._lock = lock  # the emulator's: it guards each prediction's outbox too
        self._runner = runner
        self._clock = clock
        self.secret = secret
        self.http: httpx.Client | None = None  # the emulator's client, once it started

    def send(self, record: Prediction, hooks: list[Webhook]) -> None:
        if hooks:
            # One delay for every webhook of a prediction keeps their order (the timer heap is FIFO on ties).
            self._runner.call_later(record.plan.webhook_delay_s, lambda: self._enqueue(record, hooks))

    def _enqueue(self, record: Prediction, hooks: list[Webhook]) -> None:
        with self._lock:
            record.outbox.extend(hooks)
            if record.sending:
                return
            record.sending = True
        self._drain(record)

    def _drain(self, record: Prediction) -> None:
        while True:
            with self._lock:
                if not record.outbox or self._runner.stopping.is_set():
                    record.sending = False
                    return
                hook = record.outbox.popleft()
            for _ in range(2 if hook.duplicate else 1):
                self._deliver(hook)

    def _deliver(self, hook: Webhook) -> None:
        """POST one webhook, retrying connection errors and 5xx with backoff as Replicate does; 4xx is final."""
        assert self.http is not None
        for attempt in range(_WEBHOOK_ATTEMPTS):
            if attempt and self._runner.stopping.wait(_WEBHOOK_BACKOFF_S * 2 ** (attempt - 1)):
                return
            timestamp = math.floor(self._clock().timestamp())
            headers = {
                "content-type": "application/json",
                "user-agent": "replicate-emulator/1.0",
                "webhook-id": hook.msg_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign_webhook(self.secret, hook.msg_id, timestamp, hook.body),
            }
            try:
                response = self.http.post(hook.url, content=hook.body, headers=headers)
            except httpx.HTTPError as exc:
                log.info("webhook %s (%s) attempt %d failed: %s", hook.msg_id, hook.event, attempt + 1, exc)
                continue
            if response.status_code < 500:
                return
            log.info("webhook %s (%s) answered %d", hook.msg_id, hook.event, response.status_code)
        log.warning("webhook %s (%s) gave up after %d attempts", hook.msg_id, hook.event, _WEBHOOK_ATTEMPTS)
