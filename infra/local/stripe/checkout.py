"""Checkout Sessions: created, read, listed and expired through the API, and expiring by themselves when due.

A session's `url` is the emulator's hosted page (`hosted_pages.py`), where it is paid (`payments.py`). Open sessions
expire when the injected clock passes their `expires_at`: on every request, and on a sweep every second.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

from infra.local.emulators.loopback import Reply
from infra.local.emulators.runner import Runner
from infra.local.stripe.errors import StripeError, missing, param_missing
from infra.local.stripe.lists import filter_created, list_page
from infra.local.stripe.params import boolean_param, integer_param, metadata_param, string_param, unknown_params
from infra.local.stripe.routing import Request
from infra.local.stripe.seeds import CURRENCY, PRODUCT_NAME, UNIT_AMOUNT
from infra.local.stripe.state import Event, StripeState
from infra.local.stripe.webhooks import Webhooks
from infra.local.stripe.wire import JSONDict, json_reply, random_id

log = logging.getLogger("stripe_emulator")

_MIN_EXPIRY_S: Final = 30 * 60
_MAX_EXPIRY_S: Final = 24 * 60 * 60
_SESSION_PARAMS: Final = frozenset(
    {
        "mode",
        "line_items",
        "allow_promotion_codes",
        "client_reference_id",
        "metadata",
        "success_url",
        "cancel_url",
        "expires_at",
        "customer_email",
        "customer_creation",
        "payment_method_types",
        "payment_intent_data",
        "locale",
        "submit_type",
        "billing_address_collection",
        "phone_number_collection",
        "ui_mode",
        "expand",
    }
)
_LINE_ITEM_PARAMS: Final = frozenset({"price", "quantity"})


class CheckoutSessions:
    """`/v1/checkout/sessions`, on the emulator's state; expired sessions' events go out through `webhooks`."""

    def __init__(
        self,
        state: StripeState,
        webhooks: Webhooks,
        runner: Runner,
        base_url: Callable[[], str],
        sweep_interval_s: float,
    ) -> None:
        self._state = state
        self._webhooks = webhooks
        self._runner = runner
        self._base_url = base_url  # the emulator's URL, known once it started
        self._sweep_interval_s = sweep_interval_s

    def create_session(self, request: Request) -> Reply:
        params = request.params
        unknown_params(params, _SESSION_PARAMS)
        mode = string_param(params, "mode")
        if mode is None:
            raise param_missing("mode")
        if mode != "payment":
            message = f"The emulator only supports mode=payment (got '{mode}')."
            raise StripeError(400, message, param="mode")
        items = _line_items_param(params.get("line_items"), self._state.price_id)
        success_url = _url_param(params, "success_url")
        cancel_url = _url_param(params, "cancel_url")
        allow_codes = None
        if params.get("allow_promotion_codes") is not None:
            allow_codes = boolean_param(params["allow_promotion_codes"], "allow_promotion_codes")
        client_reference_id = string_param(params, "client_reference_id", max_length=200)
        customer_email = string_param(params, "customer_email", max_length=800)
        metadata = metadata_param(params)
        now = int(self._state.clock().timestamp())
        expires_at = now + _MAX_EXPIRY_S
        if params.get("expires_at") is not None:
            expires_at = integer_param(params["expires_at"], "expires_at")
            if expires_at < now + _MIN_EXPIRY_S:
                message = "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation."
                raise StripeError(400, message, code="parameter_invalid_integer", param="expires_at")
            if expires_at > now + _MAX_EXPIRY_S:
                message = "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation."
                raise StripeError(400, message, code="parameter_invalid_integer", param="expires_at")
        subtotal = sum(UNIT_AMOUNT * item["quantity"] for item in items)
        session_id = random_id("cs_test_a1", 56)
        locale = string_param(params, "locale")
        session = _session_object(
            session_id,
            mode,
            subtotal,
            now,
            expires_at,
            allow_codes=allow_codes,
            cancel_url=cancel_url,
            success_url=success_url,
            client_reference_id=client_reference_id,
            customer_email=customer_email,
            locale=locale,
            metadata=metadata,
            base_url=self._base_url(),
        )
        with self._state.lock:
            self._state.sessions[session_id] = session
            self._state.line_items[session_id] = items
            return json_reply(200, copy.deepcopy(session))

    def _session(self, session_id: str) -> JSONDict:
        session = self._state.sessions.get(session_id)
        if session is None:
            raise missing("checkout.session", session_id, "session")
        return session

    def get_session(self, request: Request) -> Reply:
        with self._state.lock:
            return json_reply(200, copy.deepcopy(self._session(request.ids["id"])))

    def list_sessions(self, request: Request) -> Reply:
        with self._state.lock:
            sessions = list(self._state.sessions.values())
            for name in ("payment_intent", "status", "customer_details"):
                wanted = request.params.get(name)
                if isinstance(wanted, str):
                    sessions = [session for session in sessions if session.get(name) == wanted]
            sessions = filter_created(sessions, request.params)
            page = list_page(copy.deepcopy(sessions), request.params, "/v1/checkout/sessions")
        return json_reply(200, page)

    def get_line_items(self, request: Request) -> Reply:
        with self._state.lock:
            session = self._session(request.ids["id"])
            items = []
            for n, item in enumerate(self._state.line_items[session["id"]]):
                amount = UNIT_AMOUNT * item["quantity"]
                discount = session["total_details"]["amount_discount"] if n == 0 else 0
                items.append(
                    {
                        "id": f"li_{session['id'][-20:]}{n}",
                        "object": "item",
                        "amount_discount": discount,
                        "amount_subtotal": amount,
                        "amount_tax": 0,
                        "amount_total": amount - discount,
                        "created": session["created"] + n,
                        "currency": CURRENCY,
                        "description": PRODUCT_NAME,
                        "price": copy.deepcopy(self._state.catalogue.price),
                        "quantity": item["quantity"],
                    }
                )
        return json_reply(200, list_page(items, request.params, f"/v1/checkout/sessions/{session['id']}/line_items"))

    def expire_session(self, request: Request) -> Reply:
        with self._state.lock:
            session = self._session(request.ids["id"])
            if session["status"] != "open":
                message = (
                    f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a '
                    f'status of "{session["status"]}".'
                )
                raise StripeError(400, message, saved=True)
            event = self._expire_locked(session, request.request_id, request.idempotency_key)
            snapshot = copy.deepcopy(session)
        self._webhooks.dispatch(event)
        return json_reply(200, snapshot)

    def _expire_locked(self, session: JSONDict, request_id: str | None, key: str | None) -> Event:
        session["status"] = "expired"
        session["url"] = None
        return self._webhooks.record_locked("checkout.session.expired", session, request_id, key)

    def start_sweeping(self) -> None:
        """Expire due sessions every `sweep_interval_s` from now on, on the emulator's timer."""
        self._runner.call_later(self._sweep_interval_s, self.sweep)

    def expire_due(self) -> None:
        now = int(self._state.clock().timestamp())
        with self._state.lock:
            due = [s for s in self._state.sessions.values() if s["status"] == "open" and s["expires_at"] <= now]
            events = [self._expire_locked(session, None, None) for session in due]
        for event in events:
            log.info("checkout session %s expired", event.data["data"]["object"]["id"])
            self._webhooks.dispatch(event)

    def sweep(self) -> None:
        try:
            self.expire_due()
        finally:
            self._runner.call_later(self._sweep_interval_s, self.sweep)


