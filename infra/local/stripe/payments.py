"""Paying a Checkout Session, as the hosted page (or the test hook) does: an email, maybe a promotion code.

A paid session completes (`checkout.session.completed`), with a succeeded PaymentIntent when anything was due;
a refused one raises `CheckoutRefused` with the status and what the page says.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Final

from infra.local.stripe.errors import CheckoutRefused
from infra.local.stripe.seeds import CURRENCY
from infra.local.stripe.state import StripeState
from infra.local.stripe.webhooks import Webhooks
from infra.local.stripe.wire import JSONDict, money, random_id

log = logging.getLogger("stripe_emulator")

_EMAIL_RE: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Payments:
    """Pays open sessions, on the emulator's state; the completed sessions' events go out through `webhooks`."""

    def __init__(self, state: StripeState, webhooks: Webhooks) -> None:
        self._state = state
        self._webhooks = webhooks

    def _find_promotion_code_locked(self, code: str) -> JSONDict | None:
        promo = self._state.catalogue.promotion_code
        if (
            code.strip().upper() != promo["code"].upper()
            or not promo["active"]
            or not self._state.catalogue.coupon["valid"]
        ):
            return None
        return promo

    def quote_locked(self, session: JSONDict, code: str | None) -> tuple[int, int, JSONDict | None]:
        """(subtotal, discount, the promotion code) for a session with `code` entered; refuses a bad code."""
        subtotal = int(session["amount_subtotal"])
        if not code or not code.strip():
            return subtotal, 0, None
        if not session["allow_promotion_codes"]:
            raise CheckoutRefused(400, "Promotion codes are not accepted for this payment.", "promotion_code")
        promo = self._find_promotion_code_locked(code)
        if promo is None:
            raise CheckoutRefused(400, "This code is invalid.", "promotion_code")
        return subtotal, min(int(self._state.catalogue.coupon["amount_off"]), subtotal), promo

    def open_session_locked(self, session_id: str) -> JSONDict:
        session = self._state.sessions.get(session_id)
        if session is None:
            raise CheckoutRefused(404, "This checkout session does not exist.", "session")
        if session["status"] == "expired":
            raise CheckoutRefused(410, "This checkout session has expired. Return to the site to start again.", "")
        if session["status"] == "complete":
            raise CheckoutRefused(409, "This checkout session has already been paid.", "")
        return session

    def pay(self, session_id: str, email: str | None, code: str | None) -> JSONDict:
        with self._state.lock:
            session = self.open_session_locked(session_id)
            email = (email or "").strip()
            if not _EMAIL_RE.match(email):
                raise CheckoutRefused(400, "Enter a valid email address.", "email")
            subtotal, discount, promo = self.quote_locked(session, code)
            total = subtotal - discount
            now = int(self._state.clock().timestamp())
            payment_intent: str | None = None
            if total > 0:
                payment_intent = self._payment_intent_locked(total, now)
            if promo is not None:
                promo["times_redeemed"] += 1
                self._state.catalogue.coupon["times_redeemed"] += 1
                session["discounts"] = [{"coupon": None, "promotion_code": promo["id"]}]
            session.update(
                status="complete",
                payment_status="paid" if total > 0 else "no_payment_required",
                payment_intent=payment_intent,
                amount_total=total,
                total_details={"amount_discount": discount, "amount_shipping": 0, "amount_tax": 0},
                customer_details={
                    "address": None,
                    "business_name": None,
                    "email": email,
                    "individual_name": None,
                    "name": None,
                    "phone": None,
                    "tax_exempt": "none",
                    "tax_ids": [],
                },
                url=None,
            )
            event = self._webhooks.record_locked("checkout.session.completed", session, None, None)
            snapshot = copy.deepcopy(session)
        log.info("checkout session %s paid: %s (%s)", session_id, money(total), payment_intent)
        self._webhooks.dispatch(event)
        return snapshot

    def _payment_intent_locked(self, amount: int, now: int) -> str:
        intent_id = random_id("pi_3")
        self._state.payment_intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": amount,
            "capture_method": "automatic_async",
            "client_secret": f"{intent_id}_secret_{random_id('', 25)}",
            "confirmation_method": "automatic",
            "created": now,
            "currency": CURRENCY,
            "customer": None,
            "description": None,
            "last_payment_error": None,
            "latest_charge": random_id("ch_3"),
            "livemode": False,
            "metadata": {},
            "payment_method": random_id("pm_1"),
            "payment_method_types": ["card"],
            "status": "succeeded",
        }
        return intent_id
