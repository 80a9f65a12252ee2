"""Stripe's webhooks: each event signed as Stripe signs it and POSTed to the endpoint, retried on failure.

`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`. Only the events the endpoint is subscribed to
are sent; every event is kept with its deliveries (`GET /_emulator/events`) and can be sent again (`resend`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import secrets
from typing import Final

import httpx

from infra.local.emulators.runner import Runner
from infra.local.stripe.faults import WebhookFaults
from infra.local.stripe.state import Event, StripeState
from infra.local.stripe.wire import API_VERSION, ID_ALPHABET, JSONDict, random_id

log = logging.getLogger("stripe_emulator")

# What the webhook endpoint is subscribed to; other events are recorded (`GET /v1/events`) but not delivered.
DEFAULT_WEBHOOK_EVENTS: Final = ("checkout.session.completed", "checkout.session.expired")
_WEBHOOK_ATTEMPTS: Final = 4


def new_webhook_secret() -> str:
    return "whsec_" + "".join(secrets.choice(ID_ALPHABET) for _ in range(32))


def sign_payload(secret: str, timestamp: int, payload: bytes) -> str:
    """The `Stripe-Signature` header Stripe sends: `t=<unix>,v1=<hex HMAC-SHA256(secret, "t.payload")>`."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Webhooks:
    """The webhook endpoint (its URL can change), and each event's deliveries to it on the emulator's workers."""

    def __init__(
        self,
        state: StripeState,
        runner: Runner,
        url: str | None,
        secret: str,
        subscribed: tuple[str, ...],
        backoff_s: float,
        faults: WebhookFaults,
    ) -> None:
        self._state = state
        self._runner = runner
        self._url = url  # guarded by the state's lock
        self.secret = secret
        self._subscribed = frozenset(subscribed)
        self._backoff_s = backoff_s
        self.faults = faults
        self.http: httpx.Client | None = None  # the emulator's client, once it started

    @property
    def url(self) -> str | None:
        with self._state.lock:
            return self._url

    @url.setter
    def url(self, url: str | None) -> None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must be http(s)://…")
        with self._state.lock:
            self._url = url

    def record_locked(self, kind: str, obj: JSONDict, request_id: str | None, key: str | None) -> Event:
        url = self._url
        subscribed = kind in self._subscribed
        data: JSONDict = {
            "id": random_id("evt_1"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self._state.clock().timestamp()),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1 if subscribed and url else 0,
            "request": {"id": request_id, "idempotency_key": key},
            "type": kind,
        }
        event = Event(data, json.dumps(data, indent=2).encode(), subscribed)
        if not (subscribed and url):
            event.status = "not_sent"
        self._state.events[data["id"]] = event
        return event

    def dispatch(self, event: Event) -> None:
        if event.status == "pending":
            event_id, cycle = event.data["id"], event.cycle
            self._runner.submit(lambda: self._attempt(event_id, cycle, 1))

    def _attempt(self, event_id: str, cycle: int, attempt: int) -> None:
        """One delivery attempt; on a non-2xx answer or a connection error, the next after a backoff."""
        with self._state.lock:
            event = self._state.events.get(event_id)
            url = self._url
            if event is None or event.cycle != cycle:
                return
            if url is None:
                event.status = "not_sent"
                return
        assert self.http is not None
        if self.faults.take_drop():  # every attempt lost, as when our endpoint is unreachable for Stripe's 3 days
            with self._state.lock:
                if event.cycle == cycle:
                    event.attempts.append({"attempt": attempt, "url": url, "status_code": None, "error": "dropped"})
                    event.status = "failed"
            log.info("event %s (%s) dropped (fault)", event_id, event.data["type"])
            return
        timestamp = int(self._state.clock().timestamp())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign_payload(self.secret, timestamp, event.body),
        }
        record: JSONDict = {"attempt": attempt, "url": url, "timestamp": timestamp, "status_code": None, "error": None}
        try:
            response = self.http.post(url, content=event.body, headers=headers)
            record["status_code"] = response.status_code
        except httpx.HTTPError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        ok = record["status_code"] is not None and 200 <= record["status_code"] < 300
        kind = event.data["type"]
        with self._state.lock:
            if event.cycle != cycle:
                return
            event.attempts.append(record)
            if ok:
                event.status = "delivered"
            elif attempt >= _WEBHOOK_ATTEMPTS:
                event.status = "failed"
        if ok:
            log.debug("event %s (%s) delivered", event_id, kind)
            return
        outcome = record["error"] or f"HTTP {record['status_code']}"
        if attempt >= _WEBHOOK_ATTEMPTS:
            log.warning("event %s (%s) gave up after %d attempts: %s", event_id, kind, attempt, outcome)
            return
        delay = self._backoff_s * 2 ** (attempt - 1)
        log.info("event %s (%s) attempt %d failed (%s); retrying in %.2fs", event_id, kind, attempt, outcome, delay)
        self._runner.call_later(delay, lambda: self._attempt(event_id, cycle, attempt + 1))

    def resend(self, event_id: str) -> JSONDict:
        """Deliver an event again, with the same id and body (a fresh signature); KeyError if unknown."""
        with self._state.lock:
            event = self._state.events[event_id]
            event.cycle += 1
            event.status = "pending"
            cycle = event.cycle
        self._runner.submit(lambda: self._attempt(event_id, cycle, 1))
        return {"id": event_id, "status": "pending"}
