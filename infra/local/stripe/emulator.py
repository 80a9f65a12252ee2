"""`StripeEmulator`: the emulator's parts put together and routed, served on loopback, with its test API."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from datetime import datetime
from email.message import Message
from typing import Final

from infra.local.emulators.loopback import LoopbackEmulator, Reply, utc_now
from infra.local.stripe.catalogue import Catalogue
from infra.local.stripe.checkout import CheckoutSessions
from infra.local.stripe.errors import CheckoutRefused
from infra.local.stripe.events import Events
from infra.local.stripe.faults import WebhookFaults
from infra.local.stripe.hooks import EmulatorHooks
from infra.local.stripe.hosted_pages import HostedPages
from infra.local.stripe.payments import Payments
from infra.local.stripe.refunds import Refunds
from infra.local.stripe.routing import Route, Router, compile_routes
from infra.local.stripe.seeds import DEFAULT_PRICE_ID
from infra.local.stripe.state import StripeState
from infra.local.stripe.webhooks import DEFAULT_WEBHOOK_EVENTS, Webhooks, new_webhook_secret
from infra.local.stripe.wire import JSONDict, json_reply

log = logging.getLogger("stripe_emulator")

DEFAULT_API_KEY: Final = "sk_test_local_emulator"  # the well-known key of a loopback-only fake
_MAX_BODY_BYTES: Final = 1024 * 1024
_WORKERS: Final = 3


class StripeEmulator(LoopbackEmulator):
    """Stripe's Checkout, refunds and webhooks on loopback, seeded with the product's price and the SAVE3 code."""

    server_name = "stripe-emulator"
    title = "Stripe emulator"
    max_body_bytes = _MAX_BODY_BYTES
    logger = log

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = DEFAULT_API_KEY,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        clock: Callable[[], datetime] | None = None,
        price_id: str = DEFAULT_PRICE_ID,
        webhook_events: tuple[str, ...] = DEFAULT_WEBHOOK_EVENTS,
        webhook_backoff_s: float = 0.25,
        sweep_interval_s: float = 1.0,
    ) -> None:
        super().__init__(host, port, _WORKERS)
        self.price_id = price_id
        self.faults = WebhookFaults()
        self._state = StripeState(clock or utc_now, price_id)
        secret = webhook_secret or new_webhook_secret()
        self._webhooks = Webhooks(
            self._state, self._runner, webhook_url, secret, webhook_events, webhook_backoff_s, self.faults
        )
        self._checkout = CheckoutSessions(self._state, self._webhooks, self._runner, lambda: self.url, sweep_interval_s)
        self._payments = Payments(self._state, self._webhooks)
        self._router = Router(self._route_table(), api_key, self._state)

    @property
    def webhook_secret(self) -> str:
        return self._webhooks.secret

    def _route_table(self) -> list[Route]:
        """(method, path, handler, kind): kind "api" needs the key and honours idempotency; "page"/"hook" do not."""
        sessions, refunds, catalogue = self._checkout, Refunds(self._state, self._webhooks), Catalogue(self._state)
        events, pages, hooks = (
            Events(self._state),
            HostedPages(self._state, self._payments),
            EmulatorHooks(self, self._payments),
        )
        oid = r"(?P<id>[A-Za-z0-9_]+)"
        return compile_routes(
            [
                ("POST", r"/v1/checkout/sessions", sessions.create_session, "api"),
                ("GET", r"/v1/checkout/sessions", sessions.list_sessions, "api"),
                ("GET", rf"/v1/checkout/sessions/{oid}", sessions.get_session, "api"),
                ("POST", rf"/v1/checkout/sessions/{oid}/expire", sessions.expire_session, "api"),
                ("GET", rf"/v1/checkout/sessions/{oid}/line_items", sessions.get_line_items, "api"),
                ("POST", r"/v1/refunds", refunds.create_refund, "api"),
                ("GET", r"/v1/refunds", refunds.list_refunds, "api"),
                ("GET", rf"/v1/refunds/{oid}", refunds.get_refund, "api"),
                ("GET", rf"/v1/payment_intents/{oid}", refunds.get_payment_intent, "api"),
                ("GET", rf"/v1/prices/{oid}", catalogue.get_price, "api"),
                ("GET", rf"/v1/products/{oid}", catalogue.get_product, "api"),
                ("GET", rf"/v1/coupons/{oid}", catalogue.get_coupon, "api"),
                ("GET", r"/v1/promotion_codes", catalogue.list_promotion_codes, "api"),
                ("GET", rf"/v1/promotion_codes/{oid}", catalogue.get_promotion_code, "api"),
                ("GET", r"/v1/events", events.list_events, "api"),
                ("GET", rf"/v1/events/{oid}", events.get_event, "api"),
                ("GET", rf"/c/pay/{oid}", pages.page, "page"),
                ("POST", rf"/c/pay/{oid}", pages.submit, "page"),
                ("GET", r"/_emulator/events", hooks.events, "hook"),
                ("POST", rf"/_emulator/events/{oid}/resend", hooks.resend, "hook"),
                ("GET", r"/_emulator/refunds", hooks.refunds, "hook"),
                ("GET", r"/_emulator/sessions", hooks.sessions, "hook"),
                ("POST", rf"/_emulator/sessions/{oid}/pay", hooks.pay, "hook"),
                ("GET", r"/_emulator/webhook", hooks.get_webhook, "hook"),
                ("GET", r"/_emulator/faults", hooks.get_faults, "hook"),
                ("PUT", r"/_emulator/faults", hooks.put_faults, "hook"),
                ("DELETE", r"/_emulator/faults", hooks.delete_faults, "hook"),
                ("PUT", r"/_emulator/webhook", hooks.put_webhook, "hook"),
                ("DELETE", r"/_emulator/state", hooks.reset, "hook"),
            ]
        )

    # ----------------------------------------------------------------------- lifecycle

    def _started(self) -> None:
        self._webhooks.http = self._http
        self._checkout.start_sweeping()

    def _error_reply(self, status: int, message: str) -> Reply:
        kind = "invalid_request_error" if status < 500 else "api_error"
        return json_reply(status, {"error": {"type": kind, "message": message}})

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Reply:
        self._checkout.expire_due()
        return self._router.handle(method, target, headers, body)

    # ----------------------------------------------------------------------- inspection and test hooks

    @property
    def webhook_url(self) -> str | None:
        return self._webhooks.url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self._webhooks.url = url

    def sessions(self) -> list[JSONDict]:
        self._checkout.expire_due()
        with self._state.lock:
            return [copy.deepcopy(session) for session in self._state.sessions.values()]

    def refunds(self) -> list[JSONDict]:
        with self._state.lock:
            return [copy.deepcopy(refund) for refund in self._state.refunds.values()]

    def events(self) -> list[JSONDict]:
        """Every event, oldest first: `{"event": <the event>, "delivery": {"status", "attempts": [...]}}`."""
        self._checkout.expire_due()
        with self._state.lock:
            return [event.view() for event in self._state.events.values()]

    def pay(self, session_id: str, email: str, promotion_code: str | None = None) -> JSONDict:
        """Pay an open session as the hosted page does; raises LookupError/ValueError when the page would refuse."""
        self._checkout.expire_due()
        try:
            session = self._payments.pay(session_id, email, promotion_code)
        except CheckoutRefused as refused:
            raise (LookupError if refused.status == 404 else ValueError)(refused.message) from None
        return session

    def resend(self, event_id: str) -> JSONDict:
        """Deliver an event again, with the same id and body (a fresh signature); KeyError if unknown."""
        return self._webhooks.resend(event_id)

    def reset(self) -> None:
        """Forget sessions, payments, refunds, events and idempotency keys; the seeds stay (redemptions zeroed)."""
        with self._state.lock:
            self._state.reset_locked()
        self.faults.reset()