def _session_object(
    session_id: str,
    mode: str,
    subtotal: int,
    now: int,
    expires_at: int,
    *,
    allow_codes: bool | None,
    cancel_url: str | None,
    success_url: str | None,
    client_reference_id: str | None,
    customer_email: str | None,
    locale: str | None,
    metadata: dict[str, str],
    base_url: str,
) -> JSONDict:
    """A new, open Checkout Session as Stripe's API shows it; its `url` is the emulator's hosted page."""
    session: JSONDict = {
        "id": session_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": allow_codes,
        "amount_subtotal": subtotal,
        "amount_total": subtotal,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "client_secret": None,
        "consent": None,
        "consent_collection": None,
        "created": now,
        "currency": CURRENCY,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_creation": "if_required",
        "customer_details": None,
        "customer_email": customer_email,
        "discounts": [],
        "expires_at": expires_at,
        "invoice": None,
        "invoice_creation": {"enabled": False, "invoice_data": None},
        "livemode": False,
        "locale": locale,
        "metadata": metadata,
        "mode": mode,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": f"{base_url}/c/pay/{session_id}",
    }
    return session


def _line_items_param(value: Any, price_id: str) -> list[JSONDict]:
    if value is None or value == "":
        raise StripeError(400, "Missing required param: line_items.", code="parameter_missing", param="line_items")
    if not isinstance(value, list):
        raise StripeError(400, "Invalid array", param="line_items")
    items: list[JSONDict] = []
    for n, item in enumerate(value):
        prefix = f"line_items[{n}]"
        if not isinstance(item, dict):
            raise StripeError(400, "Invalid object", param=prefix)
        unknown_params(item, _LINE_ITEM_PARAMS, prefix)
        price = item.get("price")
        if not isinstance(price, str) or not price:
            raise param_missing(f"{prefix}[price]")
        if price != price_id:
            raise missing("price", price, f"{prefix}[price]", status=400)
        if "quantity" not in item:
            message = f"Quantity is required. Add `quantity` to `{prefix}`."
            raise StripeError(400, message, code="parameter_missing", param=f"{prefix}[quantity]")
        quantity = integer_param(item["quantity"], f"{prefix}[quantity]", positive=True)
        items.append({"price": price, "quantity": quantity})
    return items


def _url_param(params: JSONDict, name: str) -> str | None:
    value = string_param(params, name)
    if value is None:
        return None
    split = urlsplit(value)
    if split.scheme not in ("http", "https") or not split.netloc:
        raise StripeError(400, "Not a valid URL", code="url_invalid", param=name)
    return value
