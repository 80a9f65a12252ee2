"""Standard Webhooks verification, as Replicate signs: HMAC-SHA256 over `{id}.{timestamp}.{body}`.

Anything malformed is a `WebhookRejected` (401), never another exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from portrait_studio.errors import WebhookRejected
from portrait_studio.ports import Clock

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
MAX_ID_LENGTH = 256


@dataclass(frozen=True)
class VerifiedWebhook:
    webhook_id: str
    timestamp: int
    payload: dict[str, Any]


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature for a body (the emulator and tests sign with this too)."""
    key = _secret_bytes(secret)
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


class WebhookVerifier:
    def __init__(self, secret: Callable[[], str], clock: Clock, tolerance_s: int, max_body_bytes: int) -> None:
        self._secret = secret
        self._clock = clock
        self._tolerance_s = tolerance_s
        self._max_body_bytes = max_body_bytes

    def verify(self, headers: Mapping[str, str], body: bytes) -> VerifiedWebhook:
        lowered = {k.lower(): v for k, v in headers.items()}
        if len(body) > self._max_body_bytes:
            raise WebhookRejected("The webhook body is too large.")
        webhook_id = lowered.get("webhook-id", "")
        raw_timestamp = lowered.get("webhook-timestamp", "")
        signatures = lowered.get("webhook-signature", "")
        if not webhook_id or len(webhook_id) > MAX_ID_LENGTH or not webhook_id.isprintable():
            raise WebhookRejected("Missing or malformed webhook-id.")
        if not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
            raise WebhookRejected("Missing or malformed webhook-timestamp.")
        timestamp = int(raw_timestamp)
        now = int(self._clock.now().timestamp())
        if abs(now - timestamp) > self._tolerance_s:
            raise WebhookRejected("The webhook timestamp is outside the tolerance.")
        try:
            key = _secret_bytes(self._secret())
        except (binascii.Error, ValueError) as exc:
            raise WebhookRejected() from exc
        expected = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        if not any(hmac.compare_digest(expected, candidate) for candidate in _candidates(signatures)):
            raise WebhookRejected("No webhook signature matches.")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise WebhookRejected("The webhook body is not JSON.") from exc
        if not isinstance(payload, dict):
            raise WebhookRejected("The webhook body is not a JSON object.")
        return VerifiedWebhook(webhook_id=webhook_id, timestamp=timestamp, payload=payload)


def _candidates(header: str) -> list[bytes]:
    """Every well-formed `v1,<base64>` entry; others (other versions, junk) are ignored."""
    found = []
    for entry in header.split(" ")[:16]:
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found
